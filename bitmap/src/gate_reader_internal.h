/*
 * Reader internals shared with the C++ side of bitmap/ (writer, inspector),
 * the tests and the fuzzer. Not part of the QEMU contract: these symbols are
 * hidden in libdsvmi-producer.so.
 */
#ifndef DSVMI_GATE_READER_INTERNAL_H
#define DSVMI_GATE_READER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsvmi/gate.h"
#include "gate_layout.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The validated, private copy of a header's creation-time fields. */
struct dsvmi_gate_geometry {
    uint32_t grain_shift;
    uint32_t nslots;
    uint64_t disk_size;
    uint64_t grains;        /* ceil(disk_size / grain), <= 2^32 */
    uint32_t nkeys;         /* containers the disk can have: ceil(grains / 65536) */
    uint64_t slot_capacity;
    uint64_t file_size;
};

/*
 * Checks the creation-time line of a header (magic, version, grain, sizes,
 * the CRoaring version) against the number of bytes actually mapped and fills
 * geo. Reads each field once (from a private copy). Returns false and a
 * one-line reason on failure.
 */
bool dsvmi_gate_check_header(const volatile void *mapped, uint64_t mapped_len,
                             struct dsvmi_gate_geometry *geo, char *err,
                             size_t err_len);

/* The byte offset of slot s's buffer: derived, never read from the file. */
static inline uint64_t dsvmi_gate_slot_offset(const struct dsvmi_gate_geometry *g,
                                              uint32_t slot)
{
    return DSVMI_GATE_HEADER_SIZE + (uint64_t)slot * g->slot_capacity;
}

/*
 * Checks a private copy of the descriptor of `slot` for generation
 * `generation`: generation, offset, capacity, size, mode (not the checksum).
 */
bool dsvmi_gate_check_desc(const struct dsvmi_gate_geometry *g, uint32_t slot,
                           uint64_t generation,
                           const struct dsvmi_gate_slot_desc *desc, char *err,
                           size_t err_len);

/*
 * Checks the descriptor of `slot` for generation `generation` (copying it
 * first), then the buffer's checksum. On success fills *desc. Used by the
 * reader on adoption and by the inspector.
 */
bool dsvmi_gate_check_slot(const uint8_t *base, const struct dsvmi_gate_geometry *g,
                           uint32_t slot, uint64_t generation,
                           struct dsvmi_gate_slot_desc *desc, char *err,
                           size_t err_len);

/*
 * A reader over memory the caller owns and keeps mapped (tests, fuzzer):
 * like dsvmi_gate_reader_open() without the file. close() does not unmap it.
 */
dsvmi_gate_reader_t *dsvmi_gate_reader_attach(void *base, size_t len, char *err,
                                              size_t err_len);

#ifdef __cplusplus
}
#endif

#endif /* DSVMI_GATE_READER_INTERNAL_H */
