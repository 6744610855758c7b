/* kernels/cuda/matmul.cu: the linear layer out = inp @ weight^T + bias through cuBLAS. cuBLAS is
 * column-major: a row-major [R, C] matrix is its column-major transpose, so each row-major product
 * below is written as the transposed column-major one (llm.c's train_gpt2.cu does the same). */
#include "kernels/cuda/cuda_kernels.h"

__global__ static void bias_fill_kernel(float *out, const float *bias, int N, int OC)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)N * OC)
        out[i] = bias[i % OC];
}

#define SUM_ROW_LANES 32

/* Block (32, SUM_ROW_LANES): 32 columns; each row lane sums every SUM_ROW_LANES-th row, then the
 * lanes are added in a fixed order: out[c] += sum over rows of x[., c]. */
__global__ static void column_sums_kernel(float *out, const float *x, int N, int C)
{
    __shared__ float part[SUM_ROW_LANES][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (c < C)
        for (int n = threadIdx.y; n < N; n += SUM_ROW_LANES)
            acc += x[(size_t)n * C + c];
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float total = 0.0f;
        for (int y = 0; y < SUM_ROW_LANES; y++)
            total += part[y][threadIdx.x];
        out[c] += total;
    }
}

void kern_cuda_column_sums(kern_ctx *k, float *out, const float *x, int N, int C, const char *what)
{
    column_sums_kernel<<<kc_blocks(C, 32), dim3(32, SUM_ROW_LANES), 0, kc_stream(k)>>>(out, x, N,
                                                                                       C);
    kern_cuda_launched(k, what);
}

/* out^T[OC,N] = weight[OC,C] inp^T[C,N] (+ bias pre-filled, beta = 1) */
void kern_cuda_matmul_forward(kern_ctx *k, float *out, const float *inp, const float *weight,
                              const float *bias, int N, int C, int OC)
{
    float beta = 0.0f;
    if (bias) {
        size_t n = (size_t)N * OC;
        bias_fill_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(out, bias, N, OC);
        kern_cuda_launched(k, "matmul_forward (bias)");
        beta = 1.0f;
    }
    kern_cuda_sgemm(k, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, 1.0f, weight, C, inp, C, beta, out, OC,
                    "matmul_forward");
}

void kern_cuda_matmul_backward(kern_ctx *k, float *dinp, float *dweight, float *dbias,
                               const float *dout, const float *inp, const float *weight, int N,
                               int C, int OC)
{
    if (dinp) /* dinp^T[C,N] += weight^T[C,OC] dout^T[OC,N] */
        kern_cuda_sgemm(k, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, 1.0f, weight, C, dout, OC, 1.0f,
                        dinp, C, "matmul_backward (dinp)");
    /* dweight^T[C,OC] += inp^T[C,N] dout[N,OC] */
    kern_cuda_sgemm(k, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, 1.0f, inp, C, dout, OC, 1.0f, dweight, C,
                    "matmul_backward (dweight)");
    if (dbias)
        kern_cuda_column_sums(k, dbias, dout, N, OC, "matmul_backward (dbias)");
}
