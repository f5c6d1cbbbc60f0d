// libFuzzer target: untrusted bytes in every place the consumer reads.
//
// The first input byte picks a mode:
//   0  raw: the bytes are the whole ring file (header + data area)
//   1  valid geometry, fuzzed live header (indices, counters, lost mirror)
//      and data area
//   2  valid geometry, indices in range, fuzzed data area
//   3  real frames from the real producer, then fuzzed byte overwrites
//   4  one frame: DecodeFrame on the bytes
// Whatever the bytes, the consumer must not crash, hang or read out of
// bounds (ASan), and every view it hands out must be inside the mapping.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dsvmi/ring_consumer.h"
#include "producer.h"
#include "ring_layout.h"

namespace {

using namespace dsvmi;
constexpr uint64_t kCap = ring::kMinCapacity;  // 64 KiB
constexpr uint64_t kFile = ring::kHeaderBytes + kCap;

int RingFd() {
  static int fd = memfd_create("dsvmi-ring-fuzz", MFD_CLOEXEC);
  return fd;
}

std::string RingPath() { return "/proc/self/fd/" + std::to_string(RingFd()); }

void ResetFile(const uint8_t* bytes, size_t n) {
  int fd = RingFd();
  if (ftruncate(fd, 0) != 0 || ftruncate(fd, kFile) != 0) abort();
  if (n && pwrite(fd, bytes, n < kFile ? n : kFile, 0) < 0) abort();
}

void PutGeometry() {
  ring::Geometry g = ring::MakeGeometry(kCap);
  if (pwrite(RingFd(), &g, sizeof g, 0) != sizeof g) abort();
}

void PutU64(uint64_t off, uint64_t v) {
  if (pwrite(RingFd(), &v, sizeof v, static_cast<off_t>(off)) != sizeof v) abort();
}

void Consume() {
  std::string err;
  auto c = RingConsumer::Attach(RingPath(), &err);
  if (!c) return;
  FrameView views[16];
  for (int round = 0; round < 8; round++) {
    size_t n = c->Dequeue(views, 16);
    for (size_t i = 0; i < n; i++) {
      volatile uint8_t sink = 0;
      for (size_t k = 0; k < views[i].payload_len; k++) sink = sink + views[i].payload[k];
      for (size_t k = 0; k < views[i].frame_len; k++) sink = sink + views[i].frame[k];
      if (views[i].kind == FrameKind::kWrite && views[i].payload_len != views[i].length) abort();
    }
    if (n) c->Release(views[n - 1]);
  }
  (void)c->stats();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0] % 5;
  data++;
  size--;
  switch (mode) {
    case 0:
      ResetFile(data, size);
      Consume();
      break;
    case 1: {
      // Live header fields start right after the geometry line.
      std::vector<uint8_t> file(kFile, 0);
      std::memcpy(file.data() + sizeof(ring::Geometry), data,
                  std::min<size_t>(size, kFile - sizeof(ring::Geometry)));
      ResetFile(file.data(), file.size());
      PutGeometry();
      Consume();
      break;
    }
    case 2: {
      if (size < 4) return 0;
      uint64_t cons = (uint64_t{data[0]} << 8 | data[1]) * 64;
      uint64_t fill = (uint64_t{data[2]} << 8 | data[3]) * 4 % (kCap + 1);
      std::vector<uint8_t> file(kFile, 0);
      std::memcpy(file.data() + ring::kHeaderBytes, data + 4, std::min<size_t>(size - 4, kCap));
      ResetFile(file.data(), file.size());
      PutGeometry();
      PutU64(offsetof(ring::Header, consumer) + offsetof(ring::ConsumerLine, cons_index), cons);
      PutU64(offsetof(ring::Header, producer) + offsetof(ring::ProducerLine, prod_index), cons + fill);
      Consume();
      break;
    }
    case 3: {
      // Real frames first, then overwrite (offset, byte) pairs in the data.
      ResetFile(nullptr, 0);
      PutGeometry();
      std::string err;
      {
        auto p = ring::RingProducer::Open(RingPath(), &err);
        if (!p) abort();
        const size_t frames = size ? 1 + data[0] % 40 : 1;
        std::vector<uint8_t> payload(3000, 0x77);
        for (size_t i = 0; i < frames; i++) {
          const size_t len = (i * 397 + (size > 1 ? data[1] : 0)) % payload.size();
          struct iovec iov = {payload.data(), len};
          p->Produce(1 + static_cast<int>(i % 4), i * 512, (i % 4) ? i * 512 : len, &iov, 1, 0);
        }
      }
      for (size_t i = 2; i + 2 < size; i += 3) {
        const uint64_t off = ring::kHeaderBytes + ((uint64_t{data[i]} << 8 | data[i + 1]) % kCap);
        if (pwrite(RingFd(), &data[i + 2], 1, static_cast<off_t>(off)) != 1) abort();
      }
      Consume();
      break;
    }
    case 4: {
      std::vector<uint64_t> aligned(size / 8 + 1);
      std::memcpy(aligned.data(), data, size);
      FrameView v;
      std::string err;
      if (DecodeFrame(reinterpret_cast<const uint8_t*>(aligned.data()), size, &v, &err)) {
        volatile uint8_t sink = 0;
        for (size_t k = 0; k < v.payload_len; k++) sink = sink + v.payload[k];
      }
      break;
    }
  }
  return 0;
}
