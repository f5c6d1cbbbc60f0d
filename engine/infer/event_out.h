// EventOut: how every live driver hands events to the sink — the event
// sequence number, the latency stamp, and the one held modify event that the
// next contiguous piece of the same file from the same frame extends (data
// attributed block by block, e.g. delayed allocation settling a 512 MiB
// file, is one event, not 131072). File-system neutral (fs_driver.h).
#pragma once

#include <cstdint>

#include "dsvmi/events.h"
#include "engine_context.h"

namespace dsvmi::infer {

class EventOut {
 public:
  explicit EventOut(EngineContext& ctx) : ctx_(ctx) {}

  // Releases the held modify first, so events leave in the order made.
  void emit(Event&& e);
  // A modify event of `len` bytes at e.offset (e.length == len); `data` is
  // the written bytes (copied into the event with capture_data). Merged into
  // the held one when it continues it, else the held one goes out and this
  // one is held.
  void modify(Event&& e, const uint8_t* data, uint64_t len);
  // Sends the held modify, if any.
  void release_held();

 private:
  void emit_now(Event&& e);

  EngineContext& ctx_;
  Event held_;
  bool has_held_ = false;
};

}  // namespace dsvmi::infer
