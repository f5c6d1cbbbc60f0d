/*
 * The gate's shared-memory layout (internal to bitmap/; C so that the C reader
 * and the C++ writer share one definition).
 *
 *   offset 0      struct dsvmi_gate_header (one page): identity, the published
 *                 word, the reader-owned lines, the slot descriptors.
 *   offset 4096   nslots buffers, each page aligned, each big enough for the
 *                 largest frozen bitmap the disk can have (8 KiB per 65536
 *                 grains + 5 bytes per container + 4): the file is sized once
 *                 and never grows, and tmpfs keeps it sparse, so unused capacity
 *                 costs address space, not memory.
 *
 * Ownership (who may store to what) is the safety argument, see docs/gate.md:
 * line 0 and the slot descriptors belong to the writer (the engine); the
 * reader_view line, the counters line and the error lines belong to the reader
 * (QEMU). Neither side trusts what the other one owns.
 */
#ifndef DSVMI_GATE_LAYOUT_H
#define DSVMI_GATE_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DSVMI_GATE_MAGIC 0x3154414749564d44ULL /* "DMVIGAT1" little-endian */
#define DSVMI_GATE_LAYOUT_VERSION 1u
#define DSVMI_GATE_HEADER_SIZE 4096u
#define DSVMI_GATE_MAX_SLOTS 8u
#define DSVMI_GATE_DEFAULT_SLOTS 3u
#define DSVMI_GATE_MIN_GRAIN_SHIFT 9u  /* 512 B */
#define DSVMI_GATE_MAX_GRAIN_SHIFT 20u /* 1 MiB */
#define DSVMI_GATE_BUFFER_ALIGN 4096u  /* CRoaring needs 32; a page is free */
#define DSVMI_GATE_ERROR_LEN 120u

/* The published word and the reader_view word: generation << 8 | slot. */
#define DSVMI_GATE_SLOT_BITS 8u
#define DSVMI_GATE_SLOT_MASK 0xffu
#define DSVMI_GATE_VIEW_NONE UINT64_MAX

enum dsvmi_gate_mode {
    DSVMI_GATE_MODE_PASS_ALL = 1, /* every write is copied (full capture) */
    DSVMI_GATE_MODE_DROP_ALL = 2, /* attached but silent */
    DSVMI_GATE_MODE_SET = 3,      /* copied iff a grain of the write is set */
};

/* The CRoaring release whose frozen format the buffers hold. */
#define DSVMI_GATE_ROARING_VERSION(maj, min, rev) \
    (((uint32_t)(maj) << 16) | ((uint32_t)(min) << 8) | (uint32_t)(rev))

/* One 64-byte descriptor per buffer. Writer-owned; rewritten only while its
 * slot is neither published nor named by reader_view. */
struct dsvmi_gate_slot_desc {
    uint64_t generation;  /* the generation this buffer holds */
    uint64_t offset;      /* from the start of the file */
    uint64_t capacity;    /* bytes reserved for the buffer */
    uint64_t size;        /* frozen-serialized length */
    uint64_t checksum;    /* dsvmi_gate_checksum(buffer, size) */
    uint64_t cardinality; /* reserved (0): gate-stat counts the grains itself */
    uint32_t mode;        /* enum dsvmi_gate_mode */
    uint32_t containers;  /* CRoaring containers (informational) */
    uint64_t reserved;
};

struct dsvmi_gate_header {
    /* line 0: written once by the writer at creation */
    uint64_t magic;
    uint32_t layout_version;
    uint32_t header_size;
    uint32_t grain_shift;
    uint32_t nslots;
    uint64_t disk_size;      /* bytes */
    uint64_t file_size;      /* bytes, header + nslots * slot_capacity */
    uint64_t slot_capacity;  /* bytes per buffer */
    uint32_t roaring_version;
    uint32_t reserved0;
    uint64_t reserved1;

    /* line 1: writer-owned, the only word the writer stores after creation
     * besides slot descriptors and buffers */
    uint64_t published; /* generation << 8 | slot; generation 0 = none */
    uint64_t pad1[7];

    /* line 2: reader-owned: the generation/slot the reader may be reading */
    uint64_t reader_view;
    uint64_t pad2[7];

    /* line 3: reader-owned counters (single writer, relaxed) */
    uint64_t writes_passed;
    uint64_t bytes_passed;
    uint64_t writes_dropped;
    uint64_t bytes_dropped;
    uint64_t fallbacks;   /* writes answered "pass" for want of a valid view */
    uint64_t rejected;    /* published generations the reader refused */
    uint64_t adoptions;   /* generations the reader adopted */
    uint64_t pad3;

    /* lines 4-5: reader-owned: why the last rejected generation was refused */
    uint64_t error_published; /* the published word it refused */
    char error[DSVMI_GATE_ERROR_LEN];

    /* lines 6..: writer-owned slot descriptors */
    struct dsvmi_gate_slot_desc slots[DSVMI_GATE_MAX_SLOTS];
};

#ifdef __cplusplus
static_assert(offsetof(dsvmi_gate_header, published) == 64, "line 1");
static_assert(offsetof(dsvmi_gate_header, reader_view) == 128, "line 2");
static_assert(offsetof(dsvmi_gate_header, writes_passed) == 192, "line 3");
static_assert(offsetof(dsvmi_gate_header, error_published) == 256, "line 4");
static_assert(offsetof(dsvmi_gate_header, slots) == 384, "line 6");
static_assert(sizeof(dsvmi_gate_header) <= DSVMI_GATE_HEADER_SIZE, "one page");
#else
_Static_assert(offsetof(struct dsvmi_gate_header, published) == 64, "line 1");
_Static_assert(offsetof(struct dsvmi_gate_header, reader_view) == 128, "line 2");
_Static_assert(offsetof(struct dsvmi_gate_header, writes_passed) == 192, "line 3");
_Static_assert(offsetof(struct dsvmi_gate_header, error_published) == 256, "line 4");
_Static_assert(offsetof(struct dsvmi_gate_header, slots) == 384, "line 6");
_Static_assert(sizeof(struct dsvmi_gate_header) <= DSVMI_GATE_HEADER_SIZE, "one page");
#endif

/* Largest frozen serialization of a run-optimized bitmap over `grains` grains:
 * every container is at most 8 KiB (a bitset; run_optimize never keeps a run
 * or array container bigger than that), plus keys/counts/typecodes and the
 * 4-byte frozen header. Rounded up to DSVMI_GATE_BUFFER_ALIGN. */
static inline uint64_t dsvmi_gate_slot_capacity(uint64_t grains)
{
    uint64_t containers = (grains + 65535) >> 16;
    uint64_t bytes = containers * (8192 + 5) + 4;
    return (bytes + DSVMI_GATE_BUFFER_ALIGN - 1) &
           ~(uint64_t)(DSVMI_GATE_BUFFER_ALIGN - 1);
}

#ifdef __cplusplus
}
#endif

#endif /* DSVMI_GATE_LAYOUT_H */
