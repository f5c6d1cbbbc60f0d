// DecodeFrame: verifying a frame that lives in memory a hostile producer can
// rewrite while we look at it.
//
// Running flatbuffers::Verifier in place would not be safe: the Verifier and
// the accessors re-read offsets (e.g. the table's vtable offset) after
// checking them, so a concurrent rewrite between the check and the use can
// send a read anywhere (time-of-check/time-of-use). Instead:
//   1. copy the first min(frame_len, kHeadBytes) bytes to a private buffer —
//      every frame our producer builds has all of its metadata there, the
//      payload vector being built first and so lying last;
//   2. find the payload vector in the private copy (every step bounds-checked),
//      remember its length, check it against frame_len, and set the copy's
//      length field to 0 so the private buffer is self-contained;
//   3. run the Verifier on the private copy and read the scalars from it.
// The payload pointer handed out is frame + position: in bounds by step 2,
// its content still the producer's (untrusted, but reading it is safe).
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "dsvmi/frame_generated.h"
#include "dsvmi/frame_view.h"

namespace dsvmi {

namespace {

constexpr size_t kHeadBytes = 256;
constexpr size_t kMinFrameBytes = 16;

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

bool Fail(std::string* err, const char* fmt, uint64_t a = 0, uint64_t b = 0) {
  char buf[200];
  std::snprintf(buf, sizeof buf, fmt, a, b);
  *err = buf;
  return false;
}

}  // namespace

const char* FrameKindName(FrameKind k) {
  switch (k) {
    case FrameKind::kWrite: return "write";
    case FrameKind::kWriteZeroes: return "write-zeroes";
    case FrameKind::kDiscard: return "discard";
    case FrameKind::kFlush: return "flush";
    case FrameKind::kLost: return "lost";
  }
  return "?";
}

bool DecodeFrame(const uint8_t* frame, size_t frame_len, FrameView* out, std::string* err) {
  if (frame_len < kMinFrameBytes || frame_len % 8 != 0 || frame_len > FLATBUFFERS_MAX_BUFFER_SIZE / 2) {
    return Fail(err, "frame: bad length %" PRIu64 " (need a multiple of 8, >= 16)", frame_len);
  }
  if (reinterpret_cast<uintptr_t>(frame) % 8 != 0) return Fail(err, "frame: not 8-byte aligned");
  alignas(8) uint8_t head[kHeadBytes];
  const size_t h = frame_len < kHeadBytes ? frame_len : kHeadBytes;
  std::memcpy(head, frame, h);

  // Step 2: locate the payload vector by hand in the private copy.
  bool has_payload = false;
  uint64_t payload_pos = 0, payload_len = 0;
  const uint32_t table = Load<uint32_t>(head);
  if (table % 4 != 0 || uint64_t{table} + 4 > h) return Fail(err, "frame: root table offset %" PRIu64 " out of bounds", table);
  const int64_t vtable = int64_t{table} - Load<int32_t>(head + table);
  if (vtable < 0 || vtable % 2 != 0 || vtable + 4 > static_cast<int64_t>(h)) {
    return Fail(err, "frame: vtable at %" PRId64 " out of bounds", static_cast<uint64_t>(vtable));
  }
  const uint16_t vt_size = Load<uint16_t>(head + vtable);
  const uint16_t payload_slot = fb::Frame::VT_PAYLOAD;
  if (vt_size >= payload_slot + 2 && vtable + vt_size <= static_cast<int64_t>(h)) {
    const uint16_t field = Load<uint16_t>(head + vtable + payload_slot);
    if (field != 0) {
      const uint64_t field_pos = uint64_t{table} + field;
      if (field_pos + 4 > h) return Fail(err, "frame: payload field at %" PRIu64 " out of bounds", field_pos);
      payload_pos = field_pos + Load<uint32_t>(head + field_pos);
      if (payload_pos % 4 != 0 || payload_pos + 4 > h) {
        return Fail(err, "frame: payload vector at %" PRIu64 " is not within the first %" PRIu64 " bytes",
                    payload_pos, kHeadBytes);
      }
      payload_len = Load<uint32_t>(head + payload_pos);
      if (payload_pos + 4 + payload_len > frame_len) {
        return Fail(err, "frame: payload of %" PRIu64 " bytes overruns the %" PRIu64 "-byte frame", payload_len,
                    frame_len);
      }
      std::memset(head + payload_pos, 0, 4);
      has_payload = true;
    }
  }
  if (!has_payload && frame_len > kHeadBytes) {
    return Fail(err, "frame: %" PRIu64 " bytes but no payload vector", frame_len);
  }

  // Step 3: the Verifier on the self-contained private copy.
  flatbuffers::Verifier verifier(head, h);
  if (!fb::VerifyFrameBuffer(verifier)) {
    return Fail(err, "frame: FlatBuffers verification failed (bad structure or identifier, not \"DSVF\")");
  }
  const fb::Frame* f = fb::GetFrame(head);
  const auto kind = static_cast<uint8_t>(f->kind());
  if (kind < 1 || kind > 5) return Fail(err, "frame: unknown kind %" PRIu64, kind);

  FrameView v;
  v.seq = f->seq();
  v.kind = static_cast<FrameKind>(kind);
  v.offset = f->offset();
  v.length = f->length();
  v.timestamp_ns = f->timestamp_ns();
  v.frame = frame;
  v.frame_len = frame_len;
  if (v.kind == FrameKind::kWrite) {
    if (!has_payload || payload_len != v.length) {
      return Fail(err, "frame: write of length %" PRIu64 " carries %" PRIu64 " payload bytes", v.length, payload_len);
    }
    v.payload = frame + payload_pos + 4;
    v.payload_len = payload_len;
  } else if (payload_len != 0) {
    return Fail(err, "frame: %" PRIu64 "-byte payload on a frame of kind %" PRIu64, payload_len, kind);
  }
  if (v.kind == FrameKind::kLost) {
    v.lost_frames = f->lost_frames();
    v.lost_bytes = f->lost_bytes();
    v.first_lost_seq = f->first_lost_seq();
    if (v.lost_frames == 0 || v.first_lost_seq + (v.lost_frames - 1) != v.seq || v.first_lost_seq > v.seq) {
      return Fail(err, "frame: lost record of %" PRIu64 " frames inconsistent with seq %" PRIu64, v.lost_frames,
                  v.seq);
    }
  }
  *out = v;
  return true;
}

}  // namespace dsvmi
