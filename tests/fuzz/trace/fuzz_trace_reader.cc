// libFuzzer target: any byte string as a trace file. The reader must return
// frames, a clean end or an error; never crash, read out of bounds or loop.
#include <cstddef>
#include <cstdint>

#include "dsvmi/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dsvmi::Status err;
  auto r = dsvmi::TraceReader::from_bytes(
      std::span(reinterpret_cast<const std::byte*>(data), size), &err);
  if (!r) return 0;
  std::span<const std::byte> frame;
  uint64_t volatile sink = 0;
  while (r->next(&frame, &err) == dsvmi::TraceReader::Next::kFrame) {
    if (frame.empty() || frame.size() > dsvmi::kTraceMaxFrameBytes) __builtin_trap();
    sink = sink + static_cast<uint8_t>(frame.front()) + static_cast<uint8_t>(frame.back());
  }
  return 0;
}
