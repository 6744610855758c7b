/* kernels/kernels.h: the math kernels of the training loop, one table per device (CPU, CUDA).
 *
 * Layout and conventions (llm.c's train_gpt2.c):
 * - float32 everywhere; row-major; tokens are int32. N = B*T rows of C channels.
 * - Forward kernels overwrite their outputs. Backward kernels ACCUMULATE (+=) into every gradient
 *   output, inputs' gradients included, exactly like llm.c: callers zero gradient buffers first.
 * - All pointers are device pointers of the table's device (host memory for the CPU table).
 * - Kernels are pure functions of their arguments: no allocation, no hidden state, no printing. A
 *   CUDA kernel's launch or cuBLAS error is kept in the context and reported by kern->status().
 * - CUDA kernels run on the context's stream and are asynchronous; status() synchronises, check()
 *   does not: a training step calls check() after every stage and status() where it reads a
 *   result back (the loss) and at its end, so the host waits for the GPU twice a step, not once
 *   per stage (kern_syncs counts the waits).
 * - Every kernel's per-element math lives in kernels/math.h (REMAT_HD inline functions) shared by
 *   both tables, so the CPU tests cover the CUDA arithmetic too. */
#ifndef REMAT_KERNELS_H
#define REMAT_KERNELS_H

#include "remat.h"

typedef struct kern_ctx kern_ctx; /* device-specific: cuBLAS handle, stream, error state */
typedef struct kern_bf16_table kern_bf16_table;

typedef struct {
    const char *name; /* "cpu" or "cuda" */

    /* out[N,C] = wte[inp[b,t]] + wpe[t]; inp[B,T] */
    void (*encoder_forward)(kern_ctx *k, float *out, const int *inp, const float *wte,
                            const float *wpe, int B, int T, int C);
    void (*encoder_backward)(kern_ctx *k, float *dwte, float *dwpe, const float *dout,
                             const int *inp, int B, int T, int C);

    /* LayerNorm over C, eps 1e-5. mean, rstd: [N] (saved for the backward). */
    void (*layernorm_forward)(kern_ctx *k, float *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, int N, int C);
    void (*layernorm_backward)(kern_ctx *k, float *dinp, float *dweight, float *dbias,
                               const float *dout, const float *inp, const float *weight,
                               const float *mean, const float *rstd, int N, int C);

    /* out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC] (bias may be NULL). */
    void (*matmul_forward)(kern_ctx *k, float *out, const float *inp, const float *weight,
                           const float *bias, int N, int C, int OC);
    /* dinp[N,C] += dout @ weight; dweight[OC,C] += dout^T @ inp; dbias[OC] += sum dout (NULL:
     * skip). dinp may be NULL (no input gradient needed). */
    void (*matmul_backward)(kern_ctx *k, float *dinp, float *dweight, float *dbias,
                            const float *dout, const float *inp, const float *weight, int N, int C,
                            int OC);

    /* Causal multi-head attention. qkv[B,T,3C] (q, k, v concatenated per row, heads of hs = C/NH
     * inside each), out[B,T,C]. att[B,NH,T,T] = softmax of the scaled, causally masked scores (the
     * saved probabilities; entries above the diagonal are written as 0). scratch: at least
     * attention_scratch_bytes(B,T,C,NH) bytes of device workspace (may be NULL if that is 0). */
    size_t (*attention_scratch_bytes)(int B, int T, int C, int NH);
    void (*attention_forward)(kern_ctx *k, float *out, float *att, const float *qkv, void *scratch,
                              int B, int T, int C, int NH);
    /* dqkv += gradient of out w.r.t. qkv, given att from the forward (or recomputed). */
    void (*attention_backward)(kern_ctx *k, float *dqkv, const float *dout, const float *qkv,
                               const float *att, void *scratch, int B, int T, int C, int NH);

    /* GELU, tanh approximation. */
    void (*gelu_forward)(kern_ctx *k, float *out, const float *inp, size_t n);
    void (*gelu_backward)(kern_ctx *k, float *dinp, const float *inp, const float *dout, size_t n);

    /* out = a + b (out may alias a or b). */
    void (*residual_forward)(kern_ctx *k, float *out, const float *a, const float *b, size_t n);
    /* dst += src */
    void (*accumulate)(kern_ctx *k, float *dst, const float *src, size_t n);

    /* Fused softmax + cross-entropy over the first V of Vp logits per row (padded columns ignored,
     * their gradient 0). losses[N] = -log softmax(logits)[target]. If dlogits is not NULL it
     * receives dscale * (softmax - onehot) (overwritten; may alias logits). */
    void (*softmax_xent)(kern_ctx *k, float *losses, float *dlogits, const float *logits,
                         const int *targets, float dscale, int N, int V, int Vp);

    /* AdamW as torch.optim.AdamW: step t >= 1, bias-corrected, decoupled weight decay. */
    void (*adamw)(kern_ctx *k, float *params, const float *grads, float *m, float *v, size_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, int t);

    /* Memory helpers on the table's device. */
    void (*zero)(kern_ctx *k, void *p, size_t bytes);
    void (*copy)(kern_ctx *k, void *dst, const void *src, size_t bytes); /* device to device */
    /* Host memory to the device, queued on the stream after the work before it (the host buffer
     * may be reused as soon as this returns: CUDA stages pageable memory). */
    void (*upload)(kern_ctx *k, void *dst, const void *host, size_t bytes);

    /* Status of the work queued so far (synchronises on CUDA); a failure message names the kernel.
     */
    remat_status (*status)(kern_ctx *k);
    /* The first failure recorded so far (a launch, cuBLAS or copy error is recorded when queued),
     * without waiting for the queued work; a failure inside a running kernel shows at the next
     * status(). */
    remat_status (*check)(kern_ctx *k);

    /* The same kernels over bf16 storage on this device (kernels_bf16.h); NULL where the device
     * has none. */
    const kern_bf16_table *bf16;
} kern_table;

/* Creates the kernel context for dev (a cuBLAS handle and stream on CUDA; nothing on host) and
 * returns the table to use with it. A sim device has no kernels: REMAT_EUNSUPPORTED. */
remat_status kern_open(remat_device *dev, const kern_table **table, kern_ctx **ctx);
void kern_close(kern_ctx *ctx);
/* The stream kernels run on (NULL on the host), for the pool. */
remat_stream kern_stream(kern_ctx *ctx);
/* How many times status() has waited for the device (0 on the host). */
uint64_t kern_syncs(const kern_ctx *ctx);

extern const kern_table kern_cpu;
#ifdef REMAT_HAVE_CUDA
extern const kern_table kern_cuda;
#endif

#endif
