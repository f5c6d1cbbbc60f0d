// libFuzzer target: any byte string as a trace file, read and replayed onto a
// small in-memory image (memfd). The reader must return frames, a clean end
// or an error; the replayer must apply or reject each frame; neither may
// crash, read or write out of bounds, or loop.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "dsvmi/replay.h"
#include "dsvmi/trace.h"

namespace {

constexpr off_t kImageBytes = 1 << 20;

int image_fd() {
  static const int fd = [] {
    int f = memfd_create("fuzz-image", 0);
    if (f < 0 || ftruncate(f, kImageBytes) != 0) __builtin_trap();
    return f;
  }();
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dsvmi::Status err;
  auto r = dsvmi::TraceReader::from_bytes(std::span(reinterpret_cast<const std::byte*>(data), size), &err);
  if (!r) return 0;
  auto replayer = dsvmi::ImageReplayer::open("/proc/self/fd/" + std::to_string(image_fd()), {}, &err);
  if (!replayer) __builtin_trap();
  std::span<const std::byte> frame;
  while (r->next(&frame, &err) == dsvmi::TraceReader::Next::kFrame) {
    if (frame.empty() || frame.size() > dsvmi::kTraceMaxFrameBytes) __builtin_trap();
    (void)replayer->apply(frame);
  }
  struct stat st;
  if (fstat(image_fd(), &st) != 0 || st.st_size != kImageBytes) __builtin_trap();  // never grown
  return 0;
}
