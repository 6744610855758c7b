/* kernels/cpu/layernorm.c: LayerNorm over the channels of each row, forward and backward. */
#include "kernels/cpu/cpu.h"
#include "kernels/math.h"

/* Normalises one row; returns its mean and rstd through the pointers. */
static void ln_row_forward(float *out, float *mean_out, float *rstd_out, const float *x,
                           const float *weight, const float *bias, int C)
{
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int c = 0; c < C; c++)
        sum += x[c];
    float mean = sum / C;
    float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
    for (int c = 0; c < C; c++)
        sq += (x[c] - mean) * (x[c] - mean);
    float rstd = kern_ln_rstd(sq / C);
#pragma omp simd
    for (int c = 0; c < C; c++)
        out[c] = kern_ln_norm(x[c], mean, rstd) * weight[c] + bias[c];
    *mean_out = mean;
    *rstd_out = rstd;
}

void kern_cpu_layernorm_forward(kern_ctx *k, float *out, float *mean, float *rstd, const float *inp,
                                const float *weight, const float *bias, int N, int C)
{
    (void)k;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        ln_row_forward(out + (size_t)n * C, &mean[n], &rstd[n], inp + (size_t)n * C, weight, bias,
                       C);
}

/* dinp of one row: needs the row means of dnorm and dnorm * norm first. */
static void ln_row_dinp(float *dinp, const float *dout, const float *x, const float *weight,
                        float mean, float rstd, int C)
{
    float dnorm_sum = 0.0f, dnorm_norm_sum = 0.0f;
#pragma omp simd reduction(+ : dnorm_sum, dnorm_norm_sum)
    for (int c = 0; c < C; c++) {
        float dnorm = weight[c] * dout[c];
        dnorm_sum += dnorm;
        dnorm_norm_sum += dnorm * kern_ln_norm(x[c], mean, rstd);
    }
    float dnorm_mean = dnorm_sum / C, dnorm_norm_mean = dnorm_norm_sum / C;
#pragma omp simd
    for (int c = 0; c < C; c++)
        dinp[c] += kern_ln_dinp(weight[c] * dout[c], kern_ln_norm(x[c], mean, rstd), dnorm_mean,
                                dnorm_norm_mean, rstd);
}

/* dweight and dbias sum over rows: threads split the channels and each walks every row. */
static void ln_param_grads(float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *mean, const float *rstd, int N, int C)
{
    int blocks = (C + KERN_CPU_COL_BLOCK - 1) / KERN_CPU_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        int c0 = blk * KERN_CPU_COL_BLOCK;
        int c1 = c0 + KERN_CPU_COL_BLOCK < C ? c0 + KERN_CPU_COL_BLOCK : C;
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * C, *x = inp + (size_t)n * C;
#pragma omp simd
            for (int c = c0; c < c1; c++) {
                dweight[c] += kern_ln_norm(x[c], mean[n], rstd[n]) * d[c];
                dbias[c] += d[c];
            }
        }
    }
}

void kern_cpu_layernorm_backward(kern_ctx *k, float *dinp, float *dweight, float *dbias,
                                 const float *dout, const float *inp, const float *weight,
                                 const float *mean, const float *rstd, int N, int C)
{
    (void)k;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        ln_row_dinp(dinp + (size_t)n * C, dout + (size_t)n * C, inp + (size_t)n * C, weight,
                    mean[n], rstd[n], C);
    ln_param_grads(dweight, dbias, dout, inp, mean, rstd, N, C);
}
