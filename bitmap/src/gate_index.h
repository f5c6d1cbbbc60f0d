/*
 * The reader's private index of one published generation.
 *
 * CRoaring's roaring_bitmap_frozen_view() would leave the keys and type codes
 * in the shared buffer (a later scribble there turns a bitset into an "array"
 * of 65536 entries and libroaring reads out of bounds) and Debian's libroaring
 * asserts on malformed input (an abort would kill QEMU). So the reader parses
 * the frozen format itself, validates every field first, and copies everything
 * that bounds a memory access (type, element count, data offset) into this
 * private table: after adoption no byte of shared memory can steer a read out
 * of the buffer, it can only change an answer.
 *
 * The table is indexed directly by the container key (grain >> 16), one entry
 * per 65536 grains of the disk (1 MiB at 16 TiB / 4 KiB), so a query finds its
 * container without a search; `coarse` says which 1024-grain stripes of the
 * container hold any set grain, so most "drop" answers never touch the buffer.
 */
#ifndef DSVMI_GATE_INDEX_H
#define DSVMI_GATE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CRoaring 0.2.66 frozen format (checked against the installed library by
 * tests/unit/gate): [bitset data][run data][array data]
 * [keys u16 * n][counts u16 * n][typecodes u8 * n][u32 n << 15 | cookie]. */
#define DSVMI_FROZEN_COOKIE 13766u
#define DSVMI_FROZEN_BITSET 1u
#define DSVMI_FROZEN_ARRAY 2u
#define DSVMI_FROZEN_RUN 3u

struct dsvmi_gate_container {
    uint64_t coarse; /* bit b: a set value in [1024 b, 1024 b + 1023] */
    uint32_t data;   /* offset of the container's data in the buffer */
    uint16_t last;   /* array: cardinality - 1; run: runs - 1 */
    uint8_t type;    /* 0 = empty, else DSVMI_FROZEN_* */
    uint8_t pad;
};

/*
 * Validates buf[0, size) as a frozen CRoaring bitmap with keys < nkeys and
 * fills table[0, nkeys) (cleared first). scratch must hold 5 * nkeys + 4
 * bytes: the trailer is copied there before it is parsed, so every count is
 * read exactly once. On success returns true and, if the pointers are not
 * NULL, the number of set values and of containers. On failure writes a
 * one-line reason into err, leaves table cleared and returns false.
 */
/*
 * Writes a printf-style reason into err (if err_len > 0) and returns false:
 * the one way gate code reports why it refused something.
 */
bool dsvmi_gate_fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

bool dsvmi_gate_index_build(const uint8_t *buf, uint64_t size,
                            struct dsvmi_gate_container *table, uint32_t nkeys,
                            uint8_t *scratch, uint64_t *cardinality,
                            uint32_t *containers, char *err, size_t err_len);

static inline uint16_t dsvmi_gate_load16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint64_t dsvmi_gate_load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Any value in [lo, hi] (lo <= hi < 65536) of a non-empty container? */
static inline bool dsvmi_gate_container_any(const struct dsvmi_gate_container *c,
                                            const uint8_t *buf, uint32_t lo,
                                            uint32_t hi)
{
    uint64_t stripes = (~0ULL << (lo >> 10)) & (~0ULL >> (63 - (hi >> 10)));
    if (!(c->coarse & stripes)) {
        return false;
    }
    const uint8_t *data = buf + c->data;
    if (c->type == DSVMI_FROZEN_BITSET) {
        uint32_t w0 = lo >> 6, w1 = hi >> 6;
        uint64_t first = ~0ULL << (lo & 63);
        uint64_t last = ~0ULL >> (63 - (hi & 63));
        if (w0 == w1) {
            return dsvmi_gate_load64(data + 8 * w0) & first & last;
        }
        if (dsvmi_gate_load64(data + 8 * w0) & first) {
            return true;
        }
        for (uint32_t w = w0 + 1; w < w1; w++) {
            if (dsvmi_gate_load64(data + 8 * w)) {
                return true;
            }
        }
        return dsvmi_gate_load64(data + 8 * w1) & last;
    }
    if (c->type == DSVMI_FROZEN_ARRAY) {
        /* lower bound of lo among the sorted values [0, last] */
        uint32_t base = 0, n = (uint32_t)c->last + 1;
        while (n > 1) {
            uint32_t half = n >> 1;
            if (dsvmi_gate_load16(data + 2 * (base + half)) < lo) {
                base += half;
            }
            n -= half;
        }
        base += dsvmi_gate_load16(data + 2 * base) < lo;
        return base <= c->last && dsvmi_gate_load16(data + 2 * base) <= hi;
    }
    /* run: the last run starting at or before hi, if it reaches lo */
    uint32_t base = 0, n = (uint32_t)c->last + 1;
    while (n > 1) {
        uint32_t half = n >> 1;
        if (dsvmi_gate_load16(data + 4 * (base + half)) <= hi) {
            base += half;
        }
        n -= half;
    }
    uint32_t start = dsvmi_gate_load16(data + 4 * base);
    uint32_t len = dsvmi_gate_load16(data + 4 * base + 2);
    return start <= hi && start + len >= lo;
}

/* Any grain in [g0, g1] (g0 <= g1 < nkeys << 16) set? */
static inline bool dsvmi_gate_index_any(const struct dsvmi_gate_container *table,
                                        const uint8_t *buf, uint32_t g0,
                                        uint32_t g1)
{
    uint32_t k0 = g0 >> 16, k1 = g1 >> 16;
    for (uint32_t k = k0;; k++) {
        const struct dsvmi_gate_container *c = &table[k];
        if (c->type) {
            uint32_t lo = k == k0 ? (g0 & 0xffff) : 0;
            uint32_t hi = k == k1 ? (g1 & 0xffff) : 0xffff;
            if (dsvmi_gate_container_any(c, buf, lo, hi)) {
                return true;
            }
        }
        if (k == k1) {
            return false;
        }
    }
}

#ifdef __cplusplus
}
#endif

#endif /* DSVMI_GATE_INDEX_H */
