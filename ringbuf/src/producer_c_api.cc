// The C ABI of dsvmi/ring.h over RingProducer. These are the only symbols
// libdsvmi-producer.so exports for the ring (everything else is hidden).
#include <cstdio>
#include <cstring>
#include <new>

#include "dsvmi/ring.h"
#include "producer.h"

#define DSVMI_EXPORT __attribute__((visibility("default")))

struct dsvmi_ring_producer {
  std::unique_ptr<dsvmi::ring::RingProducer> impl;
};

extern "C" {

DSVMI_EXPORT dsvmi_ring_producer_t* dsvmi_ring_producer_open(const char* path, char* err, size_t err_len) {
  std::string why;
  std::unique_ptr<dsvmi::ring::RingProducer> impl;
  if (!path) {
    why = "ring path is NULL";
  } else {
    impl = dsvmi::ring::RingProducer::Open(path, &why);
  }
  if (!impl) {
    if (err && err_len > 0) std::snprintf(err, err_len, "%s", why.c_str());
    return nullptr;
  }
  auto* p = new (std::nothrow) dsvmi_ring_producer;
  if (!p) {
    if (err && err_len > 0) std::snprintf(err, err_len, "out of memory");
    return nullptr;
  }
  p->impl = std::move(impl);
  return p;
}

DSVMI_EXPORT void dsvmi_ring_producer_close(dsvmi_ring_producer_t* p) { delete p; }

DSVMI_EXPORT int dsvmi_ring_produce(dsvmi_ring_producer_t* p, enum dsvmi_frame_kind kind, uint64_t offset,
                                    uint64_t length, const struct iovec* iov, int iovcnt, size_t iov_skip) {
  if (!p) return 0;
  // A C caller may pass any int; read the bits, not the enum, so an unknown
  // kind is refused by Produce instead of being undefined behaviour in C++.
  int k = 0;
  static_assert(sizeof k == sizeof kind);
  std::memcpy(&k, &kind, sizeof k);
  return p->impl->Produce(k, offset, length, iov, iovcnt, iov_skip) ? 1 : 0;
}

DSVMI_EXPORT void dsvmi_ring_record_lost(dsvmi_ring_producer_t* p, uint64_t offset, uint64_t length) {
  if (p) p->impl->RecordLost(offset, length);
}

DSVMI_EXPORT void dsvmi_ring_producer_get_stats(const dsvmi_ring_producer_t* p,
                                                struct dsvmi_ring_producer_stats* out) {
  if (!out) return;
  *out = p ? p->impl->stats() : dsvmi_ring_producer_stats{};
}

}  // extern "C"
