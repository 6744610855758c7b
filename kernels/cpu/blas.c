/* kernels/cpu/blas.c: how the CPU kernels use OpenBLAS. OpenMP is the one thread pool: OpenBLAS
 * runs single-threaded and every GEMM is split across OpenMP threads here. Two pools on the same
 * cores (OpenBLAS's spinning workers and OpenMP's) fight each other between calls: on this 2-core
 * machine an OpenMP softmax between two OpenBLAS-threaded GEMMs ran over 10x slower than alone. */
#include "kernels/cpu/cpu.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>

/* Below this many multiply-adds a GEMM runs on one thread: waking the others costs more. */
#define BLAS_SERIAL_MACS (1 << 18)

static int blas_threads;
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_init(void)
{
    blas_threads = omp_get_max_threads();
    if (blas_threads < 1)
        blas_threads = 1;
    openblas_set_num_threads(1);
}

int kern_cpu_threads(void)
{
    pthread_once(&blas_once, blas_init);
    return blas_threads;
}

/* [begin, end) of part `i` of `parts` over n, cut at multiples of 16 so each piece keeps whole
 * register tiles of the GEMM micro-kernel. */
static void blas_slice(int n, int parts, int i, int *begin, int *end)
{
    int units = (n + 15) / 16;
    int b = (int)((long)units * i / parts) * 16, e = (int)((long)units * (i + 1) / parts) * 16;
    *begin = b < n ? b : n;
    *end = e < n ? e : n;
}

void kern_cpu_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    int threads = kern_cpu_threads();
    if ((double)M * N * K < BLAS_SERIAL_MACS)
        threads = 1;
    int split_rows = M >= N;
    enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    if (M == 0 || N == 0)
        return;
#pragma omp parallel num_threads(threads)
    {
        int parts = omp_get_num_threads(), b, e;
        blas_slice(split_rows ? M : N, parts, omp_get_thread_num(), &b, &e);
        if (e > b && split_rows) /* rows b..e of C: rows of A (columns if A is transposed) */
            cblas_sgemm(CblasRowMajor, ta, tb, e - b, N, K, alpha,
                        A + (trans_a ? (size_t)b : (size_t)b * lda), lda, B, ldb, beta,
                        C + (size_t)b * ldc, ldc);
        else if (e > b) /* columns b..e of C: columns of B (rows if B is transposed) */
            cblas_sgemm(CblasRowMajor, ta, tb, M, e - b, K, alpha, A, lda,
                        B + (trans_b ? (size_t)b * ldb : (size_t)b), ldb, beta, C + b, ldc);
    }
}

void kern_cpu_sgemm_serial(int trans_a, int trans_b, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *B, int ldb, float beta, float *C,
                           int ldc)
{
    kern_cpu_threads(); /* OpenBLAS single-threaded from here on */
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
