/* kernels/cpu/bf16_attention.c: causal multi-head attention over bf16 storage. A thread takes whole
 * (batch, head) slices as attention.c does: it converts the head's q, k, v (and, backward, dout
 * and the saved probabilities) to float32 in its part of the scratch, runs attention.c's float32
 * per-head routines on them, and rounds what it stores (out, att, the added dqkv) to bf16 once.
 * The forward's output uses the float32 probabilities; the saved ones are their bf16 rounding,
 * which is what a recomputation reproduces bit for bit. */
#include "kernels/cpu/bf16.h"

#include <omp.h>
#include <string.h>

/* Floats of one thread's scratch: q|k|v and dq|dk|dv [T, 3hs] each, out or dout [T, hs], the
 * probabilities and their gradient [T, T] each. */
static size_t att_bf16_thread_floats(int T, int hs)
{
    return (size_t)T * (7 * (size_t)hs + 2 * (size_t)T);
}

size_t kern_cpu_bf16_attention_scratch_bytes(int B, int T, int C, int NH)
{
    (void)B;
    return (size_t)kern_cpu_threads() * att_bf16_thread_floats(T, C / NH) * sizeof(float);
}

typedef struct {
    float *qkv, *dqkv, *o, *att, *ds;
} att_bf16_bufs;

static att_bf16_bufs att_bf16_thread_bufs(void *scratch, int T, int hs)
{
    att_bf16_bufs b;
    b.qkv = (float *)scratch + (size_t)omp_get_thread_num() * att_bf16_thread_floats(T, hs);
    b.dqkv = b.qkv + (size_t)T * 3 * hs;
    b.o = b.dqkv + (size_t)T * 3 * hs;
    b.att = b.o + (size_t)T * hs;
    b.ds = b.att + (size_t)T * T;
    return b;
}

/* The head's q, k, v rows (at qkv + t * 3C, hs apart by C) into dst [T, 3hs]. */
static kern_cpu_att_head att_bf16_load_head(float *dst, const kern_bf16 *head, int T, int C, int hs)
{
    for (int t = 0; t < T; t++)
        for (int j = 0; j < 3; j++) {
            const kern_bf16 *s = head + (size_t)t * 3 * C + (size_t)j * C;
            float *d = dst + (size_t)t * 3 * hs + (size_t)j * hs;
#pragma omp simd
            for (int i = 0; i < hs; i++)
                d[i] = kern_bf16_to_f32(s[i]);
        }
    return (kern_cpu_att_head){dst, dst + hs, dst + 2 * hs, T, hs, 3 * hs};
}

void kern_cpu_bf16_attention_forward(kern_ctx *k, kern_bf16 *out, kern_bf16 *att,
                                     const kern_bf16 *qkv, void *scratch, int B, int T, int C,
                                     int NH)
{
    (void)k;
    int heads = B * NH, hs = C / NH;
#pragma omp parallel num_threads(kern_cpu_threads())
    {
        att_bf16_bufs w = att_bf16_thread_bufs(scratch, T, hs);
#pragma omp for schedule(static)
        for (int bh = 0; bh < heads; bh++) {
            int b = bh / NH, h = bh % NH;
            kern_cpu_att_head a =
                att_bf16_load_head(w.qkv, qkv + (size_t)b * T * 3 * C + (size_t)h * hs, T, C, hs);
            kern_cpu_att_head_forward(w.o, hs, w.att, a);
            kern_bf16 *p = att + (size_t)bh * T * T;
            for (size_t i = 0; i < (size_t)T * T; i++)
                p[i] = kern_f32_to_bf16(w.att[i]);
            for (int t = 0; t < T; t++) {
                kern_bf16 *o = out + ((size_t)b * T + t) * C + (size_t)h * hs;
                for (int i = 0; i < hs; i++)
                    o[i] = kern_f32_to_bf16(w.o[(size_t)t * hs + i]);
            }
        }
    }
}

void kern_cpu_bf16_attention_backward(kern_ctx *k, kern_bf16 *dqkv, const kern_bf16 *dout,
                                      const kern_bf16 *qkv, const kern_bf16 *att, void *scratch,
                                      int B, int T, int C, int NH)
{
    (void)k;
    int heads = B * NH, hs = C / NH;
#pragma omp parallel num_threads(kern_cpu_threads())
    {
        att_bf16_bufs w = att_bf16_thread_bufs(scratch, T, hs);
#pragma omp for schedule(static)
        for (int bh = 0; bh < heads; bh++) {
            int b = bh / NH, h = bh % NH;
            size_t head_off = (size_t)b * T * 3 * C + (size_t)h * hs;
            kern_cpu_att_head a = att_bf16_load_head(w.qkv, qkv + head_off, T, C, hs);
            for (int t = 0; t < T; t++) {
                const kern_bf16 *d = dout + ((size_t)b * T + t) * C + (size_t)h * hs;
                for (int i = 0; i < hs; i++)
                    w.o[(size_t)t * hs + i] = kern_bf16_to_f32(d[i]);
            }
            const kern_bf16 *p = att + (size_t)bh * T * T;
            for (size_t i = 0; i < (size_t)T * T; i++)
                w.att[i] = kern_bf16_to_f32(p[i]);
            memset(w.dqkv, 0, (size_t)T * 3 * hs * sizeof(float));
            kern_cpu_att_head_backward(w.dqkv, w.o, hs, w.att, w.ds, a);
            for (int t = 0; t < T; t++)
                for (int j = 0; j < 3; j++) {
                    kern_bf16 *g = dqkv + head_off + (size_t)t * 3 * C + (size_t)j * C;
                    const float *s = w.dqkv + (size_t)t * 3 * hs + (size_t)j * hs;
                    for (int i = 0; i < hs; i++)
                        g[i] = kern_f32_to_bf16(kern_bf16_to_f32(g[i]) + s[i]);
                }
        }
    }
}
