// EngineContext: what every live file-system driver of one disk shares with
// the router (engine.cc): options, stats, the event sink and the event
// sequence, the latency histogram.
#pragma once

#include <cstdint>

#include "dsvmi/events.h"
#include "dsvmi/inference.h"
#include "dsvmi/latency.h"

namespace dsvmi::infer {

struct EngineContext {
  InferenceOptions options;
  InferenceStats stats;
  EventSink* sink = nullptr;
  uint64_t next_event_seq = 1;
  LatencyHistogram interval_latency;  // since the last take_interval_latency()
};

}  // namespace dsvmi::infer
