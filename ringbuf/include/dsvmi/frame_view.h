// dsvmi frames as the engine sees them: a decoded, verified view of one
// FlatBuffers frame (ringbuf/frame.fbs) that may live in memory an untrusted
// producer can still modify.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace dsvmi {

enum class FrameKind : uint8_t {
  kWrite = 1,
  kWriteZeroes = 2,
  kDiscard = 3,
  kFlush = 4,
  kLost = 5,
};

const char* FrameKindName(FrameKind k);

// One decoded frame. The scalar fields are private copies taken after
// verification. `payload` points into the shared mapping: its bounds are
// fixed and checked, but its bytes belong to an untrusted producer and stay
// valid only until the view is released. Never re-parse `frame` in place with
// FlatBuffers accessors (the producer could change it under you); copy it
// first, as `dsvmi capture` does, and verify the copy.
struct FrameView {
  uint64_t seq = 0;
  FrameKind kind = FrameKind::kWrite;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t timestamp_ns = 0;
  // kLost only: frames first_lost_seq .. seq were dropped (seq = the last one).
  uint64_t lost_frames = 0;
  uint64_t lost_bytes = 0;
  uint64_t first_lost_seq = 0;
  const uint8_t* payload = nullptr;  // kWrite: exactly `length` bytes
  size_t payload_len = 0;
  const uint8_t* frame = nullptr;  // the whole FlatBuffers frame (untrusted bytes)
  size_t frame_len = 0;
  uint64_t ring_end = 0;  // ring index just past this record (for Release)
};

// Decodes one frame from `frame_len` bytes at `frame` that an untrusted party
// may modify concurrently: metadata is snapshotted privately and verified;
// only the payload bounds point back into `frame`. On failure returns false
// with a message naming the problem.
bool DecodeFrame(const uint8_t* frame, size_t frame_len, FrameView* out, std::string* err);

}  // namespace dsvmi
