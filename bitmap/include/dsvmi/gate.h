/*
 * dsvmi gate: producer (reader) side, as a C ABI.
 *
 * The engine publishes, in shared memory, a Roaring bitmap of disk grains whose
 * writes it needs (the drop-data bitmap of low-overhead mode). QEMU's dsvmi
 * filter asks, for every guest write, whether any grain of its byte range is
 * set; only then is the payload copied into the ring.
 *
 * This header is the contract with the QEMU patch (qemu-patches/): C only, no
 * C++ types, stable within DSVMI_GATE_ABI_VERSION. Changing it invalidates the
 * cached patched-QEMU build (the cache key hashes this file).
 *
 * Hot-path guarantees of dsvmi_gate_should_pass(): no lock, no syscall, no
 * logging; it allocates only when it adopts a newly published generation (one
 * small CRoaring view per generation, never per query). A gate found corrupted
 * answers "pass" (nothing is lost) and counts it.
 *
 * One reader handle is used by one thread at a time (the disk's AioContext).
 * Ranges reaching beyond the disk size the engine declared are passed.
 */
#ifndef DSVMI_GATE_H
#define DSVMI_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DSVMI_GATE_ABI_VERSION 1

typedef struct dsvmi_gate_reader dsvmi_gate_reader_t;

/*
 * Maps the gate at `path` (created by the engine). On failure returns NULL and
 * writes a one-line reason into err (if err_len > 0). A gate has one reader
 * at a time: while a handle is open (in any process), opening the same gate
 * again fails with "already has a reader".
 */
dsvmi_gate_reader_t *dsvmi_gate_reader_open(const char *path, char *err,
                                            size_t err_len);

/* Unmaps the gate. NULL is a no-op. */
void dsvmi_gate_reader_close(dsvmi_gate_reader_t *r);

/*
 * True when any grain overlapping the byte range [offset, offset + length) is
 * set in the latest consistently published generation (pass-all: always;
 * drop-all: never). Counts the write and its bytes as passed or dropped in the
 * shared per-disk counters. length 0 is treated as one byte at offset.
 */
bool dsvmi_gate_should_pass(dsvmi_gate_reader_t *r, uint64_t offset,
                            uint64_t length);

/*
 * Why the reader last refused a published generation (a one-line reason such
 * as "gate slot 1: checksum mismatch ..."), or "" if it never did. Also
 * stored in the shared region for `dsvmi gate-stat`. Not for the hot path.
 */
const char *dsvmi_gate_reader_error(const dsvmi_gate_reader_t *r);

#ifdef __cplusplus
}
#endif

#endif /* DSVMI_GATE_H */
