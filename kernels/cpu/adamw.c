/* kernels/cpu/adamw.c: the AdamW update over a flat parameter array. */
#include "kernels/cpu/cpu.h"
#include "kernels/math.h"

void kern_cpu_adamw(kern_ctx *k, float *params, const float *grads, float *m, float *v, size_t n,
                    float lr, float beta1, float beta2, float eps, float weight_decay, int t)
{
    (void)k;
    kern_adamw_step s = kern_adamw_prepare(lr, beta1, beta2, eps, weight_decay, t);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        kern_adamw_update(&params[i], grads[i], &m[i], &v[i], &s);
}
