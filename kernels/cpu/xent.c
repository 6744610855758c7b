/* kernels/cpu/xent.c: fused softmax + cross-entropy over the real vocabulary of padded rows. */
#include "kernels/cpu/cpu.h"
#include "kernels/math.h"

#include <math.h>

/* Loss only: one pass of exponentials. */
static float xent_row_loss(const float *x, int target, int V)
{
    float row_max = kern_cpu_row_max(x, V);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < V; i++)
        sum += kern_softmax_term(x[i], row_max);
    return kern_xent_loss(x[target], row_max, (float)sum);
}

/* Loss and gradient. The exponentials are parked in dlogits and normalised in a second pass, so
 * each is computed once; dlogits may alias x (the target logit is read before any write). */
static float xent_row_grad(float *dlogits, const float *x, int target, float dscale, int V, int Vp)
{
    float row_max = kern_cpu_row_max(x, V);
    float target_logit = x[target];
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < V; i++) {
        float e = kern_softmax_term(x[i], row_max);
        dlogits[i] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < V; i++)
        dlogits[i] = kern_xent_dlogit(dlogits[i] * inv, i == target, dscale);
    for (int i = V; i < Vp; i++)
        dlogits[i] = 0.0f;
    return kern_xent_loss(target_logit, row_max, (float)sum);
}

void kern_cpu_softmax_xent(kern_ctx *k, float *losses, float *dlogits, const float *logits,
                           const int *targets, float dscale, int N, int V, int Vp)
{
    (void)k;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * Vp;
        losses[n] = dlogits ? xent_row_grad(dlogits + (size_t)n * Vp, x, targets[n], dscale, V, Vp)
                            : xent_row_loss(x, targets[n], V);
    }
}
