/* examples/zero1_trainer.c: a custom trainer sharding its optimizer the ZeRO-1 way with remat_comm.
 *
 * The model is a linear layer y = W x (W: OUT x IN, with a bias) fitted by mean squared error to a
 * fixed random teacher, trained with AdamW. Every rank holds all of W but only its shard of the
 * AdamW moments; each step it computes the gradient of its rows, the gradients are
 * reduce-scattered (each rank receives the sum of its shard), each rank updates its shard of W,
 * and the shards are all-gathered. The parameter count (OUT * IN + OUT = 1,300) is not a multiple
 * of 3 or 8: the flat buffers are padded to whole shards.
 *
 *   build/examples/zero1_trainer [STEPS]              one process
 *   mpirun -np 4 build/examples/zero1_trainer [STEPS]   four ranks, the same global batch
 *
 * Both print the same losses (to float rounding): the global batch is split, not repeated. */
#include <remat.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { IN = 64, OUT = 20, ROWS = 48 }; /* ROWS: the global batch, split over the ranks */

/* A deterministic value in [-1, 1) from an index: the data and the teacher. */
static float noise(uint64_t i)
{
    i = (i + 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
    i ^= i >> 31;
    return (float)((double)(i >> 11) / (double)(1ull << 53) * 2 - 1);
}

static int fail(const char *what)
{
    fprintf(stderr, "zero1_trainer: %s: %s\n", what, remat_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 20;
    if (steps < 1 || steps > 100000) {
        fprintf(stderr, "zero1_trainer: steps '%s': give 1 to 100000\n", argv[1]);
        return 2;
    }
    remat_comm *c = NULL;
    if (remat_comm_create_world(&c) != REMAT_OK)
        return fail("cannot start the ranks");
    int rank = remat_comm_rank(c), size = remat_comm_size(c);
    if (ROWS % size != 0) {
        fprintf(stderr, "zero1_trainer: %d ranks cannot split %d rows evenly\n", size, ROWS);
        remat_comm_destroy(c);
        return 2;
    }
    size_t n = (size_t)OUT * IN + OUT, shard = (n + size - 1) / size, padded = shard * size;
    float *w = calloc(padded, sizeof *w), *g = calloc(padded, sizeof *g);
    float *m = calloc(shard, sizeof *m), *v = calloc(shard, sizeof *v); /* this rank's shard */
    if (!w || !g || !m || !v) {
        fprintf(stderr, "zero1_trainer: out of memory\n");
        return 1;
    }
    int rows = ROWS / size, first = rank * rows, rc = 0;
    for (int t = 1; t <= steps && rc == 0; t++) {
        memset(g, 0, padded * sizeof *g);
        double loss = 0;
        for (int r = first; r < first + rows; r++) {
            float x[IN];
            for (int i = 0; i < IN; i++)
                x[i] = noise((uint64_t)t * 100003 + (uint64_t)r * IN + i);
            for (int o = 0; o < OUT; o++) {
                float y = w[OUT * IN + o], want = 0;
                for (int i = 0; i < IN; i++) {
                    y += w[o * IN + i] * x[i];
                    want += noise(1u << 30 | (uint64_t)(o * IN + i)) * x[i];
                }
                float d = y - want; /* d(mean of d^2) / dy, over every rank's rows */
                loss += (double)d * d;
                float s = 2 * d / (float)(ROWS * OUT);
                for (int i = 0; i < IN; i++)
                    g[o * IN + i] += s * x[i];
                g[OUT * IN + o] += s;
            }
        }
        /* the shard's summed gradient lands at its own offset; update it; gather the weights */
        if (remat_comm_reduce_scatter(c, g, g + rank * shard, shard, REMAT_COMM_F32) != REMAT_OK ||
            remat_comm_allreduce(c, &loss, &loss, 1, REMAT_COMM_F64) != REMAT_OK) {
            rc = fail("reduce");
            break;
        }
        const float lr = 0.05f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
        for (size_t k = 0; k < shard; k++) {
            float gk = g[rank * shard + k], *p = &w[rank * shard + k];
            m[k] = b1 * m[k] + (1 - b1) * gk;
            v[k] = b2 * v[k] + (1 - b2) * gk * gk;
            float mh = m[k] / (1 - powf(b1, (float)t)), vh = v[k] / (1 - powf(b2, (float)t));
            *p -= lr * mh / (sqrtf(vh) + eps);
        }
        if (remat_comm_allgather(c, w + rank * shard, w, shard, REMAT_COMM_F32) != REMAT_OK) {
            rc = fail("gather");
            break;
        }
        if (rank == 0)
            printf("step %d loss %.6f\n", t, loss / (ROWS * OUT));
    }
    remat_comm_stats st;
    if (rc == 0 && rank == 0 && remat_comm_stats_get(c, &st) == REMAT_OK)
        printf("%d rank%s, %zu parameters in shards of %zu; sent %llu bytes a step\n", size,
               size == 1 ? "" : "s", n, shard, (unsigned long long)(st.bytes_sent / steps));
    free(w);
    free(g);
    free(m);
    free(v);
    remat_comm_destroy(c);
    return rc;
}
