/*
 * dsvmi ring: producer side, as a C ABI.
 *
 * The consumer (the dsvmi engine) creates the shared-memory ring; the producer
 * (QEMU's dsvmi block filter, one per disk, called from that disk's AioContext)
 * maps it by path and appends one FlatBuffers frame per guest write.
 *
 * This header is the contract with the QEMU patch (qemu-patches/): C only, no
 * C++ types, stable within DSVMI_RING_ABI_VERSION. Changing it invalidates the
 * cached patched-QEMU build (the cache key hashes this file).
 *
 * Hot-path guarantees of dsvmi_ring_produce() and dsvmi_ring_record_lost():
 * no allocation, no lock, no syscall (except a futex wake when the consumer
 * sleeps), no logging, and they never block: a full ring drops the frame,
 * counts it and records the lost byte range so the engine can resync it.
 */
#ifndef DSVMI_RING_H
#define DSVMI_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DSVMI_RING_ABI_VERSION 1

/* What a frame describes. Values are shared with the FlatBuffers schema. */
enum dsvmi_frame_kind {
    DSVMI_FRAME_WRITE = 1,        /* payload = the bytes written */
    DSVMI_FRAME_WRITE_ZEROES = 2, /* no payload */
    DSVMI_FRAME_DISCARD = 3,      /* no payload */
    DSVMI_FRAME_FLUSH = 4,        /* no payload, offset = length = 0 */
};

typedef struct dsvmi_ring_producer dsvmi_ring_producer_t;

/*
 * Maps the ring at `path` (created by the consumer). On failure returns NULL
 * and writes a one-line reason into err (if err_len > 0), e.g. a bad magic or
 * an incompatible layout version.
 */
dsvmi_ring_producer_t *dsvmi_ring_producer_open(const char *path, char *err,
                                                size_t err_len);

/* Unmaps the ring. The ring itself stays for the consumer. NULL is a no-op. */
void dsvmi_ring_producer_close(dsvmi_ring_producer_t *p);

/*
 * Appends one frame for a request on the guest's disk: `kind`, byte `offset`
 * and `length` on the virtual disk. For DSVMI_FRAME_WRITE the payload is the
 * `length` bytes found in `iov[0..iovcnt)` after skipping `iov_skip` bytes,
 * copied exactly once into the ring; other kinds carry no payload (iov may be
 * NULL).
 *
 * Returns 1 when the frame was enqueued, 0 when it was dropped (ring full,
 * frame larger than the ring, or the ring found corrupted); a drop is counted
 * in the shared header and its byte range recorded as lost. Never blocks.
 */
int dsvmi_ring_produce(dsvmi_ring_producer_t *p, enum dsvmi_frame_kind kind,
                       uint64_t offset, uint64_t length,
                       const struct iovec *iov, int iovcnt, size_t iov_skip);

/*
 * The producer's own tally (its private copies, not the shared header the
 * consumer could scribble on). Added compatibly in ABI version 1.
 *   produced_frames: every dsvmi_ring_produce() call (= next sequence number)
 *   dropped_frames/bytes: requests not enqueued; bytes = their `length`
 *   lost_records: in-band Lost frames emitted after drops
 *   bad_consumer_index: times the consumer index read from shared memory was
 *     outside [producer - capacity, producer] (a corrupted or hostile peer)
 */
/*
 * Records that the range [offset, offset + length) of the disk may have
 * changed without a frame describing it: a write, write-zeroes or discard the
 * gate passed but the layer below FAILED (it may have changed part of the
 * range, or none of it). Counts as one produced and one dropped frame (it
 * takes a sequence number), so delivered + dropped == produced still holds,
 * and the range joins the pending Lost record exactly like a frame dropped
 * for lack of room: the engine learns of it through the next in-band Lost
 * frame (or the header's lost mirror) and reads the range back from the
 * disk. Never blocks; NULL p is a no-op. Added compatibly in ABI version 1.
 */
void dsvmi_ring_record_lost(dsvmi_ring_producer_t *p, uint64_t offset,
                            uint64_t length);

struct dsvmi_ring_producer_stats {
    uint64_t produced_frames;
    uint64_t produced_bytes;
    uint64_t dropped_frames;
    uint64_t dropped_bytes;
    uint64_t lost_records;
    uint64_t bad_consumer_index;
};

void dsvmi_ring_producer_get_stats(const dsvmi_ring_producer_t *p,
                                   struct dsvmi_ring_producer_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* DSVMI_RING_H */
