/* kernels/math.h: the per-element math of every kernel, shared by the CPU and CUDA tables so that
 * the CPU tests cover the CUDA arithmetic too. Every function is a small REMAT_HD static inline:
 * __host__ __device__ under nvcc, plain static inline under a C compiler. float32 arithmetic
 * throughout; bf16 is a storage format only, converted here (round to nearest even, or
 * stochastic rounding from a counter-based hash). */
#ifndef REMAT_KERNELS_MATH_H
#define REMAT_KERNELS_MATH_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define REMAT_HD __host__ __device__
#else
#define REMAT_HD
#endif

#define KERN_LN_EPS 1e-5f
#define KERN_GELU_SCALE 0.7978845608028654f /* sqrt(2 / pi) */
#define KERN_GELU_CUBIC 0.044715f

/* ---- Elementary functions ---------------------------------------------------------------- */

/* exp(x) within 1.4 ulp for -87 <= x <= 88, written so that compilers vectorize it (libm's expf is
 * a call that blocks vectorization; this is ~6x faster in the softmax loops). Below -87 it returns
 * a value under 1e-37 instead of underflowing to 0, harmless where terms are summed against 1 as
 * in a softmax. Cody-Waite reduction x = n ln2 + r, a degree-6 polynomial for exp(r), then 2^n
 * built in the exponent bits. */
REMAT_HD static inline float kern_expf(float x)
{
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = x - n * 0.693145751953125f;
    r = r - n * 1.428606765330187045e-06f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int ni = (int)n;
    ni = ni < -126 ? -126 : ni;
    ni = ni > 127 ? 127 : ni;
#ifdef __CUDA_ARCH__
    return p * __int_as_float((ni + 127) << 23);
#else
    union {
        int i;
        float f;
    } scale;
    scale.i = (ni + 127) << 23;
    return p * scale.f;
#endif
}

/* tanh(u) = sign(u) (1 - e) / (1 + e), e = exp(-2|u|) in (0, 1]: never overflows; absolute error
 * a few 1e-8, which is what GELU's 1 + tanh needs. */
REMAT_HD static inline float kern_tanhf(float u)
{
    float e = kern_expf(-2.0f * fabsf(u));
    return copysignf((1.0f - e) / (1.0f + e), u);
}

/* ---- GELU, tanh approximation ------------------------------------------------------------- */

/* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
REMAT_HD static inline float kern_gelu(float x)
{
    float cube = KERN_GELU_CUBIC * x * x * x;
    return 0.5f * x * (1.0f + kern_tanhf(KERN_GELU_SCALE * (x + cube)));
}

/* d gelu(x) / dx */
REMAT_HD static inline float kern_gelu_grad(float x)
{
    float cube = KERN_GELU_CUBIC * x * x * x;
    float u = KERN_GELU_SCALE * (x + cube);
    float th = kern_tanhf(u);
    float sech2 = 1.0f - th * th;
    float du = KERN_GELU_SCALE * (1.0f + 3.0f * KERN_GELU_CUBIC * x * x);
    return 0.5f * (1.0f + th) + 0.5f * x * sech2 * du;
}

/* ---- LayerNorm ---------------------------------------------------------------------------- */

/* 1 / sqrt(var + eps), var the biased (1/C) variance of the row. */
REMAT_HD static inline float kern_ln_rstd(float var)
{
    return 1.0f / sqrtf(var + KERN_LN_EPS);
}

/* The normalised value of one element. */
REMAT_HD static inline float kern_ln_norm(float x, float mean, float rstd)
{
    return (x - mean) * rstd;
}

/* d loss / d x for one element, given dnorm = weight * dout for it and the row means of dnorm and
 * of dnorm * norm (the two projections the normalisation removes). */
REMAT_HD static inline float kern_ln_dinp(float dnorm, float norm, float dnorm_mean,
                                          float dnorm_norm_mean, float rstd)
{
    return (dnorm - dnorm_mean - norm * dnorm_norm_mean) * rstd;
}

/* ---- Softmax, cross-entropy, attention ---------------------------------------------------- */

/* One unnormalised softmax term, with the row maximum subtracted for stability. */
REMAT_HD static inline float kern_softmax_term(float x, float row_max)
{
    return kern_expf(x - row_max);
}

/* -log softmax(x)[target] from the row's max, its sum of exp(x - max) and the target's logit. */
REMAT_HD static inline float kern_xent_loss(float target_logit, float row_max, float sum_exp)
{
    return logf(sum_exp) + row_max - target_logit;
}

/* d loss / d logit for one column: dscale * (p - onehot). */
REMAT_HD static inline float kern_xent_dlogit(float prob, int is_target, float dscale)
{
    return dscale * (prob - (is_target ? 1.0f : 0.0f));
}

/* The attention scores' scale, 1 / sqrt(head size). */
REMAT_HD static inline float kern_att_scale(int hs)
{
    return 1.0f / sqrtf((float)hs);
}

/* Softmax backward for one element: d score = p (dp - sum_j p_j dp_j). */
REMAT_HD static inline float kern_softmax_dscore(float prob, float dprob, float dot)
{
    return prob * (dprob - dot);
}

/* ---- AdamW, as torch.optim.AdamW (decoupled weight decay, bias correction) ----------------- */

/* The per-step scalars, computed once per step on the host in double and rounded to float, as
 * torch does with its Python-float hyperparameters. */
typedef struct {
    float decay;      /* 1 - lr * weight_decay */
    float beta1_comp; /* 1 - beta1, the lerp weight of the first moment */
    float beta2, beta2_comp;
    float step_size; /* lr / (1 - beta1^t) */
    float bc2_sqrt;  /* sqrt(1 - beta2^t) */
    float eps;
} kern_adamw_step;

static inline kern_adamw_step kern_adamw_prepare(float lr, float beta1, float beta2, float eps,
                                                 float weight_decay, int t)
{
    kern_adamw_step s;
    s.decay = (float)(1.0 - (double)lr * (double)weight_decay);
    s.beta1_comp = (float)(1.0 - (double)beta1);
    s.beta2 = beta2;
    s.beta2_comp = (float)(1.0 - (double)beta2);
    s.step_size = (float)((double)lr / (1.0 - pow((double)beta1, (double)t)));
    s.bc2_sqrt = (float)sqrt(1.0 - pow((double)beta2, (double)t));
    s.eps = eps;
    return s;
}

/* One parameter's update in torch's order of operations (_single_tensor_adamw):
 * p *= 1 - lr wd; m.lerp_(g, 1 - beta1); v = v beta2 + (1 - beta2) g g;
 * p += -step_size m / (sqrt(v) / sqrt(1 - beta2^t) + eps). */
REMAT_HD static inline void kern_adamw_update(float *p, float g, float *m, float *v,
                                              const kern_adamw_step *s)
{
    float param = *p * s->decay;
    float mt = *m + s->beta1_comp * (g - *m);
    float vt = *v * s->beta2 + s->beta2_comp * g * g;
    float denom = sqrtf(vt) / s->bc2_sqrt + s->eps;
    *m = mt;
    *v = vt;
    *p = param + -s->step_size * (mt / denom);
}

/* ---- bf16 storage --------------------------------------------------------------------------- */

/* A bfloat16 value: the top 16 bits of an IEEE float32 (1 sign, 8 exponent, 7 mantissa bits). */
typedef uint16_t kern_bf16;

REMAT_HD static inline uint32_t kern_f32_bits(float f)
{
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    union {
        float f;
        uint32_t u;
    } v;
    v.f = f;
    return v.u;
#endif
}

REMAT_HD static inline float kern_bits_f32(uint32_t u)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    union {
        uint32_t u;
        float f;
    } v;
    v.u = u;
    return v.f;
#endif
}

/* Exact: every bf16 is a float32. */
REMAT_HD static inline float kern_bf16_to_f32(kern_bf16 h)
{
    return kern_bits_f32((uint32_t)h << 16);
}

/* Round to nearest, ties to even (as torch and the hardware convert); NaN stays a quiet NaN of
 * the same sign; values past the largest bf16 round to infinity. */
REMAT_HD static inline kern_bf16 kern_f32_to_bf16(float f)
{
    uint32_t u = kern_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (kern_bf16)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (kern_bf16)(u >> 16);
}

/* Stochastic rounding: up with probability (dropped bits) / 2^16, so the expected value of the
 * result is f (for finite f below the largest bf16). rnd's low 16 bits are the random draw. */
REMAT_HD static inline kern_bf16 kern_f32_to_bf16_sr(float f, uint32_t rnd)
{
    uint32_t u = kern_f32_bits(f);
    if ((u & 0x7fffffffu) >= 0x7f800000u)
        return kern_f32_to_bf16(f); /* inf and NaN unchanged */
    u += rnd & 0xffffu;
    return (kern_bf16)(u >> 16);
}

/* 32 random bits for element i of a stream: the splitmix64 finaliser of seed + (i+1) * golden,
 * stateless so that every thread (and the GPU) draws the same bits for the same element. */
REMAT_HD static inline uint32_t kern_sr_bits(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/* The AdamW update of one bf16 parameter with fp32 master weights: the master copy is updated in
 * fp32 and the bf16 parameter is its nearest bf16. */
REMAT_HD static inline void kern_adamw_update_master(kern_bf16 *p, float *master, float g, float *m,
                                                     float *v, const kern_adamw_step *s)
{
    kern_adamw_update(master, g, m, v, s);
    *p = kern_f32_to_bf16(*master);
}

/* Without master weights: the update in fp32 from the bf16 value, stochastically rounded back
 * (llm.c's -w 0), with rnd the element's random bits. */
REMAT_HD static inline void kern_adamw_update_sr(kern_bf16 *p, float g, float *m, float *v,
                                                 const kern_adamw_step *s, uint32_t rnd)
{
    float param = kern_bf16_to_f32(*p);
    kern_adamw_update(&param, g, m, v, s);
    *p = kern_f32_to_bf16_sr(param, rnd);
}

#endif
