// dsvmi ring-create PATH [--size 64M]: creates an empty ring for a producer
// (QEMU) and a later consumer (`dsvmi capture` attaches to it).
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "commands.h"
#include "usage.h"
#include "dsvmi/ring_consumer.h"

namespace dsvmi::cli {

namespace {

bool ParseRingSize(const char* s, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno || end == s) return false;
  uint64_t mul = 1;
  if (*end == 'K' || *end == 'k') mul = 1ull << 10, end++;
  else if (*end == 'M' || *end == 'm') mul = 1ull << 20, end++;
  else if (*end == 'G' || *end == 'g') mul = 1ull << 30, end++;
  if (*end != '\0' || v > (UINT64_MAX / mul)) return false;
  *out = v * mul;
  return true;
}

}  // namespace

constexpr char kUsage[] =
    "usage: dsvmi ring-create PATH [--size 64M]\n"
    "Creates a ring file (mode 0600; put it on tmpfs, e.g. /dev/shm) whose data area is\n"
    "--size bytes (a power of two, 64K..16G; K/M/G suffixes).\n";

int cmd_ring_create(int argc, char** argv) {
  std::string path;
  uint64_t size = 64ull << 20;
  for (int i = 0; i < argc; i++) {
    if (is_help_arg(argv[i])) return usage_exit(true, kUsage);
    if (!std::strcmp(argv[i], "--size")) {
      if (i + 1 >= argc || !ParseRingSize(argv[++i], &size)) {
        std::fprintf(stderr, "dsvmi ring-create: --size needs a size like 64M\n");
        return 2;
      }
    } else if (path.empty() && argv[i][0] != '-') {
      path = argv[i];
    } else {
      std::fprintf(stderr, "dsvmi ring-create: unexpected argument '%s'\n", argv[i]);
      return usage_exit(false, kUsage);
    }
  }
  if (path.empty()) return usage_exit(false, kUsage);
  std::string err;
  auto ring = RingConsumer::Create(path, size, &err);
  if (!ring) {
    std::fprintf(stderr, "dsvmi ring-create: %s\n", err.c_str());
    return 1;
  }
  std::printf("created ring %s: %llu-byte data area, largest write %llu bytes\n", path.c_str(),
              static_cast<unsigned long long>(ring->geometry().capacity),
              static_cast<unsigned long long>(ring->geometry().max_payload));
  return 0;
}

}  // namespace dsvmi::cli
