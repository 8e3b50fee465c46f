/* rng.h -- a small seeded generator (xoshiro256** seeded through splitmix64).
 *
 * Every random choice in the project (init, synthetic data, window starts, queue
 * sampling) draws from an explicit sola_rng so that the same seed gives the same
 * result on every machine; there is no global generator. */
#ifndef SOLA_RNG_H
#define SOLA_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct sola_rng {
    uint64_t s[4];
} sola_rng;

static inline uint64_t sola__splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void sola_rng_seed(sola_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = sola__splitmix(&seed);
}

static inline uint64_t sola_rng_u64(sola_rng *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t res = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return res;
}

/* Uniform in [0, 1) with 53 bits. */
static inline double sola_rng_uniform(sola_rng *r)
{
    return (double)(sola_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), n > 0 (Lemire's multiply, bias < 2^-32 for our n). */
static inline uint64_t sola_rng_below(sola_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)sola_rng_u64(r) * n) >> 64);
}

/* Standard normal (Box-Muller, one value per call). */
static inline double sola_rng_normal(sola_rng *r)
{
    double u1 = sola_rng_uniform(r), u2 = sola_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
