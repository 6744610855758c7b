/* kernels/cpu/bf16.c: the CPU bf16 table and its elementwise kernels (embedding, LayerNorm, GELU,
 * residual, softmax cross-entropy, AdamW, conversions). Loads and stores go through the math.h
 * helpers; sums over rows are float32 per column block, rounded into the bf16 gradient once. */
#include "kernels/cpu/bf16.h"

#include <stdlib.h>

static float bf(kern_bf16 h)
{
    return kern_bf16_to_f32(h);
}

static kern_bf16 rn(float f)
{
    return kern_f32_to_bf16(f);
}

static int bf16_min(int a, int b)
{
    return a < b ? a : b;
}

/* ==== Embedding ============================================================================ */

static void bf16_encoder_forward(kern_ctx *k, kern_bf16 *out, const int *inp, const kern_bf16 *wte,
                                 const kern_bf16 *wpe, int B, int T, int C)
{
    (void)k;
    long rows = (long)B * T;
#pragma omp parallel for schedule(static)
    for (long n = 0; n < rows; n++) {
        const kern_bf16 *tok = wte + (size_t)inp[n] * C, *pos = wpe + (size_t)(n % T) * C;
        kern_bf16 *o = out + (size_t)n * C;
#pragma omp simd
        for (int c = 0; c < C; c++)
            o[c] = rn(bf(tok[c]) + bf(pos[c]));
    }
}

static int bf16_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Adds, for each run of rows order[r0..r1) sharing one destination row, their float32 sum of
 * dout to dst's row (one rounding per destination row and channel). key(order) gives the row. */
static void bf16_add_grouped(kern_bf16 *dst, const kern_bf16 *dout, const uint64_t *order,
                             long rows, int C)
{
    int blocks = (C + KERN_CPU_COL_BLOCK - 1) / KERN_CPU_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        int c0 = blk * KERN_CPU_COL_BLOCK, c1 = bf16_min(c0 + KERN_CPU_COL_BLOCK, C);
        for (long r = 0; r < rows;) {
            uint64_t row = order[r] >> 32;
            float sum[KERN_CPU_COL_BLOCK] = {0};
            for (; r < rows && order[r] >> 32 == row; r++) {
                const kern_bf16 *d = dout + (size_t)(order[r] & 0xffffffffu) * C;
#pragma omp simd
                for (int c = c0; c < c1; c++)
                    sum[c - c0] += bf(d[c]);
            }
            kern_bf16 *o = dst + (size_t)row * C;
            for (int c = c0; c < c1; c++)
                o[c] = rn(bf(o[c]) + sum[c - c0]);
        }
    }
}

/* Rows are sorted by (token, position) and by (position, batch) so that every dwte / dwpe row
 * is summed in float32, in row order, before one rounding: repeated tokens do not round once per
 * occurrence. */
static void bf16_encoder_backward(kern_ctx *k, kern_bf16 *dwte, kern_bf16 *dwpe,
                                  const kern_bf16 *dout, const int *inp, int B, int T, int C)
{
    long rows = (long)B * T;
    uint64_t *order = kern_cpu_scratch(k, (size_t)rows * sizeof *order, "bf16 encoder backward");
    if (!order)
        return;
    for (long n = 0; n < rows; n++)
        order[n] = (uint64_t)(uint32_t)inp[n] << 32 | (uint64_t)n;
    qsort(order, (size_t)rows, sizeof *order, bf16_cmp_u64);
    bf16_add_grouped(dwte, dout, order, rows, C);
    for (long n = 0; n < rows; n++) /* position-major: row n = b T + t */
        order[(n % T) * B + n / T] = (uint64_t)(n % T) << 32 | (uint64_t)n;
    bf16_add_grouped(dwpe, dout, order, rows, C);
}

/* ==== LayerNorm ============================================================================ */

static void bf16_ln_row_forward(kern_bf16 *out, float *mean_out, float *rstd_out,
                                const kern_bf16 *x, const kern_bf16 *weight, const kern_bf16 *bias,
                                int C)
{
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int c = 0; c < C; c++)
        sum += bf(x[c]);
    float mean = sum / C, sq = 0.0f;
#pragma omp simd reduction(+ : sq)
    for (int c = 0; c < C; c++)
        sq += (bf(x[c]) - mean) * (bf(x[c]) - mean);
    float rstd = kern_ln_rstd(sq / C);
#pragma omp simd
    for (int c = 0; c < C; c++)
        out[c] = rn(kern_ln_norm(bf(x[c]), mean, rstd) * bf(weight[c]) + bf(bias[c]));
    *mean_out = mean;
    *rstd_out = rstd;
}

static void bf16_layernorm_forward(kern_ctx *k, kern_bf16 *out, float *mean, float *rstd,
                                   const kern_bf16 *inp, const kern_bf16 *weight,
                                   const kern_bf16 *bias, int N, int C)
{
    (void)k;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        bf16_ln_row_forward(out + (size_t)n * C, &mean[n], &rstd[n], inp + (size_t)n * C, weight,
                            bias, C);
}

static void bf16_ln_row_dinp(kern_bf16 *dinp, const kern_bf16 *dout, const kern_bf16 *x,
                             const kern_bf16 *weight, float mean, float rstd, int C)
{
    float dnorm_sum = 0.0f, dnorm_norm_sum = 0.0f;
#pragma omp simd reduction(+ : dnorm_sum, dnorm_norm_sum)
    for (int c = 0; c < C; c++) {
        float dnorm = bf(weight[c]) * bf(dout[c]);
        dnorm_sum += dnorm;
        dnorm_norm_sum += dnorm * kern_ln_norm(bf(x[c]), mean, rstd);
    }
    float dnorm_mean = dnorm_sum / C, dnorm_norm_mean = dnorm_norm_sum / C;
#pragma omp simd
    for (int c = 0; c < C; c++)
        dinp[c] = rn(bf(dinp[c]) + kern_ln_dinp(bf(weight[c]) * bf(dout[c]),
                                                kern_ln_norm(bf(x[c]), mean, rstd), dnorm_mean,
                                                dnorm_norm_mean, rstd));
}

static void bf16_ln_param_grads(kern_bf16 *dweight, kern_bf16 *dbias, const kern_bf16 *dout,
                                const kern_bf16 *inp, const float *mean, const float *rstd, int N,
                                int C)
{
    int blocks = (C + KERN_CPU_COL_BLOCK - 1) / KERN_CPU_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        int c0 = blk * KERN_CPU_COL_BLOCK, c1 = bf16_min(c0 + KERN_CPU_COL_BLOCK, C);
        float dw[KERN_CPU_COL_BLOCK] = {0}, db[KERN_CPU_COL_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const kern_bf16 *d = dout + (size_t)n * C, *x = inp + (size_t)n * C;
#pragma omp simd
            for (int c = c0; c < c1; c++) {
                dw[c - c0] += kern_ln_norm(bf(x[c]), mean[n], rstd[n]) * bf(d[c]);
                db[c - c0] += bf(d[c]);
            }
        }
        for (int c = c0; c < c1; c++) {
            dweight[c] = rn(bf(dweight[c]) + dw[c - c0]);
            dbias[c] = rn(bf(dbias[c]) + db[c - c0]);
        }
    }
}

static void bf16_layernorm_backward(kern_ctx *k, kern_bf16 *dinp, kern_bf16 *dweight,
                                    kern_bf16 *dbias, const kern_bf16 *dout, const kern_bf16 *inp,
                                    const kern_bf16 *weight, const float *mean, const float *rstd,
                                    int N, int C)
{
    (void)k;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        bf16_ln_row_dinp(dinp + (size_t)n * C, dout + (size_t)n * C, inp + (size_t)n * C, weight,
                         mean[n], rstd[n], C);
    bf16_ln_param_grads(dweight, dbias, dout, inp, mean, rstd, N, C);
}

/* ==== GELU, residual ======================================================================= */

static void bf16_gelu_forward(kern_ctx *k, kern_bf16 *out, const kern_bf16 *inp, size_t n)
{
    (void)k;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = rn(kern_gelu(bf(inp[i])));
}

static void bf16_gelu_backward(kern_ctx *k, kern_bf16 *dinp, const kern_bf16 *inp,
                               const kern_bf16 *dout, size_t n)
{
    (void)k;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        dinp[i] = rn(bf(dinp[i]) + kern_gelu_grad(bf(inp[i])) * bf(dout[i]));
}

static void bf16_residual_forward(kern_ctx *k, kern_bf16 *out, const kern_bf16 *a,
                                  const kern_bf16 *b, size_t n)
{
    (void)k;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = rn(bf(a[i]) + bf(b[i]));
}

static void bf16_accumulate(kern_ctx *k, kern_bf16 *dst, const kern_bf16 *src, size_t n)
{
    (void)k;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] = rn(bf(dst[i]) + bf(src[i]));
}

/* ==== Softmax cross-entropy ================================================================ */

static float bf16_row_max(const kern_bf16 *x, int n)
{
    float m = -INFINITY;
    for (int i = 0; i < n; i++)
        m = bf(x[i]) > m ? bf(x[i]) : m;
    return m;
}

/* The exponentials are computed twice (sum, then gradient) rather than parked in the bf16
 * dlogits, whose rounding would enter the gradient; dlogits may alias x: the target logit is read
 * first and each element is read before it is written. */
static float bf16_xent_row(kern_bf16 *dlogits, const kern_bf16 *x, int target, float dscale, int V,
                           int Vp)
{
    float row_max = bf16_row_max(x, V), target_logit = bf(x[target]);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < V; i++)
        sum += kern_softmax_term(bf(x[i]), row_max);
    if (dlogits) {
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < V; i++)
            dlogits[i] = rn(
                kern_xent_dlogit(kern_softmax_term(bf(x[i]), row_max) * inv, i == target, dscale));
        for (int i = V; i < Vp; i++)
            dlogits[i] = 0;
    }
    return kern_xent_loss(target_logit, row_max, (float)sum);
}

static void bf16_softmax_xent(kern_ctx *k, float *losses, kern_bf16 *dlogits,
                              const kern_bf16 *logits, const int *targets, float dscale, int N,
                              int V, int Vp)
{
    (void)k;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        losses[n] = bf16_xent_row(dlogits ? dlogits + (size_t)n * Vp : NULL,
                                  logits + (size_t)n * Vp, targets[n], dscale, V, Vp);
}

/* ==== AdamW and conversions ================================================================ */

static void bf16_adamw_master(kern_ctx *k, kern_bf16 *params, float *master, const kern_bf16 *grads,
                              float *m, float *v, size_t n, float lr, float beta1, float beta2,
                              float eps, float weight_decay, int t)
{
    (void)k;
    kern_adamw_step s = kern_adamw_prepare(lr, beta1, beta2, eps, weight_decay, t);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        kern_adamw_update_master(&params[i], &master[i], bf(grads[i]), &m[i], &v[i], &s);
}

static void bf16_adamw_sr(kern_ctx *k, kern_bf16 *params, const kern_bf16 *grads, float *m,
                          float *v, size_t n, float lr, float beta1, float beta2, float eps,
                          float weight_decay, int t, uint64_t seed)
{
    (void)k;
    kern_adamw_step s = kern_adamw_prepare(lr, beta1, beta2, eps, weight_decay, t);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        kern_adamw_update_sr(&params[i], bf(grads[i]), &m[i], &v[i], &s, kern_sr_bits(seed, i));
}

static void bf16_to_bf16(kern_ctx *k, kern_bf16 *dst, const float *src, size_t n)
{
    (void)k;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] = rn(src[i]);
}

static void bf16_to_f32(kern_ctx *k, float *dst, const kern_bf16 *src, size_t n)
{
    (void)k;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] = bf(src[i]);
}

const kern_bf16_table kern_cpu_bf16 = {
    .name = "cpu-bf16",
    .gemm_name = kern_cpu_bf16_gemm_name,
    .encoder_forward = bf16_encoder_forward,
    .encoder_backward = bf16_encoder_backward,
    .layernorm_forward = bf16_layernorm_forward,
    .layernorm_backward = bf16_layernorm_backward,
    .matmul_forward = kern_cpu_bf16_matmul_forward,
    .matmul_backward = kern_cpu_bf16_matmul_backward,
    .attention_scratch_bytes = kern_cpu_bf16_attention_scratch_bytes,
    .attention_forward = kern_cpu_bf16_attention_forward,
    .attention_backward = kern_cpu_bf16_attention_backward,
    .gelu_forward = bf16_gelu_forward,
    .gelu_backward = bf16_gelu_backward,
    .residual_forward = bf16_residual_forward,
    .accumulate = bf16_accumulate,
    .softmax_xent = bf16_softmax_xent,
    .adamw_master = bf16_adamw_master,
    .adamw_sr = bf16_adamw_sr,
    .to_bf16 = bf16_to_bf16,
    .to_f32 = bf16_to_f32,
};
