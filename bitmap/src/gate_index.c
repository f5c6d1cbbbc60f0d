#include "gate_index.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

bool dsvmi_gate_fail(char *err, size_t err_len, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return false;
}

static inline uint64_t stripes_between(uint32_t lo, uint32_t hi)
{
    return (~0ULL << (lo >> 10)) & (~0ULL >> (63 - (hi >> 10)));
}

/* Checks one container's data and fills its coarse stripes. */
static bool index_container(const uint8_t *buf, uint32_t i, uint32_t key,
                            struct dsvmi_gate_container *c, uint64_t *card,
                            char *err, size_t err_len)
{
    const uint8_t *data = buf + c->data;
    if (c->type == DSVMI_FROZEN_BITSET) {
        uint64_t stripes = 0;
        for (uint32_t w = 0; w < 1024; w++) {
            uint64_t word = dsvmi_gate_load64(data + 8 * w);
            if (word) {
                stripes |= 1ULL << (w >> 4);
                *card += (uint64_t)__builtin_popcountll(word);
            }
        }
        c->coarse = stripes;
    } else if (c->type == DSVMI_FROZEN_ARRAY) {
        uint32_t n = (uint32_t)c->last + 1;
        int32_t prev = -1;
        for (uint32_t j = 0; j < n; j++) {
            uint16_t v = dsvmi_gate_load16(data + 2 * j);
            if ((int32_t)v <= prev) {
                return dsvmi_gate_fail(err, err_len,
                            "frozen bitmap: container %u (key %u): array value "
                            "%u at index %u is not above its predecessor %d",
                            i, key, v, j, prev);
            }
            prev = v;
            c->coarse |= 1ULL << (v >> 10);
        }
        *card += n;
    } else {
        uint32_t n = (uint32_t)c->last + 1;
        int32_t prev_end = -1;
        for (uint32_t j = 0; j < n; j++) {
            uint32_t start = dsvmi_gate_load16(data + 4 * j);
            uint32_t len = dsvmi_gate_load16(data + 4 * j + 2);
            if ((int32_t)start <= prev_end) {
                return dsvmi_gate_fail(err, err_len,
                            "frozen bitmap: container %u (key %u): run %u "
                            "starts at %u, inside or before run %u (ends %d)",
                            i, key, j, start, j - 1, prev_end);
            }
            if (start + len > 0xffff) {
                return dsvmi_gate_fail(err, err_len,
                            "frozen bitmap: container %u (key %u): run %u "
                            "[%u, +%u] passes the container end 65535",
                            i, key, j, start, len);
            }
            prev_end = (int32_t)(start + len);
            c->coarse |= stripes_between(start, start + len);
            *card += (uint64_t)len + 1;
        }
    }
    return true;
}

bool dsvmi_gate_index_build(const uint8_t *buf, uint64_t size,
                            struct dsvmi_gate_container *table, uint32_t nkeys,
                            uint8_t *scratch, uint64_t *cardinality,
                            uint32_t *containers, char *err, size_t err_len)
{
    memset(table, 0, (size_t)nkeys * sizeof(*table));
    if (size < 4) {
        return dsvmi_gate_fail(err, err_len,
                    "frozen bitmap: %" PRIu64 " bytes, shorter than its "
                    "4-byte header", size);
    }
    if (size > UINT32_MAX) {
        return dsvmi_gate_fail(err, err_len,
                    "frozen bitmap: %" PRIu64 " bytes, more than 4 GiB", size);
    }
    uint32_t header;
    memcpy(&header, buf + size - 4, sizeof(header));
    if ((header & 0x7fff) != DSVMI_FROZEN_COOKIE) {
        return dsvmi_gate_fail(err, err_len,
                    "frozen bitmap: header 0x%08x lacks the frozen cookie %u",
                    header, DSVMI_FROZEN_COOKIE);
    }
    uint32_t n = header >> 15;
    if (n > nkeys) {
        return dsvmi_gate_fail(err, err_len,
                    "frozen bitmap: %u containers, the disk has room for %u",
                    n, nkeys);
    }
    uint64_t trailer = 5 * (uint64_t)n + 4;
    if (trailer > size) {
        return dsvmi_gate_fail(err, err_len,
                    "frozen bitmap: %u containers need a %" PRIu64
                    "-byte trailer, the buffer holds %" PRIu64 " bytes",
                    n, trailer, size);
    }
    /* One copy of the trailer: every key, count and type code is read once. */
    memcpy(scratch, buf + size - trailer, trailer);
    const uint8_t *keys = scratch;
    const uint8_t *counts = scratch + 2 * (uint64_t)n;
    const uint8_t *types = scratch + 4 * (uint64_t)n;

    uint64_t zone[4] = {0, 0, 0, 0}; /* bytes per type code */
    int32_t prev_key = -1;
    for (uint32_t i = 0; i < n; i++) {
        uint16_t key = dsvmi_gate_load16(keys + 2 * i);
        uint16_t count = dsvmi_gate_load16(counts + 2 * i);
        uint8_t type = types[i];
        if ((int32_t)key <= prev_key) {
            return dsvmi_gate_fail(err, err_len,
                        "frozen bitmap: container %u has key %u, not above "
                        "the previous key %d", i, key, prev_key);
        }
        if (key >= nkeys) {
            return dsvmi_gate_fail(err, err_len,
                        "frozen bitmap: container %u has key %u, beyond the "
                        "disk's last key %u", i, key, nkeys - 1);
        }
        prev_key = key;
        switch (type) {
        case DSVMI_FROZEN_BITSET:
            zone[type] += 8192;
            break;
        case DSVMI_FROZEN_ARRAY:
            if (count >= 4096) {
                return dsvmi_gate_fail(err, err_len,
                            "frozen bitmap: container %u is an array of %u "
                            "values (CRoaring keeps at most 4096)", i,
                            count + 1u);
            }
            zone[type] += 2 * ((uint64_t)count + 1);
            break;
        case DSVMI_FROZEN_RUN:
            zone[type] += 4 * (uint64_t)count;
            break;
        default:
            return dsvmi_gate_fail(err, err_len,
                        "frozen bitmap: container %u has unknown type code %u",
                        i, type);
        }
    }
    uint64_t expected = zone[1] + zone[2] + zone[3] + trailer;
    if (expected != size) {
        return dsvmi_gate_fail(err, err_len,
                    "frozen bitmap: its containers describe %" PRIu64
                    " bytes, the buffer holds %" PRIu64, expected, size);
    }

    uint64_t next[4] = {0, 0, zone[1] + zone[3], zone[1]}; /* zone starts */
    uint64_t card = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint16_t key = dsvmi_gate_load16(keys + 2 * i);
        uint16_t count = dsvmi_gate_load16(counts + 2 * i);
        uint8_t type = types[i];
        struct dsvmi_gate_container *c = &table[key];
        c->data = (uint32_t)next[type];
        if (type == DSVMI_FROZEN_BITSET) {
            next[type] += 8192;
        } else if (type == DSVMI_FROZEN_ARRAY) {
            next[type] += 2 * ((uint64_t)count + 1);
            c->last = count;
        } else {
            next[type] += 4 * (uint64_t)count;
            if (count == 0) {
                continue; /* an empty run container: nothing to find */
            }
            c->last = (uint16_t)(count - 1);
        }
        c->type = type;
        if (!index_container(buf, i, key, c, &card, err, err_len)) {
            memset(table, 0, (size_t)nkeys * sizeof(*table));
            return false;
        }
        if (!c->coarse) {
            c->type = 0; /* a bitset with no bit set */
        }
    }
    if (cardinality) {
        *cardinality = card;
    }
    if (containers) {
        *containers = n;
    }
    return true;
}
