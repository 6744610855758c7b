/* kernels/cpu/attention.c: causal multi-head attention with OpenBLAS GEMMs per (batch, head).
 *
 * For one (b, h), q, k and v are T x hs matrices inside qkv with leading dimension 3C, so cblas
 * reads them in place. Rows are processed in blocks of ATT_BLOCK: a row block [r0, r1) only needs
 * the key columns [0, r1), so the GEMMs skip most of the masked upper triangle. Threads take whole
 * heads (GEMMs, softmax and all), so a head's T x T matrix stays in that core's cache; each head is
 * computed by one thread in a fixed order, so results do not depend on the schedule. */
#include "kernels/cpu/cpu.h"
#include "kernels/math.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#define ATT_BLOCK 64

/* Pointers to one (b, h) slice: [T, hs], leading dimension ld = 3C. */
typedef kern_cpu_att_head att_head;

static att_head att_head_at(const float *qkv, int b, int h, int T, int C, int NH)
{
    att_head a;
    a.hs = C / NH;
    a.T = T;
    a.ld = 3 * C;
    a.q = qkv + (size_t)b * T * 3 * C + (size_t)h * a.hs;
    a.k = a.q + C;
    a.v = a.q + 2 * C;
    return a;
}

static int att_block_end(int r0, int T)
{
    return r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T;
}

/* Row t of the scaled scores -> causal softmax in place; columns above t become 0. */
static void att_softmax_row(float *row, int t, int T)
{
    float row_max = kern_cpu_row_max(row, t + 1);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j <= t; j++) {
        row[j] = kern_softmax_term(row[j], row_max);
        sum += row[j];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j <= t; j++)
        row[j] *= inv;
    memset(row + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
}

/* att[T,T] = causal softmax(scale q k^T); out[T,hs] (leading dimension ldo) = att @ v. */
void kern_cpu_att_head_forward(float *out, int ldo, float *att, att_head a)
{
    float scale = kern_att_scale(a.hs);
    for (int r0 = 0; r0 < a.T; r0 += ATT_BLOCK) {
        int r1 = att_block_end(r0, a.T);
        float *rows = att + (size_t)r0 * a.T;
        kern_cpu_sgemm_serial(0, 1, r1 - r0, r1, a.hs, scale, a.q + (size_t)r0 * a.ld, a.ld, a.k,
                              a.ld, 0.0f, rows, a.T);
        for (int t = r0; t < r1; t++)
            att_softmax_row(att + (size_t)t * a.T, t, a.T);
        kern_cpu_sgemm_serial(0, 0, r1 - r0, a.hs, r1, 1.0f, rows, a.T, a.v, a.ld, 0.0f,
                              out + (size_t)r0 * ldo, ldo);
    }
}

/* One T x T float matrix per thread, for the backward's d(att) / d(scores). */
size_t kern_cpu_attention_scratch_bytes(int B, int T, int C, int NH)
{
    (void)B, (void)C, (void)NH;
    return (size_t)kern_cpu_threads() * T * T * sizeof(float);
}

void kern_cpu_attention_forward(kern_ctx *k, float *out, float *att, const float *qkv,
                                void *scratch, int B, int T, int C, int NH)
{
    (void)k, (void)scratch;
    int heads = B * NH;
#pragma omp parallel for schedule(static) num_threads(kern_cpu_threads())
    for (int bh = 0; bh < heads; bh++) {
        int b = bh / NH, h = bh % NH;
        kern_cpu_att_head_forward(out + (size_t)b * T * C + (size_t)h * (C / NH), C,
                                  att + (size_t)bh * T * T, att_head_at(qkv, b, h, T, C, NH));
    }
}

/* Row t: dscore[j] = scale p_j (dp_j - sum_i p_i dp_i) for j <= t, 0 above (in place over dp). */
static void att_softmax_backward_row(float *ds, const float *p, int t, int T, float scale)
{
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j <= t; j++)
        dot += p[j] * ds[j];
#pragma omp simd
    for (int j = 0; j <= t; j++)
        ds[j] = scale * kern_softmax_dscore(p[j], ds[j], dot);
    memset(ds + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
}

/* Gradients of one (b, h): dq, dk, dv inside dqkv (leading dimension 3C); ds: T x T scratch. */
void kern_cpu_att_head_backward(float *dq, const float *dout, int ldo, const float *att, float *ds,
                                att_head a)
{
    float *dk = dq + (a.k - a.q), *dv = dq + (a.v - a.q);
    float scale = kern_att_scale(a.hs);
    /* d(att)[r0:r1, 0:r1] = dout[r0:r1] v[0:r1]^T, then d(scores) for those rows;
     * dv[r0:r1] += att[r0:T, r0:r1]^T dout[r0:T] (att is 0 above the diagonal) */
    for (int r0 = 0; r0 < a.T; r0 += ATT_BLOCK) {
        int r1 = att_block_end(r0, a.T);
        kern_cpu_sgemm_serial(0, 1, r1 - r0, r1, a.hs, 1.0f, dout + (size_t)r0 * ldo, ldo, a.v,
                              a.ld, 0.0f, ds + (size_t)r0 * a.T, a.T);
        for (int t = r0; t < r1; t++)
            att_softmax_backward_row(ds + (size_t)t * a.T, att + (size_t)t * a.T, t, a.T, scale);
        kern_cpu_sgemm_serial(1, 0, r1 - r0, a.hs, a.T - r0, 1.0f, att + (size_t)r0 * a.T + r0, a.T,
                              dout + (size_t)r0 * ldo, ldo, 1.0f, dv + (size_t)r0 * a.ld, a.ld);
    }
    /* dq[r0:r1] += ds[r0:r1, 0:r1] k[0:r1]; dk[r0:r1] += ds[r0:T, r0:r1]^T q[r0:T] */
    for (int r0 = 0; r0 < a.T; r0 += ATT_BLOCK) {
        int r1 = att_block_end(r0, a.T);
        kern_cpu_sgemm_serial(0, 0, r1 - r0, a.hs, r1, 1.0f, ds + (size_t)r0 * a.T, a.T, a.k, a.ld,
                              1.0f, dq + (size_t)r0 * a.ld, a.ld);
        kern_cpu_sgemm_serial(1, 0, r1 - r0, a.hs, a.T - r0, 1.0f, ds + (size_t)r0 * a.T + r0, a.T,
                              a.q + (size_t)r0 * a.ld, a.ld, 1.0f, dk + (size_t)r0 * a.ld, a.ld);
    }
}

void kern_cpu_attention_backward(kern_ctx *k, float *dqkv, const float *dout, const float *qkv,
                                 const float *att, void *scratch, int B, int T, int C, int NH)
{
    (void)k;
    int heads = B * NH, hs = C / NH;
#pragma omp parallel num_threads(kern_cpu_threads())
    {
        float *ds = (float *)scratch + (size_t)omp_get_thread_num() * T * T;
#pragma omp for schedule(static)
        for (int bh = 0; bh < heads; bh++) {
            int b = bh / NH, h = bh % NH;
            size_t qkv_off = (size_t)b * T * 3 * C + (size_t)h * hs;
            kern_cpu_att_head_backward(dqkv + qkv_off, dout + (size_t)b * T * C + (size_t)h * hs, C,
                                       att + (size_t)bh * T * T, ds,
                                       att_head_at(qkv, b, h, T, C, NH));
        }
    }
}
