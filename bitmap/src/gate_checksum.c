#include "gate_checksum.h"

#include <string.h>

#define K1 0x9e3779b97f4a7c15ULL
#define K2 0xc2b2ae3d27d4eb4fULL
#define K3 0x165667b19e3779f9ULL

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint64_t lane_step(uint64_t acc, uint64_t word)
{
    return rotl64(acc + word * K2, 31) * K1;
}

uint64_t dsvmi_gate_checksum(const void *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    uint64_t a = K1 + K2, b = K2, c = 0, d = (uint64_t)0 - K1;
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        a = lane_step(a, load64(p + i));
        b = lane_step(b, load64(p + i + 8));
        c = lane_step(c, load64(p + i + 16));
        d = lane_step(d, load64(p + i + 24));
    }
    uint64_t h = rotl64(a, 1) + rotl64(b, 7) + rotl64(c, 12) + rotl64(d, 18);
    h ^= (uint64_t)len * K3;
    for (; i + 8 <= len; i += 8) {
        h = rotl64(h ^ lane_step(0, load64(p + i)), 27) * K1 + K3;
    }
    for (; i < len; i++) {
        h = rotl64(h ^ (p[i] * K3), 11) * K1;
    }
    /* final avalanche: every input bit reaches every output bit */
    h ^= h >> 33;
    h *= K2;
    h ^= h >> 29;
    h *= K3;
    h ^= h >> 32;
    return h;
}

uint64_t dsvmi_gate_slot_checksum(const void *data, size_t len,
                                  uint64_t generation, uint32_t mode)
{
    uint64_t tag = rotl64(generation * K1, 29) ^ ((uint64_t)mode * K2);
    return dsvmi_gate_checksum(data, len) ^ (rotl64(tag, 17) * K3);
}
