/* kernels/internal.h: what the kernel tables share privately: the context and the per-device
 * openers. Not part of the public interface. */
#ifndef REMAT_KERNELS_INTERNAL_H
#define REMAT_KERNELS_INTERNAL_H

#ifdef __cplusplus
extern "C" {
#endif

#include "core/core.h"
#include "kernels/kernels.h"

#ifdef __cplusplus
}
#endif

/* One context per opened device. The CPU table uses none of it; the CUDA table keeps its stream,
 * its cuBLAS handle and its first failure here. */
struct kern_ctx {
    remat_device_kind kind;
    int device_index;
    void *stream;       /* cudaStream_t */
    void *cublas;       /* cublasHandle_t */
    remat_status error; /* sticky: the first failure, reported by every later status() */
    char error_msg[512];
    uint64_t syncs;     /* status() calls that waited for the stream (CUDA) */
    /* Host workspace of the CPU bf16 kernels (float32 tiles of their GEMMs, the embedding
     * backward's token order): grown by kern_cpu_scratch, freed by kern_close. */
    void *host_scratch;
    size_t host_scratch_bytes;
    /* Device workspace of the CUDA bf16 kernels (the embedding backward's token chains, a few
     * bytes per row), outside the pool as cuBLAS's own workspace is: kern_cuda_scratch. */
    void *dev_scratch;
    size_t dev_scratch_bytes;
};

#ifdef REMAT_HAVE_CUDA
#ifdef __cplusplus
extern "C" {
#endif
/* Creates the stream and the cuBLAS handle (cuBLAS loaded with dlopen) on GPU `index`. */
remat_status kern_cuda_open(kern_ctx *k, int index);
void kern_cuda_close(kern_ctx *k);
#ifdef __cplusplus
}
#endif
#endif

#endif
