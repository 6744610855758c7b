/* kernels/cuda/matmul.cu: the linear layer out = inp @ weight^T + bias through cuBLAS: float32
 * with cublasSgemm, bf16 with cublasGemmEx (bf16 inputs and output, float32 accumulation). cuBLAS
 * is column-major: a row-major [R, C] matrix is its column-major transpose, so each row-major
 * product below is written as the transposed column-major one (llm.c's train_gpt2.cu does the
 * same). */
#include "kernels/cuda/cuda_kernels.h"

template <typename S> __global__ static void bias_fill_kernel(S *out, const S *bias, int N, int OC)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)N * OC)
        out[i] = bias[i % OC];
}

#define SUM_ROW_LANES 32

/* Block (32, SUM_ROW_LANES): 32 columns; each row lane sums every SUM_ROW_LANES-th row, then the
 * lanes are added in a fixed order: out[c] += sum over rows of x[., c]. */
template <typename S> __global__ static void column_sums_kernel(S *out, const S *x, int N, int C)
{
    __shared__ float part[SUM_ROW_LANES][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (c < C)
        for (int n = threadIdx.y; n < N; n += SUM_ROW_LANES)
            acc += kc_ld(&x[(size_t)n * C + c]);
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float total = 0.0f;
        for (int y = 0; y < SUM_ROW_LANES; y++)
            total += part[y][threadIdx.x];
        kc_st(&out[c], kc_ld(&out[c]) + total);
    }
}

template <typename S> static void column_sums(kern_ctx *k, S *out, const S *x, int N, int C, const char *what)
{
    column_sums_kernel<<<kc_blocks(C, 32), dim3(32, SUM_ROW_LANES), 0, kc_stream(k)>>>(out, x, N,
                                                                                       C);
    kern_cuda_launched(k, what);
}

void kern_cuda_column_sums(kern_ctx *k, float *out, const float *x, int N, int C, const char *what)
{
    column_sums(k, out, x, N, C, what);
}

void kern_cuda_column_sums(kern_ctx *k, kern_bf16 *out, const kern_bf16 *x, int N, int C,
                           const char *what)
{
    column_sums(k, out, x, N, C, what);
}

/* Fills out[N, OC] with the bias rows (the GEMM then adds into it with beta = 1); 0 (the GEMM's
 * beta) without a bias. */
template <typename S> static float bias_fill(kern_ctx *k, S *out, const S *bias, int N, int OC)
{
    if (!bias)
        return 0.0f;
    size_t n = (size_t)N * OC;
    bias_fill_kernel<<<kc_blocks(n, 256), 256, 0, kc_stream(k)>>>(out, bias, N, OC);
    kern_cuda_launched(k, "matmul_forward (bias)");
    return 1.0f;
}

/* out^T[OC,N] = weight[OC,C] inp^T[C,N] (+ bias pre-filled, beta = 1) */
void kern_cuda_matmul_forward(kern_ctx *k, float *out, const float *inp, const float *weight,
                              const float *bias, int N, int C, int OC)
{
    float beta = bias_fill(k, out, bias, N, OC);
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

/* The same products in bf16: the bias (exact in the output's bf16) and the float32 sum of the
 * products are rounded once into out, as the CPU's bf16 GEMM does. */
void kern_cuda_bf16_matmul_forward(kern_ctx *k, kern_bf16 *out, const kern_bf16 *inp,
                                   const kern_bf16 *weight, const kern_bf16 *bias, int N, int C,
                                   int OC)
{
    float beta = bias_fill(k, out, bias, N, OC);
    kern_cuda_gemm_ex(k, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, 1.0f, weight, C, inp, C, CUDA_R_16BF,
                      beta, out, OC, CUDA_R_16BF, "matmul_forward (bf16)");
}

void kern_cuda_bf16_matmul_backward(kern_ctx *k, kern_bf16 *dinp, kern_bf16 *dweight,
                                    kern_bf16 *dbias, const kern_bf16 *dout, const kern_bf16 *inp,
                                    const kern_bf16 *weight, int N, int C, int OC)
{
    if (dinp)
        kern_cuda_gemm_ex(k, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, 1.0f, weight, C, dout, OC,
                          CUDA_R_16BF, 1.0f, dinp, C, CUDA_R_16BF, "matmul_backward (bf16 dinp)");
    kern_cuda_gemm_ex(k, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, 1.0f, inp, C, dout, OC, CUDA_R_16BF,
                      1.0f, dweight, C, CUDA_R_16BF, "matmul_backward (bf16 dweight)");
    if (dbias)
        kern_cuda_column_sums(k, dbias, dout, N, OC, "matmul_backward (bf16 dbias)");
}
