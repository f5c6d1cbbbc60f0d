/*
 * Compiled as C and linked against libdsvmi-producer.so, exactly as QEMU's
 * filter uses it: proves ring.h is C-clean and the .so exports the ABI
 * (dsvmi_ring_record_lost included).
 * Usage: ring_c_abi_test RING_PATH  (the ring is created by dsvmi ring-create)
 */
#include <stdio.h>
#include <string.h>

#include "dsvmi/ring.h"

int main(int argc, char **argv)
{
    char err[256];
    unsigned char buf[4096];
    struct iovec iov[2];
    struct dsvmi_ring_producer_stats st;
    dsvmi_ring_producer_t *p;

    if (argc != 2) {
        return 2;
    }
    if (dsvmi_ring_producer_open("/nonexistent/ring", err, sizeof(err)) != NULL ||
        strstr(err, "No such file") == NULL) {
        fprintf(stderr, "expected a clear open error, got '%s'\n", err);
        return 1;
    }
    p = dsvmi_ring_producer_open(argv[1], err, sizeof(err));
    if (!p) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }
    memset(buf, 0xab, sizeof(buf));
    iov[0].iov_base = buf;
    iov[0].iov_len = 512;
    iov[1].iov_base = buf + 512;
    iov[1].iov_len = sizeof(buf) - 512;
    if (!dsvmi_ring_produce(p, DSVMI_FRAME_WRITE, 0, 4000, iov, 2, 96) ||
        !dsvmi_ring_produce(p, DSVMI_FRAME_DISCARD, 8192, 4096, NULL, 0, 0) ||
        !dsvmi_ring_produce(p, DSVMI_FRAME_FLUSH, 0, 0, NULL, 0, 0)) {
        fprintf(stderr, "produce failed\n");
        return 1;
    }
    /* A failed child write: one produced + dropped frame, in band with the next */
    dsvmi_ring_record_lost(p, 65536, 4096);
    if (!dsvmi_ring_produce(p, DSVMI_FRAME_FLUSH, 0, 0, NULL, 0, 0)) {
        fprintf(stderr, "produce after record_lost failed\n");
        return 1;
    }
    dsvmi_ring_producer_get_stats(p, &st);
    printf("c-abi: produced %llu dropped %llu\n", (unsigned long long)st.produced_frames,
           (unsigned long long)st.dropped_frames);
    dsvmi_ring_producer_close(p);
    return st.produced_frames == 5 && st.dropped_frames == 1 && st.lost_records == 1 ? 0 : 1;
}
