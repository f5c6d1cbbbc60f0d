/*
 * The checksum the writer stores beside each published buffer and the reader
 * recomputes once when it adopts that generation (never per query). It detects
 * scribbled or torn buffers; it is not a MAC: whoever can write the buffer can
 * write the descriptor too. Four independent multiply-rotate lanes so that it
 * runs at several GB/s (a 1 MiB bitmap costs tens of microseconds).
 */
#ifndef DSVMI_GATE_CHECKSUM_H
#define DSVMI_GATE_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

uint64_t dsvmi_gate_checksum(const void *data, size_t len);

/* What a slot descriptor stores: the buffer's checksum bound to the
 * generation and mode it was published with, so that a scribbled mode or a
 * stale descriptor does not pass for a fresh one. */
uint64_t dsvmi_gate_slot_checksum(const void *data, size_t len,
                                  uint64_t generation, uint32_t mode);

#ifdef __cplusplus
}
#endif

#endif /* DSVMI_GATE_CHECKSUM_H */
