// ImageReplayer against a reference model: a std::vector<uint8_t> to which the
// test applies the same writes / write-zeroes / discards by hand. After a
// random mix of frames the image file must equal the model byte for byte.
// Bad frames must be rejected with a message and leave the image untouched.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "dsvmi/frame_generated.h"
#include "dsvmi/replay.h"

namespace dsvmi {
namespace {

// A frame as the ring's producer would build it (payload vector first), in
// 8-byte aligned storage.
struct Frame {
  std::vector<uint64_t> storage;
  size_t size = 0;
  std::span<const std::byte> bytes() const {
    return {reinterpret_cast<const std::byte*>(storage.data()), size};
  }
};

Frame make_frame(uint64_t seq, fb::FrameKind kind, uint64_t offset, uint64_t length,
                 const std::vector<uint8_t>* payload = nullptr, uint64_t lost_frames = 0,
                 uint64_t lost_bytes = 0, uint64_t first_lost_seq = 0) {
  flatbuffers::FlatBufferBuilder fbb(256 + (payload ? payload->size() : 0));
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> p = 0;
  if (payload) p = fbb.CreateVector(*payload);
  auto f = fb::CreateFrame(fbb, seq, kind, offset, length, 12345, p, lost_frames, lost_bytes,
                           first_lost_seq);
  fb::FinishFrameBuffer(fbb, f);
  Frame out;
  out.size = fbb.GetSize();
  out.storage.resize((out.size + 7) / 8);
  std::memcpy(out.storage.data(), fbb.GetBufferPointer(), out.size);
  return out;
}

class ReplayTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kImage = 1 << 20;
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() /
            ("dsvmi_replay_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    model_.assign(kImage, 0);
    std::mt19937_64 rng(1);
    for (auto& b : model_) b = static_cast<uint8_t>(rng());  // the "original image"
    std::ofstream(path_, std::ios::binary).write(reinterpret_cast<const char*>(model_.data()), kImage);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  std::vector<uint8_t> image() {
    std::ifstream in(path_, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), {});
  }

  std::unique_ptr<ImageReplayer> open(ReplayOptions o = {}) {
    Status err;
    auto r = ImageReplayer::open(path_, o, &err);
    EXPECT_TRUE(r) << err.message();
    return r;
  }

  std::filesystem::path path_;
  std::vector<uint8_t> model_;
};

TEST_F(ReplayTest, RandomFramesMatchTheModel) {
  for (auto mode : {ReplayOptions::Discard::kPunchHole, ReplayOptions::Discard::kZero}) {
    auto r = open({mode});
    std::mt19937_64 rng(static_cast<int>(mode) + 5);
    for (uint64_t seq = 0; seq < 3000; ++seq) {
      const int k = static_cast<int>(rng() % 10);
      // Discards and hole punching work on whole 4 KiB blocks in a real
      // filter stack; keep writes arbitrary and ranges mostly unaligned.
      uint64_t off = rng() % kImage;
      uint64_t len = 1 + rng() % 20000;
      if (off + len > kImage) len = kImage - off;
      if (k < 7) {
        std::vector<uint8_t> p(len);
        for (auto& b : p) b = static_cast<uint8_t>(rng());
        ASSERT_TRUE(r->apply(make_frame(seq, fb::FrameKind::Write, off, len, &p).bytes()));
        std::memcpy(&model_[off], p.data(), len);
      } else if (k < 8) {
        ASSERT_TRUE(r->apply(make_frame(seq, fb::FrameKind::WriteZeroes, off, len).bytes()));
        std::memset(&model_[off], 0, len);
      } else if (k < 9) {
        ASSERT_TRUE(r->apply(make_frame(seq, fb::FrameKind::Discard, off, len).bytes()));
        std::memset(&model_[off], 0, len);
      } else {
        ASSERT_TRUE(r->apply(make_frame(seq, fb::FrameKind::Flush, 0, 0).bytes()));
      }
    }
    ASSERT_TRUE(r->finish());
    EXPECT_TRUE(r->stats().lossless());
    EXPECT_EQ(r->stats().frames, 3000u);
    ASSERT_EQ(image(), model_) << "mode " << static_cast<int>(mode);
  }
}

TEST_F(ReplayTest, DiscardSkipLeavesDataInPlace) {
  auto r = open({ReplayOptions::Discard::kSkip});
  ASSERT_TRUE(r->apply(make_frame(0, fb::FrameKind::Discard, 4096, 8192).bytes()));
  ASSERT_TRUE(r->finish());
  EXPECT_EQ(image(), model_);
  EXPECT_EQ(r->stats().discards, 1u);
}

struct Loss {
  std::vector<std::string> messages;
  static void report(const std::string& m, void* self) { static_cast<Loss*>(self)->messages.push_back(m); }
};

TEST_F(ReplayTest, LostFramesAndSequenceGapsAreReported) {
  auto r = open();
  Loss loss;
  r->set_loss_reporter(Loss::report, &loss);
  std::vector<uint8_t> p(10, 7);
  ASSERT_TRUE(r->apply(make_frame(100, fb::FrameKind::Write, 0, 10, &p).bytes()));
  EXPECT_TRUE(r->stats().lossless());
  // Frames 101..103 dropped by the producer, recorded in band.
  ASSERT_TRUE(r->apply(make_frame(103, fb::FrameKind::Lost, 4096, 3 * 4096, nullptr, 3, 12288, 101).bytes()));
  ASSERT_TRUE(r->apply(make_frame(104, fb::FrameKind::Write, 10, 10, &p).bytes()));
  EXPECT_FALSE(r->stats().lossless());
  EXPECT_EQ(r->stats().lost_records, 1u);
  EXPECT_EQ(r->stats().lost_frames, 3u);
  EXPECT_EQ(r->stats().unexplained_gaps, 0u);
  // 105..106 vanish with no Lost frame.
  ASSERT_TRUE(r->apply(make_frame(107, fb::FrameKind::Flush, 0, 0).bytes()));
  EXPECT_EQ(r->stats().unexplained_gaps, 1u);
  EXPECT_EQ(r->stats().unexplained_missing, 2u);
  ASSERT_EQ(loss.messages.size(), 2u);
  EXPECT_NE(loss.messages[0].find("LOST 3 frames (seq 101..103"), std::string::npos) << loss.messages[0];
  EXPECT_NE(loss.messages[1].find("105 to 107"), std::string::npos) << loss.messages[1];
}

TEST_F(ReplayTest, BadFramesAreRejectedAndChangeNothing) {
  auto r = open();
  std::vector<uint8_t> p(16, 0xaa);
  struct Case {
    Frame frame;
    const char* expect;
  };
  std::vector<Case> cases;
  cases.push_back({make_frame(0, fb::FrameKind::Write, kImage - 8, 16, &p), "past the end"});
  cases.push_back({make_frame(0, fb::FrameKind::Write, ~uint64_t{0} - 4, 16, &p), "past the end"});
  cases.push_back({make_frame(0, fb::FrameKind::Write, 0, 17, &p), "payload"});
  cases.push_back({make_frame(0, fb::FrameKind::Discard, 0, 16, &p), "payload"});
  cases.push_back({make_frame(0, fb::FrameKind::Invalid, 0, 0), "kind"});
  cases.push_back({make_frame(0, fb::FrameKind::Lost, 0, 0, nullptr, 0, 0, 0), "lost"});
  Frame garbage = make_frame(0, fb::FrameKind::Write, 0, 16, &p);
  garbage.storage[0] = 0xffffffffffffull;  // root offset nonsense
  cases.push_back({garbage, "frame"});
  for (const auto& c : cases) {
    Status s = r->apply(c.frame.bytes());
    EXPECT_FALSE(s) << c.expect;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << s.message();
  }
  ASSERT_TRUE(r->finish());
  EXPECT_EQ(image(), model_);
}

TEST_F(ReplayTest, NotARegularFileIsRefused) {
  Status err;
  EXPECT_FALSE(ImageReplayer::open("/dev/null", {}, &err));
  EXPECT_NE(err.message().find("regular"), std::string::npos) << err.message();
}

}  // namespace
}  // namespace dsvmi
