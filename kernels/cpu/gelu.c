/* kernels/cpu/gelu.c: tanh-approximated GELU, forward and backward. */
#include "kernels/cpu/cpu.h"
#include "kernels/math.h"

void kern_cpu_gelu_forward(kern_ctx *k, float *out, const float *inp, size_t n)
{
    (void)k;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = kern_gelu(inp[i]);
}

void kern_cpu_gelu_backward(kern_ctx *k, float *dinp, const float *inp, const float *dout, size_t n)
{
    (void)k;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        dinp[i] += kern_gelu_grad(inp[i]) * dout[i];
}
