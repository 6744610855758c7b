/* kernels/kernels_bf16.h: the training loop's kernels over bf16 storage (mixed precision).
 *
 * Every tensor the model keeps in bf16 (parameters, their gradients, activations and activation
 * gradients, the attention probabilities, the logits) is a kern_bf16 array; the arithmetic is
 * float32 throughout: each kernel loads bf16, computes and accumulates in float32 (every GEMM,
 * every reduction), and rounds once to nearest even when it stores. LayerNorm statistics, the
 * losses, the master weights and the AdamW moments are float32. Conventions are kernels.h's:
 * shapes and meanings are those of the float32 entry of the same name, forward kernels overwrite,
 * backward kernels accumulate (+=) into every gradient (the bf16 value plus the float32 sum,
 * rounded once), kernels are deterministic and report errors through status(). */
#ifndef REMAT_KERNELS_BF16_H
#define REMAT_KERNELS_BF16_H

#include "kernels/kernels.h"
#include "kernels/math.h"

struct kern_bf16_table {
    const char *name; /* "cpu-bf16", "cuda-bf16" */
    /* The GEMM behind matmul_*: "libxsmm" or "sgemm" (bf16 tiles converted to float32 then
     * OpenBLAS sgemm) on the CPU, "cublas" on CUDA. */
    const char *(*gemm_name)(void);

    void (*encoder_forward)(kern_ctx *k, kern_bf16 *out, const int *inp, const kern_bf16 *wte,
                            const kern_bf16 *wpe, int B, int T, int C);
    /* Rows with the same token are summed in float32 before their one add to dwte. */
    void (*encoder_backward)(kern_ctx *k, kern_bf16 *dwte, kern_bf16 *dwpe, const kern_bf16 *dout,
                             const int *inp, int B, int T, int C);

    void (*layernorm_forward)(kern_ctx *k, kern_bf16 *out, float *mean, float *rstd,
                              const kern_bf16 *inp, const kern_bf16 *weight, const kern_bf16 *bias,
                              int N, int C);
    void (*layernorm_backward)(kern_ctx *k, kern_bf16 *dinp, kern_bf16 *dweight, kern_bf16 *dbias,
                               const kern_bf16 *dout, const kern_bf16 *inp, const kern_bf16 *weight,
                               const float *mean, const float *rstd, int N, int C);

    void (*matmul_forward)(kern_ctx *k, kern_bf16 *out, const kern_bf16 *inp,
                           const kern_bf16 *weight, const kern_bf16 *bias, int N, int C, int OC);
    void (*matmul_backward)(kern_ctx *k, kern_bf16 *dinp, kern_bf16 *dweight, kern_bf16 *dbias,
                            const kern_bf16 *dout, const kern_bf16 *inp, const kern_bf16 *weight,
                            int N, int C, int OC);

    size_t (*attention_scratch_bytes)(int B, int T, int C, int NH);
    void (*attention_forward)(kern_ctx *k, kern_bf16 *out, kern_bf16 *att, const kern_bf16 *qkv,
                              void *scratch, int B, int T, int C, int NH);
    void (*attention_backward)(kern_ctx *k, kern_bf16 *dqkv, const kern_bf16 *dout,
                               const kern_bf16 *qkv, const kern_bf16 *att, void *scratch, int B,
                               int T, int C, int NH);

    void (*gelu_forward)(kern_ctx *k, kern_bf16 *out, const kern_bf16 *inp, size_t n);
    void (*gelu_backward)(kern_ctx *k, kern_bf16 *dinp, const kern_bf16 *inp, const kern_bf16 *dout,
                          size_t n);
    void (*residual_forward)(kern_ctx *k, kern_bf16 *out, const kern_bf16 *a, const kern_bf16 *b,
                             size_t n);
    void (*accumulate)(kern_ctx *k, kern_bf16 *dst, const kern_bf16 *src, size_t n);

    /* Losses float32 from bf16 logits; dlogits (bf16, may alias logits) as the float32 entry. */
    void (*softmax_xent)(kern_ctx *k, float *losses, kern_bf16 *dlogits, const kern_bf16 *logits,
                         const int *targets, float dscale, int N, int V, int Vp);

    /* AdamW with float32 master weights: master, m and v updated in float32 as kern->adamw does,
     * then params = master rounded to nearest. */
    void (*adamw_master)(kern_ctx *k, kern_bf16 *params, float *master, const kern_bf16 *grads,
                         float *m, float *v, size_t n, float lr, float beta1, float beta2,
                         float eps, float weight_decay, int t);
    /* AdamW on bf16 weights only: each updated value is rounded stochastically with element i's
     * bits kern_sr_bits(seed, i), so a step is a pure function of (params, grads, m, v, seed). */
    void (*adamw_sr)(kern_ctx *k, kern_bf16 *params, const kern_bf16 *grads, float *m, float *v,
                     size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                     int t, uint64_t seed);

    /* Conversions on the device: to bf16 rounds to nearest even. */
    void (*to_bf16)(kern_ctx *k, kern_bf16 *dst, const float *src, size_t n);
    void (*to_f32)(kern_ctx *k, float *dst, const kern_bf16 *src, size_t n);
};

extern const kern_bf16_table kern_cpu_bf16;

#endif
