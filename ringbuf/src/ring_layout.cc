#include "ring_layout.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace dsvmi::ring {

namespace {

std::string Format(const char* fmt, uint64_t a, uint64_t b = 0) {
  char buf[200];
  std::snprintf(buf, sizeof buf, fmt, a, b);
  return buf;
}

}  // namespace

bool ValidateGeometry(const Geometry& g, uint64_t file_size, std::string* err) {
  if (g.magic != kMagic) {
    *err = Format("bad magic 0x%016" PRIx64 " (expected 0x%016" PRIx64 "): not a dsvmi ring", g.magic, kMagic);
    return false;
  }
  if (g.layout_version != kLayoutVersion) {
    *err = Format("incompatible ring layout version %" PRIu64 " (this build speaks %" PRIu64 ")", g.layout_version,
                  kLayoutVersion);
    return false;
  }
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (g.header_bytes != kHeaderBytes || kHeaderBytes % page != 0) {
    *err = Format("bad header size %" PRIu64 " (expected %" PRIu64 ")", g.header_bytes, kHeaderBytes);
    return false;
  }
  if (g.capacity < kMinCapacity || g.capacity > kMaxCapacity || (g.capacity & (g.capacity - 1)) != 0 ||
      g.capacity % page != 0) {
    *err = Format("bad capacity %" PRIu64 " (want a power of two in [64 KiB, 16 GiB])", g.capacity);
    return false;
  }
  if (g.record_align != kRecordAlign) {
    *err = Format("bad record alignment %" PRIu64 " (expected %" PRIu64 ")", g.record_align, kRecordAlign);
    return false;
  }
  if (g.max_record < 4096 || g.max_record > g.capacity / 2 || g.max_record % kRecordAlign != 0 ||
      g.max_record > UINT32_MAX - kRecordAlign) {
    *err = Format("bad max record %" PRIu64 " for capacity %" PRIu64, g.max_record, g.capacity);
    return false;
  }
  if (file_size != kHeaderBytes + g.capacity) {
    *err = Format("file is %" PRIu64 " bytes, header says %" PRIu64, file_size, kHeaderBytes + g.capacity);
    return false;
  }
  return true;
}

Geometry MakeGeometry(uint64_t capacity) {
  Geometry g{};
  g.magic = kMagic;
  g.layout_version = kLayoutVersion;
  g.header_bytes = static_cast<uint32_t>(kHeaderBytes);
  g.capacity = capacity;
  // Half the ring: a record never has to wait for more than half the ring to
  // drain, and 2 MiB writes fit rings of 8 MiB and up.
  uint64_t max_record = capacity / 2;
  if (max_record > UINT32_MAX - kRecordAlign + 1) max_record = (UINT32_MAX / 2 + 1);
  g.max_record = max_record;
  g.record_align = static_cast<uint32_t>(kRecordAlign);
  g.creator_pid = static_cast<uint64_t>(getpid());
  return g;
}

uint8_t* MapTwice(int fd, uint64_t offset, uint64_t capacity, std::string* err) {
  // Reserve 2 x capacity of address space first so the two file mappings land
  // back to back and nothing else can be placed in between.
  void* base = mmap(nullptr, 2 * capacity, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {
    *err = std::string("mmap reserve: ") + std::strerror(errno);
    return nullptr;
  }
  auto* b = static_cast<uint8_t*>(base);
  for (int i = 0; i < 2; i++) {
    void* m = mmap(b + i * capacity, capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd,
                   static_cast<off_t>(offset));
    if (m == MAP_FAILED) {
      *err = std::string("mmap data area: ") + std::strerror(errno);
      munmap(base, 2 * capacity);
      return nullptr;
    }
  }
  return b;
}

void UnmapTwice(uint8_t* base, uint64_t capacity) {
  if (base) munmap(base, 2 * capacity);
}

std::string ErrnoMessage(const char* what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

}  // namespace dsvmi::ring
