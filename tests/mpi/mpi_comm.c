/* tests/mpi/mpi_comm.c: remat_comm's collectives on N processes, run by scripts/run-tests.sh under
 * `mpirun -np 2` and `-np 4`. Each check compares with the value every rank computes alone from
 * the ranks' known inputs (small integers, so every float sum is exact in any order). Prints
 * "mpi_comm: R ranks, N checks, F failed" on rank 0 and exits non-zero on any failure.
 * `mpi_comm die`: rank 1 exits with status 3 in the middle of a collective loop; the job must end
 * (mpirun's non-zero exit), never hang. */
#include "kernels/math.h"
#include "remat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int checks, failures, rank_g;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "rank %d: %s:%d: ", rank_g, __FILE__, __LINE__);                       \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

#define OK(call) CHECK((call) == REMAT_OK, "%s: %s", #call, remat_last_error())

/* Rank r's element i: small integers, exact in float, bf16 (|x| <= 256) and their sums. */
static int val(int r, size_t i) { return (int)((r * 7 + (int)i * 3) % 11) - 5; }

static void test_allreduce(remat_comm *c, int n, int r)
{
    enum { N = 1000 };
    float f[N], g[N];
    double d[N];
    int32_t k[N];
    kern_bf16 b[N];
    for (size_t i = 0; i < N; i++) {
        f[i] = (float)val(r, i);
        d[i] = val(r, i) * 0.5;
        k[i] = val(r, i) * 1000;
        b[i] = kern_f32_to_bf16((float)val(r, i));
    }
    OK(remat_comm_allreduce(c, f, g, N, REMAT_COMM_F32));
    OK(remat_comm_allreduce(c, f, f, N, REMAT_COMM_F32)); /* in place */
    OK(remat_comm_allreduce(c, d, d, N, REMAT_COMM_F64));
    OK(remat_comm_allreduce(c, k, k, N, REMAT_COMM_I32));
    OK(remat_comm_allreduce(c, b, b, N, REMAT_COMM_BF16));
    int bad = 0;
    for (size_t i = 0; i < N; i++) {
        int want = 0;
        for (int q = 0; q < n; q++)
            want += val(q, i);
        bad += g[i] != (float)want || f[i] != (float)want || d[i] != want * 0.5 ||
               k[i] != want * 1000 || kern_bf16_to_f32(b[i]) != (float)want;
    }
    CHECK(bad == 0, "allreduce: %d of %d elements wrong", bad, N);
}

static void test_reduce_scatter(remat_comm *c, int n, int r)
{
    for (size_t count = 1; count <= 9; count += 4) {
        float *send = malloc(n * count * sizeof *send), out[9];
        for (size_t i = 0; i < n * count; i++)
            send[i] = (float)val(r, i);
        OK(remat_comm_reduce_scatter(c, send, out, count, REMAT_COMM_F32));
        OK(remat_comm_reduce_scatter(c, send, send + r * count, count, REMAT_COMM_F32));
        int bad = 0;
        for (size_t i = 0; i < count; i++) {
            int want = 0;
            for (int q = 0; q < n; q++)
                want += val(q, r * count + i);
            bad += out[i] != (float)want || send[r * count + i] != (float)want;
        }
        CHECK(bad == 0, "reduce_scatter count %zu: %d wrong", count, bad);
        /* an overlap other than the rank's own slice is refused */
        if (n > 1)
            CHECK(remat_comm_reduce_scatter(c, send, send + ((r + 1) % n) * count + 0, count,
                                            REMAT_COMM_F32) == REMAT_EINVAL,
                  "reduce_scatter into another rank's slice was accepted");
        free(send);
    }
}

static void test_allgather(remat_comm *c, int n, int r)
{
    enum { K = 5 };
    int32_t mine[K], *all = malloc(n * K * sizeof *all), *inpl = malloc(n * K * sizeof *inpl);
    for (int i = 0; i < K; i++)
        mine[i] = inpl[r * K + i] = val(r, i) + 100 * r;
    OK(remat_comm_allgather(c, mine, all, K, REMAT_COMM_I32));
    OK(remat_comm_allgather(c, inpl + r * K, inpl, K, REMAT_COMM_I32));
    int bad = 0;
    for (int q = 0; q < n; q++)
        for (int i = 0; i < K; i++)
            bad += all[q * K + i] != val(q, i) + 100 * q || inpl[q * K + i] != val(q, i) + 100 * q;
    CHECK(bad == 0, "allgather: %d wrong", bad);
    free(all);
    free(inpl);
}

static void test_broadcast_and_checks(remat_comm *c, int n, int r)
{
    char buf[32];
    snprintf(buf, sizeof buf, "from rank %d", r);
    OK(remat_comm_broadcast(c, buf, sizeof buf, REMAT_COMM_BYTE, n - 1));
    char want[32];
    snprintf(want, sizeof want, "from rank %d", n - 1);
    CHECK(strcmp(buf, want) == 0, "broadcast: got '%s'", buf);
    CHECK(remat_comm_broadcast(c, buf, 1, REMAT_COMM_BYTE, n) == REMAT_EINVAL,
          "a root outside the ranks was accepted");

    int same = 42, differs = r == n - 1 ? 7 : 42;
    OK(remat_comm_check_same(c, "--zero", &same, sizeof same));
    remat_status s = remat_comm_check_same(c, "--zero", &differs, sizeof differs);
    if (n > 1) {
        char expect[64];
        snprintf(expect, sizeof expect, "rank %d", n - 1);
        CHECK(s == REMAT_EINVAL && strstr(remat_last_error(), "--zero differs between ranks") &&
                  strstr(remat_last_error(), expect),
              "check_same: status %d, message '%s'", (int)s, remat_last_error());
    }
    float x = 1;
    CHECK(remat_comm_allreduce(c, &x, &x, 1, REMAT_COMM_BYTE) == REMAT_EINVAL,
          "a sum of bytes was accepted");
    OK(remat_comm_barrier(c));
}

static void test_stats(remat_comm *c, int n)
{
    remat_comm_stats_reset(c);
    static float big[4096];
    OK(remat_comm_allreduce(c, big, big, 4096, REMAT_COMM_F32));
    OK(remat_comm_reduce_scatter(c, big, big + remat_comm_rank(c) * (4096 / n), 4096 / n,
                                 REMAT_COMM_F32));
    remat_comm_stats st;
    OK(remat_comm_stats_get(c, &st));
    uint64_t bytes = 4096 * 4, slice = (4096 / n) * 4;
    uint64_t want = 2 * bytes * (n - 1) / n + slice * (n - 1);
    CHECK(st.calls == 2 && st.allreduce_calls == 1 && st.reduce_scatter_calls == 1 &&
              st.bytes_sent == want && st.bytes_received == want,
          "stats: %llu calls, %llu sent, %llu received (want %llu)",
          (unsigned long long)st.calls, (unsigned long long)st.bytes_sent,
          (unsigned long long)st.bytes_received, (unsigned long long)want);
}

int main(int argc, char **argv)
{
    remat_comm *c = NULL;
    if (remat_comm_create_world(&c) != REMAT_OK) {
        fprintf(stderr, "mpi_comm: %s\n", remat_last_error());
        return 1;
    }
    int n = remat_comm_size(c), r = remat_comm_rank(c);
    rank_g = r;
    if (argc > 1 && strcmp(argv[1], "die") == 0) {
        float x[256] = {0};
        for (int i = 0;; i++) {
            if (r == 1 && i == 3)
                _exit(3); /* a crash: no MPI_Finalize */
            if (remat_comm_allreduce(c, x, x, 256, REMAT_COMM_F32) != REMAT_OK) {
                fprintf(stderr, "rank %d: %s\n", r, remat_last_error());
                remat_comm_destroy(c);
                return 4;
            }
            if (i > 1000000)
                return 5;
        }
    }
    const char *ws = getenv("OMPI_COMM_WORLD_SIZE");
    CHECK(!ws || atoi(ws) == n, "size %d, launcher says %s", n, ws);
    CHECK(strcmp(remat_comm_backend(c), n > 1 || ws ? "mpi" : "self") == 0, "backend %s",
          remat_comm_backend(c));
    CHECK(remat_comm_local_rank(c) >= 0 && remat_comm_local_rank(c) < n, "local rank %d",
          remat_comm_local_rank(c));
    test_allreduce(c, n, r);
    test_reduce_scatter(c, n, r);
    test_allgather(c, n, r);
    test_broadcast_and_checks(c, n, r);
    test_stats(c, n);
    /* every rank's failures, so rank 0's line is the job's */
    int32_t f = failures;
    if (remat_comm_allreduce(c, &f, &f, 1, REMAT_COMM_I32) != REMAT_OK)
        f = failures + 1;
    if (r == 0)
        printf("mpi_comm: %d ranks, %d checks, %d failed\n", n, checks, (int)f);
    remat_comm_destroy(c);
    return f == 0 ? 0 : 1;
}
