/* kernels/cuda/context.cu: the CUDA kernel context: stream, cuBLAS handle (cuBLAS is loaded with
 * dlopen, so that no -lcublas is needed and a missing cuBLAS is a status, not a start failure),
 * and the sticky first error that status() reports. */
#include "kernels/cuda/cuda_kernels.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* cublasGemmEx and cublasGemmStridedBatchedEx (cublas_api.h also declares C++ overloads of both
 * names, so their types are spelled out rather than taken with decltype). */
typedef cublasStatus_t (*gemm_ex_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                                     int, int, const void *, const void *, cudaDataType, int,
                                     const void *, cudaDataType, int, const void *, void *,
                                     cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
typedef cublasStatus_t (*gemm_ex_batched_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t,
                                             int, int, int, const void *, const void *,
                                             cudaDataType, int, long long, const void *,
                                             cudaDataType, int, long long, const void *, void *,
                                             cudaDataType, int, long long, int,
                                             cublasComputeType_t, cublasGemmAlgo_t);

/* The cuBLAS entry points we use, with their prototypes taken from cublas_v2.h. */
static struct {
    void *lib;
    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    decltype(&cublasSetStream_v2) set_stream;
    decltype(&cublasSgemm_v2) sgemm;
    decltype(&cublasSgemmStridedBatched) sgemm_batched;
    gemm_ex_fn gemm_ex;
    gemm_ex_batched_fn gemm_ex_batched;
    char error[256];
} cublas;

static pthread_once_t cublas_once = PTHREAD_ONCE_INIT;

static void *cublas_sym(const char *name)
{
    void *f = dlsym(cublas.lib, name);
    if (!f && !cublas.error[0])
        snprintf(cublas.error, sizeof cublas.error, "cuBLAS has no symbol %s", name);
    return f;
}

static void cublas_load(void)
{
    cublas.lib = dlopen("libcublas.so.13", RTLD_NOW | RTLD_LOCAL);
    if (!cublas.lib)
        cublas.lib = dlopen("libcublas.so", RTLD_NOW | RTLD_LOCAL);
    if (!cublas.lib) {
        snprintf(cublas.error, sizeof cublas.error,
                 "cannot load cuBLAS (libcublas.so.13 or libcublas.so): %s", dlerror());
        return;
    }
    cublas.create = (decltype(cublas.create))cublas_sym("cublasCreate_v2");
    cublas.destroy = (decltype(cublas.destroy))cublas_sym("cublasDestroy_v2");
    cublas.set_stream = (decltype(cublas.set_stream))cublas_sym("cublasSetStream_v2");
    cublas.sgemm = (decltype(cublas.sgemm))cublas_sym("cublasSgemm_v2");
    cublas.sgemm_batched = (decltype(cublas.sgemm_batched))cublas_sym("cublasSgemmStridedBatched");
    cublas.gemm_ex = (gemm_ex_fn)cublas_sym("cublasGemmEx");
    cublas.gemm_ex_batched = (gemm_ex_batched_fn)cublas_sym("cublasGemmStridedBatchedEx");
}

static void ctx_fail(kern_ctx *k, remat_status s, const char *fmt, const char *what,
                     const char *detail)
{
    if (k->error != REMAT_OK)
        return; /* keep the first failure: later ones are usually its consequences */
    k->error = s;
    snprintf(k->error_msg, sizeof k->error_msg, fmt, what, detail);
}

int kern_cuda_check(kern_ctx *k, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return 1;
    remat_status s = e == cudaErrorMemoryAllocation ? REMAT_ENOMEM : REMAT_EDEVICE;
    ctx_fail(k, s, "CUDA kernel %s failed: %s", what, cudaGetErrorString(e));
    return 0;
}

void kern_cuda_launched(kern_ctx *k, const char *what)
{
    kern_cuda_check(k, cudaGetLastError(), what);
}

static void cublas_check(kern_ctx *k, cublasStatus_t st, const char *what)
{
    if (st == CUBLAS_STATUS_SUCCESS)
        return;
    char code[32];
    snprintf(code, sizeof code, "cuBLAS status %d", (int)st);
    ctx_fail(k, REMAT_EDEVICE, "CUDA kernel %s failed: %s", what, code);
}

void kern_cuda_sgemm(kern_ctx *k, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int kk,
                     float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                     float *C, int ldc, const char *what)
{
    cublas_check(k,
                 cublas.sgemm((cublasHandle_t)k->cublas, ta, tb, m, n, kk, &alpha, A, lda, B, ldb,
                              &beta, C, ldc),
                 what);
}

void kern_cuda_sgemm_batched(kern_ctx *k, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                             int kk, float alpha, const float *A, int lda, long long stride_a,
                             const float *B, int ldb, long long stride_b, float beta, float *C,
                             int ldc, long long stride_c, int batch, const char *what)
{
    cublas_check(k,
                 cublas.sgemm_batched((cublasHandle_t)k->cublas, ta, tb, m, n, kk, &alpha, A, lda,
                                      stride_a, B, ldb, stride_b, &beta, C, ldc, stride_c, batch),
                 what);
}

void kern_cuda_gemm_ex(kern_ctx *k, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                       int kk, float alpha, const void *A, int lda, const void *B, int ldb,
                       cudaDataType ab, float beta, void *C, int ldc, cudaDataType c,
                       const char *what)
{
    cublas_check(k,
                 cublas.gemm_ex((cublasHandle_t)k->cublas, ta, tb, m, n, kk, &alpha, A, ab, lda, B,
                                ab, ldb, &beta, C, c, ldc, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT),
                 what);
}

void kern_cuda_gemm_ex_batched(kern_ctx *k, cublasOperation_t ta, cublasOperation_t tb, int m,
                               int n, int kk, float alpha, const void *A, int lda,
                               long long stride_a, const void *B, int ldb, long long stride_b,
                               cudaDataType ab, float beta, void *C, int ldc, long long stride_c,
                               cudaDataType c, int batch, const char *what)
{
    cublas_check(k,
                 cublas.gemm_ex_batched((cublasHandle_t)k->cublas, ta, tb, m, n, kk, &alpha, A, ab,
                                        lda, stride_a, B, ab, ldb, stride_b, &beta, C, c, ldc,
                                        stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 what);
}

void *kern_cuda_scratch(kern_ctx *k, size_t bytes, const char *what)
{
    if (bytes <= k->dev_scratch_bytes)
        return k->dev_scratch;
    /* The old buffer may still be read by queued work: wait for it before freeing. */
    if (!kern_cuda_check(k, cudaStreamSynchronize(kc_stream(k)), what))
        return NULL;
    cudaFree(k->dev_scratch);
    k->dev_scratch = NULL;
    k->dev_scratch_bytes = 0;
    void *p = NULL;
    if (!kern_cuda_check(k, cudaMalloc(&p, bytes), what))
        return NULL;
    k->dev_scratch = p;
    k->dev_scratch_bytes = bytes;
    return p;
}

static remat_status open_fail(cudaError_t e, const char *what)
{
    return remat_fail(REMAT_EDEVICE, "kernels: %s failed: %s", what, cudaGetErrorString(e));
}

extern "C" remat_status kern_cuda_open(kern_ctx *k, int index)
{
    pthread_once(&cublas_once, cublas_load);
    if (cublas.error[0])
        return remat_fail(REMAT_EDEVICE, "kernels on cuda:%d: %s", index, cublas.error);
    cudaError_t e = cudaSetDevice(index);
    if (e != cudaSuccess)
        return open_fail(e, "cudaSetDevice");
    /* A blocking stream: it stays ordered with the legacy default stream that plain cudaMemcpy
     * (remat_device_copy) uses, so uploads are complete before kernels read them. */
    cudaStream_t stream;
    e = cudaStreamCreate(&stream);
    if (e != cudaSuccess)
        return open_fail(e, "cudaStreamCreate");
    cublasHandle_t handle;
    cublasStatus_t st = cublas.create(&handle);
    if (st != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(stream);
        return remat_fail(REMAT_EDEVICE, "kernels on cuda:%d: cublasCreate failed (status %d)",
                          index, (int)st);
    }
    cublas.set_stream(handle, stream);
    k->stream = stream;
    k->cublas = handle;
    k->error = REMAT_OK;
    k->error_msg[0] = '\0';
    return REMAT_OK;
}

extern "C" void kern_cuda_close(kern_ctx *k)
{
    if (k->cublas)
        cublas.destroy((cublasHandle_t)k->cublas);
    if (k->stream) {
        cudaStreamSynchronize(kc_stream(k));
        cudaStreamDestroy(kc_stream(k));
    }
    cudaFree(k->dev_scratch);
    k->dev_scratch = NULL;
    k->dev_scratch_bytes = 0;
    k->cublas = NULL;
    k->stream = NULL;
}

remat_status kern_cuda_check_only(kern_ctx *k)
{
    kern_cuda_check(k, cudaPeekAtLastError(), "launched before check()");
    if (k->error != REMAT_OK)
        return remat_fail(k->error, "%s", k->error_msg);
    return REMAT_OK;
}

remat_status kern_cuda_status(kern_ctx *k)
{
    k->syncs++;
    kern_cuda_check(k, cudaStreamSynchronize(kc_stream(k)), "queued before status()");
    if (k->error != REMAT_OK)
        return remat_fail(k->error, "%s", k->error_msg);
    return REMAT_OK;
}
