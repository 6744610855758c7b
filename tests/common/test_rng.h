/* tests/common/test_rng.h: the tests' one random generator, xorshift64* (Vigna 2016) on a state the
 * caller owns, deterministic per seed, with the draws the tests use. Any nonzero state works;
 * test_rng_seed maps every seed (0 included) to one. */
#ifndef REMAT_TESTS_TEST_RNG_H
#define REMAT_TESTS_TEST_RNG_H

#include <stdint.h>

static inline void test_rng_seed(uint64_t *s, uint64_t seed)
{
    *s = (seed + 1) * 0x9e3779b97f4a7c15ull;
    if (*s == 0)
        *s = 1;
}

static inline uint64_t test_rng_next(uint64_t *s)
{
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, n); 0 when n is 0. */
static inline uint64_t test_rng_below(uint64_t *s, uint64_t n)
{
    return n ? test_rng_next(s) % n : 0;
}

/* Uniform in [lo, hi]. */
static inline int test_rng_int(uint64_t *s, int lo, int hi)
{
    return lo + (int)test_rng_below(s, (uint64_t)(hi - lo) + 1);
}

/* Uniform in [0, 1), 53 bits. */
static inline double test_rng_uniform(uint64_t *s)
{
    return (double)(test_rng_next(s) >> 11) / 9007199254740992.0;
}

#endif
