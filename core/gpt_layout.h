/* core/gpt_layout.h: the byte layout of our GPT's training step, in one place for the trainer
 * (model/stages.c allocates and addresses exactly these regions) and the planner (fit/chain.c
 * predicts what the pool will hold from them), so `remat fit` and `remat train` cannot drift. It
 * lives in core/ because the planner may not include model/; it is pure integer arithmetic.
 *
 * Every buffer of a stage is a run of regions, each at an offset aligned to 256 bytes, the total
 * rounded up to 512 (the pool's rounding). Activations, activation gradients and the attention
 * probabilities take `elem` bytes an element (4 in fp32 training, 2 in bf16); LayerNorm
 * statistics and the per-token losses stay fp32 (4 bytes); the input tokens are int32. Sizes
 * saturate: a size that does not fit in 64 bits stays larger than every machine, and the totals
 * are clamped at GPTL_CLAMP (far above any card, so sums over many stages cannot overflow). */
#ifndef REMAT_CORE_GPT_LAYOUT_H
#define REMAT_CORE_GPT_LAYOUT_H

#include "core/core.h"

#include <stdint.h>

#define GPTL_ABSENT UINT64_MAX     /* a tensor the save option recomputes in the backward */
#define GPTL_CLAMP (1ull << 48)    /* totals are at most this */
enum { GPTL_N_BLOCK_OPTIONS = 4 }; /* save options of a block besides the default */

/* The shape of one step. */
typedef struct {
    uint64_t B, T, C, NH, Vp;
    unsigned elem;    /* bytes of an activation element */
    uint64_t scratch; /* bytes of the attention kernel's workspace */
} gptl_dims;

/* Byte offsets inside a block's ā (saved activations) for one save option; GPTL_ABSENT where the
 * option recomputes that tensor. a_{i+1} (the block output) is always at 0. */
typedef struct {
    uint64_t qkv, res2, fch, stats; /* always saved (stats: ln1 mean, ln1 rstd, ln2 mean, rstd) */
    uint64_t ln1, ln2, atty, att, gelu;
    uint64_t bytes;
} gptl_block_saved;

/* Workspaces. Forward: t1 [N,C], t2 [N,4C], t3 [max(att, 4C)], t4 [N,C], stats [2N], scratch.
 * Backward: g1 [max(att, 4C)], g2 [N,4C], g3 [N,C], g4 [N,C], stats [2N], scratch. The head's
 * forward: lnf [N,C], logits [N,Vp], stats [2N]. The head's ā: losses at 0, dlnf [N,C], stats. */
typedef struct {
    uint64_t t1, t2, t3, t4, stats, scratch, bytes;
} gptl_block_fwd_tmp;
typedef struct {
    uint64_t g1, g2, g3, g4, stats, scratch, bytes;
} gptl_block_bwd_tmp;
typedef struct {
    uint64_t lnf, logits, stats, bytes;
} gptl_head_fwd_tmp;
typedef struct {
    uint64_t dlnf, stats, bytes;
} gptl_head_saved;

typedef struct {
    uint64_t input;                                   /* a_0: the int32 tokens */
    uint64_t act;                                     /* a_1 .. a_{L+1}: [N,C] */
    uint64_t loss;                                    /* a_{L+2}: fp32 losses [N] */
    gptl_block_saved saved[1 + GPTL_N_BLOCK_OPTIONS]; /* [0] default, [k+1] option k */
    gptl_block_fwd_tmp fwd;
    gptl_block_bwd_tmp bwd;
    gptl_head_fwd_tmp head_tmp;
    gptl_head_saved head_saved;
} gptl_layout;

/* Block save option k (0..3): its name and what it keeps (1) or recomputes (0). */
typedef struct {
    const char *name;
    int gelu, ln, attn;
} gptl_option;

static inline gptl_option gptl_block_option(int k)
{
    switch (k) {
    case 0: return (gptl_option){"recompute-gelu", 0, 1, 1};
    case 1: return (gptl_option){"recompute-gelu-ln", 0, 0, 1};
    case 2: return (gptl_option){"recompute-attn", 1, 1, 0};
    default: return (gptl_option){"recompute-attn-gelu-ln", 0, 0, 0};
    }
}

static inline uint64_t gptl_round_up(uint64_t v, uint64_t to)
{
    return v % to ? remat_sat_add(v - v % to, to) : v;
}

static inline uint64_t gptl_total(uint64_t off)
{
    uint64_t b = gptl_round_up(off, 512);
    return b > GPTL_CLAMP ? GPTL_CLAMP : b;
}

/* Appends a region of `bytes` at *off (256-byte aligned) and returns its offset. */
static inline uint64_t gptl_region(uint64_t *off, uint64_t bytes)
{
    uint64_t at = gptl_round_up(*off, 256);
    *off = remat_sat_add(at, bytes);
    return at;
}

static inline gptl_block_saved gptl_saved_layout(uint64_t act, uint64_t NC, uint64_t att,
                                                 uint64_t N, int gelu, int ln, int attn)
{
    gptl_block_saved s;
    uint64_t off = act;
    s.qkv = gptl_region(&off, remat_sat_mul(3, NC));
    s.res2 = gptl_region(&off, NC);
    s.fch = gptl_region(&off, remat_sat_mul(4, NC));
    s.stats = gptl_region(&off, remat_sat_mul(4 * 4, N));
    s.ln1 = ln ? gptl_region(&off, NC) : GPTL_ABSENT;
    s.ln2 = ln ? gptl_region(&off, NC) : GPTL_ABSENT;
    s.atty = attn ? gptl_region(&off, NC) : GPTL_ABSENT;
    s.att = attn ? gptl_region(&off, att) : GPTL_ABSENT;
    s.gelu = gelu ? gptl_region(&off, remat_sat_mul(4, NC)) : GPTL_ABSENT;
    s.bytes = gptl_total(off);
    return s;
}

/* The whole step's layout for d. */
static inline void gptl_compute(const gptl_dims *d, gptl_layout *out)
{
    uint64_t N = remat_sat_mul(d->B, d->T), e = d->elem;
    uint64_t NC = remat_sat_mul(remat_sat_mul(N, d->C), e);
    uint64_t att =
        remat_sat_mul(remat_sat_mul(remat_sat_mul(d->B, d->NH), d->T), remat_sat_mul(d->T, e));
    uint64_t NC4 = remat_sat_mul(4, NC), big = att > NC4 ? att : NC4, stats2 = remat_sat_mul(8, N);
    out->input = gptl_total(remat_sat_mul(N, 4));
    out->act = gptl_total(NC);
    out->loss = gptl_total(remat_sat_mul(N, 4));
    out->saved[0] = gptl_saved_layout(out->act, NC, att, N, 1, 1, 1);
    for (int k = 0; k < GPTL_N_BLOCK_OPTIONS; k++) {
        gptl_option o = gptl_block_option(k);
        out->saved[1 + k] = gptl_saved_layout(out->act, NC, att, N, o.gelu, o.ln, o.attn);
    }
    uint64_t off = 0;
    gptl_block_fwd_tmp *ft = &out->fwd;
    ft->t1 = gptl_region(&off, NC);
    ft->t2 = gptl_region(&off, NC4);
    ft->t3 = gptl_region(&off, big);
    ft->t4 = gptl_region(&off, NC);
    ft->stats = gptl_region(&off, stats2);
    ft->scratch = gptl_region(&off, d->scratch);
    ft->bytes = gptl_total(off);

    off = 0;
    gptl_block_bwd_tmp *bt = &out->bwd;
    bt->g1 = gptl_region(&off, big);
    bt->g2 = gptl_region(&off, NC4);
    bt->g3 = gptl_region(&off, NC);
    bt->g4 = gptl_region(&off, NC);
    bt->stats = gptl_region(&off, stats2);
    bt->scratch = gptl_region(&off, d->scratch);
    bt->bytes = gptl_total(off);

    off = 0;
    out->head_tmp.lnf = gptl_region(&off, NC);
    out->head_tmp.logits = gptl_region(&off, remat_sat_mul(remat_sat_mul(N, d->Vp), e));
    out->head_tmp.stats = gptl_region(&off, stats2);
    out->head_tmp.bytes = gptl_total(off);

    off = out->loss;
    out->head_saved.dlnf = gptl_region(&off, NC);
    out->head_saved.stats = gptl_region(&off, stats2);
    out->head_saved.bytes = gptl_total(off);
}

#endif
