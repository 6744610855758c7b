/* kernels/cuda/encoder.cu: token + position embedding, forward and backward, over float32 or
 * bf16. */
#include "kernels/cuda/cuda_kernels.h"

template <typename S>
__global__ static void encoder_forward_kernel(S *out, const int *inp, const S *wte, const S *wpe,
                                              int N, int T, int C)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C)
        return;
    int n = (int)(i / C), c = (int)(i % C);
    kc_st(&out[i], kc_ld(&wte[(size_t)inp[n] * C + c]) + kc_ld(&wpe[(size_t)(n % T) * C + c]));
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

template <typename S>
static void encoder_forward(kern_ctx *k, S *out, const int *inp, const S *wte, const S *wpe, int B,
                            int T, int C)
{
    size_t n = (size_t)B * T * C;
    encoder_forward_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(out, inp, wte, wpe, B * T,
                                                                        T, C);
    kern_cuda_launched(k, "encoder_forward");
}

void kern_cuda_encoder_forward(kern_ctx *k, float *out, const int *inp, const float *wte,
                               const float *wpe, int B, int T, int C)
{
    encoder_forward(k, out, inp, wte, wpe, B, T, C);
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

/* ---- bf16 -------------------------------------------------------------------------------------
 * Each dwte row is the float32 sum, in row order, of the rows that hold its token, added to the
 * bf16 row once (as the CPU kernel does): rounding once per occurrence would lose the gradient of
 * a frequent token. The rows holding one token are chained: link[n] is the next row with row n's
 * token (-1: none), and head[n] says that no earlier row has it. */

__global__ static void token_chain_kernel(int *link, int *head, const int *inp, int N)
{
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N)
        return;
    int tok = inp[n], next = -1, first = 1;
    for (int m = n + 1; m < N; m++)
        if (inp[m] == tok) {
            next = m;
            break;
        }
    for (int m = 0; m < n; m++)
        if (inp[m] == tok) {
            first = 0;
            break;
        }
    link[n] = next;
    head[n] = first;
}

/* One block per row; the block of a chain's first row adds the chain's sum to its dwte row. */
__global__ static void encoder_backward_wte_bf16_kernel(kern_bf16 *dwte, const kern_bf16 *dout,
                                                        const int *inp, const int *link,
                                                        const int *head, int C)
{
    int n = blockIdx.x;
    if (!head[n])
        return;
    kern_bf16 *row = dwte + (size_t)inp[n] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float s = 0.0f;
        for (int m = n; m >= 0; m = link[m])
            s += kc_ld(&dout[(size_t)m * C + c]);
        kc_st(&row[c], kc_ld(&row[c]) + s);
    }
}

/* One thread per (t, c): the batch's sum in order, then one rounding. */
__global__ static void encoder_backward_wpe_bf16_kernel(kern_bf16 *dwpe, const kern_bf16 *dout,
                                                        int B, int T, int C)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * C)
        return;
    float s = 0.0f;
    for (int b = 0; b < B; b++)
        s += kc_ld(&dout[(size_t)b * T * C + i]);
    kc_st(&dwpe[i], kc_ld(&dwpe[i]) + s);
}

void kern_cuda_bf16_encoder_forward(kern_ctx *k, kern_bf16 *out, const int *inp,
                                    const kern_bf16 *wte, const kern_bf16 *wpe, int B, int T, int C)
{
    encoder_forward(k, out, inp, wte, wpe, B, T, C);
}

void kern_cuda_bf16_encoder_backward(kern_ctx *k, kern_bf16 *dwte, kern_bf16 *dwpe,
                                     const kern_bf16 *dout, const int *inp, int B, int T, int C)
{
    int N = B * T;
    if (N <= 0)
        return;
    int *link = (int *)kern_cuda_scratch(k, 2 * (size_t)N * sizeof(int), "encoder_backward (bf16)");
    if (!link)
        return;
    int *head = link + N;
    token_chain_kernel<<<kc_blocks(N, 128), 128, 0, kc_stream(k)>>>(link, head, inp, N);
    kern_cuda_launched(k, "encoder_backward (bf16 token chains)");
    encoder_backward_wte_bf16_kernel<<<N, 256, 0, kc_stream(k)>>>(dwte, dout, inp, link, head, C);
    kern_cuda_launched(k, "encoder_backward (bf16 dwte)");
    encoder_backward_wpe_bf16_kernel<<<kc_blocks((size_t)T * C, 256), 256, 0, kc_stream(k)>>>(
        dwpe, dout, B, T, C);
    kern_cuda_launched(k, "encoder_backward (bf16 dwpe)");
}
