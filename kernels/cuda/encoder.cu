/* kernels/cuda/encoder.cu: token + position embedding, forward and backward. */
#include "kernels/cuda/cuda_kernels.h"

__global__ static void encoder_forward_kernel(float *out, const int *inp, const float *wte,
                                              const float *wpe, int N, int T, int C)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C)
        return;
    int n = (int)(i / C), c = (int)(i % C);
    out[i] = wte[(size_t)inp[n] * C + c] + wpe[(size_t)(n % T) * C + c];
}

/* Tokens repeat across rows, so one thread owns one channel of dwte and walks the rows in order:
 * deterministic, unlike atomics. */
__global__ static void encoder_backward_wte_kernel(float *dwte, const float *dout, const int *inp,
                                                   int N, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    for (int n = 0; n < N; n++)
        dwte[(size_t)inp[n] * C + c] += dout[(size_t)n * C + c];
}

/* One thread per (t, c), summing over the batch in order. */
__global__ static void encoder_backward_wpe_kernel(float *dwpe, const float *dout, int B, int T,
                                                   int C)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * C)
        return;
    float s = dwpe[i];
    for (int b = 0; b < B; b++)
        s += dout[(size_t)b * T * C + i];
    dwpe[i] = s;
}

void kern_cuda_encoder_forward(kern_ctx *k, float *out, const int *inp, const float *wte,
                               const float *wpe, int B, int T, int C)
{
    size_t n = (size_t)B * T * C;
    encoder_forward_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(out, inp, wte, wpe, B * T,
                                                                        T, C);
    kern_cuda_launched(k, "encoder_forward");
}

void kern_cuda_encoder_backward(kern_ctx *k, float *dwte, float *dwpe, const float *dout,
                                const int *inp, int B, int T, int C)
{
    encoder_backward_wte_kernel<<<kc_blocks(C, 64), 64, 0, kc_stream(k)>>>(dwte, dout, inp, B * T,
                                                                           C);
    kern_cuda_launched(k, "encoder_backward (dwte)");
    encoder_backward_wpe_kernel<<<kc_blocks((size_t)T * C, 256), 256, 0, kc_stream(k)>>>(dwpe, dout,
                                                                                         B, T, C);
    kern_cuda_launched(k, "encoder_backward (dwpe)");
}
