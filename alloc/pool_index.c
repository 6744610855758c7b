/* alloc/pool_index.c: the free-block index: segregated size bins with a bitmap, best fit. */
#include "alloc/pool.h"

/* Bin of a block size (a multiple of POOL_ALIGN): one bin per size up to 2 MiB, then 16 bins per
 * power of two. Monotone in size, so every block of a higher bin is larger. */
static uint32_t index_bin(size_t size)
{
    uint64_t units = size / POOL_ALIGN;
    if (units <= POOL_EXACT_BINS)
        return (uint32_t)(units - 1);
    unsigned e = 63u - (unsigned)__builtin_clzll(units); /* >= 12 */
    uint32_t sub = (uint32_t)((units >> (e - 4)) & 15u);
    return POOL_EXACT_BINS + (e - 12u) * 16u + sub;
}

void pool_index_insert(pool_index *idx, pool_block *b)
{
    uint32_t bin = index_bin(b->size);
    b->bin_prev = NULL;
    b->bin_next = idx->head[bin];
    if (b->bin_next)
        b->bin_next->bin_prev = b;
    idx->head[bin] = b;
    idx->bits[bin / 64] |= (uint64_t)1 << (bin % 64);
    idx->words[bin / 4096] |= (uint64_t)1 << (bin / 64 % 64);
    idx->count++;
}

void pool_index_remove(pool_index *idx, pool_block *b)
{
    uint32_t bin = index_bin(b->size);
    if (b->bin_prev)
        b->bin_prev->bin_next = b->bin_next;
    else
        idx->head[bin] = b->bin_next;
    if (b->bin_next)
        b->bin_next->bin_prev = b->bin_prev;
    if (!idx->head[bin]) {
        idx->bits[bin / 64] &= ~((uint64_t)1 << (bin % 64));
        if (!idx->bits[bin / 64])
            idx->words[bin / 4096] &= ~((uint64_t)1 << (bin / 64 % 64));
    }
    b->bin_prev = b->bin_next = NULL;
    idx->count--;
}

/* First non-zero bitmap word after word w, or POOL_BIN_WORDS (through the summary bits). */
static uint32_t index_next_word(const pool_index *idx, uint32_t w)
{
    for (uint32_t from = w + 1; from < POOL_BIN_WORDS; from = (from / 64 + 1) * 64) {
        uint64_t sum = idx->words[from / 64] & (~(uint64_t)0 << (from % 64));
        if (sum)
            return from / 64 * 64 + (uint32_t)__builtin_ctzll(sum);
    }
    return POOL_BIN_WORDS;
}

/* First non-empty bin at or after `from`, or POOL_BINS. */
static uint32_t index_next_bin(const pool_index *idx, uint32_t from)
{
    if (from >= POOL_BINS)
        return POOL_BINS;
    uint32_t w = from / 64;
    uint64_t word = idx->bits[w] & (~(uint64_t)0 << (from % 64));
    if (!word) {
        w = index_next_word(idx, w);
        if (w >= POOL_BIN_WORDS)
            return POOL_BINS;
        word = idx->bits[w];
    }
    return w * 64 + (uint32_t)__builtin_ctzll(word);
}

/* Does a come before b among blocks of one size: older segment first, then lower offset? */
static int index_before(const pool_block *a, const pool_block *b)
{
    if (a->seg->id != b->seg->id)
        return a->seg->id < b->seg->id;
    return a->addr < b->addr;
}

/* The smallest block of the list that holds at least `size` bytes. */
static pool_block *index_smallest_fitting(pool_block *b, size_t size)
{
    pool_block *best = NULL;
    for (; b; b = b->bin_next)
        if (b->size >= size &&
            (!best || b->size < best->size || (b->size == best->size && index_before(b, best))))
            best = b;
    return best;
}

pool_block *pool_index_best_fit(const pool_index *idx, size_t size)
{
    if (idx->count == 0)
        return NULL;
    uint32_t bin = index_bin(size);
    uint32_t at = index_next_bin(idx, bin);
    if (at == POOL_BINS)
        return NULL;
    if (at < POOL_EXACT_BINS)
        return idx->head[at]; /* every block there has exactly that size */
    pool_block *b = index_smallest_fitting(idx->head[at], size);
    if (b || at != bin)
        return b;
    at = index_next_bin(idx, bin + 1);
    return at == POOL_BINS ? NULL : index_smallest_fitting(idx->head[at], size);
}

/* The first block of an exact bin (all one size) that keep accepts, in the order best fit takes
 * them; of an inexact bin, the smallest fitting one it accepts. */
static pool_block *index_kept_in_bin(const pool_index *idx, uint32_t bin, size_t size,
                                     int (*keep)(const pool_block *))
{
    pool_block *best = NULL;
    for (pool_block *b = idx->head[bin]; b; b = b->bin_next) {
        if (b->size < size || !keep(b))
            continue;
        if (bin < POOL_EXACT_BINS)
            return b;
        if (!best || b->size < best->size || (b->size == best->size && index_before(b, best)))
            best = b;
    }
    return best;
}

pool_block *pool_index_best_fit_if(const pool_index *idx, size_t size,
                                   int (*keep)(const pool_block *b))
{
    if (idx->count == 0)
        return NULL;
    for (uint32_t at = index_next_bin(idx, index_bin(size)); at < POOL_BINS;
         at = index_next_bin(idx, at + 1)) {
        pool_block *b = index_kept_in_bin(idx, at, size, keep);
        if (b)
            return b;
    }
    return NULL;
}

pool_block *pool_index_largest(const pool_index *idx)
{
    for (uint32_t w = POOL_BIN_WORDS; w-- > 0;) {
        if (!idx->bits[w])
            continue;
        uint32_t bin = w * 64 + 63u - (uint32_t)__builtin_clzll(idx->bits[w]);
        pool_block *best = idx->head[bin];
        for (pool_block *b = best; b; b = b->bin_next)
            if (b->size > best->size)
                best = b;
        return best;
    }
    return NULL;
}
