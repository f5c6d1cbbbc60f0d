// EventOut (engine/infer/event_out.h), the event output every live driver
// shares: sequence numbers in emission order, a held modify that only the
// next contiguous piece of the same file from the same frame extends, and
// the byte cap on a merged event that carries data.
#include <gtest/gtest.h>

#include <vector>

#include "../../../engine/infer/event_out.h"

namespace dsvmi::infer {
namespace {

struct Collect : EventSink {
  void emit(const Event& e) override { events.push_back(e); }
  std::vector<Event> events;
};

Event piece(uint64_t ino, uint64_t frame, uint64_t offset, uint64_t len) {
  Event e;
  e.kind = EventKind::Modify;
  e.ino = ino;
  e.frame_seq = frame;
  e.offset = offset;
  e.length = len;
  return e;
}

TEST(EventOut, MergesOnlyContiguousPiecesOfOneFileAndFrame) {
  Collect sink;
  EngineContext ctx;
  ctx.sink = &sink;
  EventOut out(ctx);
  out.modify(piece(5, 1, 0, 4096), nullptr, 4096);
  out.modify(piece(5, 1, 4096, 4096), nullptr, 4096);  // continues: merged
  out.modify(piece(5, 2, 8192, 4096), nullptr, 4096);  // other frame
  out.modify(piece(6, 2, 12288, 4096), nullptr, 4096); // other file
  out.modify(piece(6, 2, 0, 4096), nullptr, 4096);     // not the next byte
  Event create;
  create.kind = EventKind::Create;
  create.ino = 7;
  out.emit(std::move(create));  // releases the held modify first
  out.release_held();
  ASSERT_EQ(sink.events.size(), 5u);
  EXPECT_EQ(sink.events[0].length, 8192u);
  EXPECT_EQ(sink.events[1].frame_seq, 2u);
  EXPECT_EQ(sink.events[2].ino, 6u);
  EXPECT_EQ(sink.events[3].offset, 0u);
  EXPECT_EQ(sink.events[4].kind, EventKind::Create);
  for (size_t i = 0; i < sink.events.size(); i++) EXPECT_EQ(sink.events[i].seq, i + 1);
  EXPECT_EQ(ctx.stats.events, 5u);
}

TEST(EventOut, CapturedDataIsCopiedAndCapped) {
  Collect sink;
  EngineContext ctx;
  ctx.sink = &sink;
  ctx.options.capture_data = true;
  EventOut out(ctx);
  std::vector<uint8_t> block(64 << 10, 0xab);
  const uint64_t pieces = (2u << 20) / block.size();  // 2 MiB in 64 KiB pieces
  for (uint64_t i = 0; i < pieces; i++) {
    out.modify(piece(9, 1, i * block.size(), block.size()), block.data(), block.size());
  }
  out.release_held();
  ASSERT_GE(sink.events.size(), 2u);  // one merged event would exceed the cap
  uint64_t total = 0, next = 0;
  for (const Event& e : sink.events) {
    EXPECT_EQ(e.offset, next);
    EXPECT_EQ(e.data.size(), e.length);
    EXPECT_LE(e.length, 1u << 20);
    next = e.offset + e.length;
    total += e.length;
  }
  EXPECT_EQ(total, 2u << 20);
}

}  // namespace
}  // namespace dsvmi::infer
