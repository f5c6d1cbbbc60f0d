// The trace container: what goes in comes out, byte for byte and in order
// (the oracle is the list of frames the test appended), and every damaged
// file gives an error naming the problem instead of a crash or a wrong frame.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "dsvmi/trace.h"

namespace dsvmi {
namespace {

using Bytes = std::vector<std::byte>;

Bytes random_frame(std::mt19937_64& rng, size_t max_len) {
  Bytes f(1 + rng() % max_len);
  for (auto& b : f) b = std::byte(rng() & 0xff);
  return f;
}

class TraceFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() /
            ("dsvmi_trace_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { std::filesystem::remove(path_); }

  void write_trace(const std::vector<Bytes>& frames) {
    Status st;
    auto w = TraceWriter::create(path_, &st);
    ASSERT_TRUE(w) << st.message();
    for (const auto& f : frames) ASSERT_TRUE(w->append(f));
    ASSERT_TRUE(w->close());
  }

  Bytes file_bytes() {
    std::ifstream in(path_, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(in)), {});
    Bytes b(c.size());
    std::memcpy(b.data(), c.data(), c.size());
    return b;
  }

  // Reads every frame; returns the frames and the final status.
  static std::pair<std::vector<Bytes>, TraceReader::Next> read_all(TraceReader& r, Status* err) {
    std::vector<Bytes> out;
    std::span<const std::byte> f;
    TraceReader::Next n;
    while ((n = r.next(&f, err)) == TraceReader::Next::kFrame) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(f.data()) % 8, 0u) << "frames must be 8-aligned";
      out.emplace_back(f.begin(), f.end());
    }
    return {out, n};
  }

  std::filesystem::path path_;
};

TEST_F(TraceFileTest, RoundTripKeepsEveryFrameInOrder) {
  std::mt19937_64 rng(42);
  std::vector<Bytes> frames;
  for (int i = 0; i < 2000; ++i) frames.push_back(random_frame(rng, i % 50 == 0 ? 300000 : 700));
  write_trace(frames);

  Status err;
  auto r = TraceReader::open(path_, &err);
  ASSERT_TRUE(r) << err.message();
  auto [got, end] = read_all(*r, &err);
  EXPECT_EQ(end, TraceReader::Next::kEnd) << err.message();
  ASSERT_EQ(got.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) ASSERT_EQ(got[i], frames[i]) << "frame " << i;
  EXPECT_EQ(r->frames_read(), frames.size());
  // kEnd is sticky.
  std::span<const std::byte> f;
  EXPECT_EQ(r->next(&f, &err), TraceReader::Next::kEnd);
}

TEST_F(TraceFileTest, EmptyTraceHasNoFrames) {
  write_trace({});
  Status err;
  auto r = TraceReader::open(path_, &err);
  ASSERT_TRUE(r) << err.message();
  std::span<const std::byte> f;
  EXPECT_EQ(r->next(&f, &err), TraceReader::Next::kEnd);
}

TEST_F(TraceFileTest, WriterRejectsEmptyAndOversizedFrames) {
  Status st;
  auto w = TraceWriter::create(path_, &st);
  ASSERT_TRUE(w);
  EXPECT_FALSE(w->append({}));
  Bytes big(kTraceMaxFrameBytes + 1);
  EXPECT_FALSE(w->append(big));
  EXPECT_EQ(w->records(), 0u);
}

TEST_F(TraceFileTest, EveryTruncationIsReportedOrEndsAtARecordBoundary) {
  std::mt19937_64 rng(7);
  std::vector<Bytes> frames;
  for (int i = 0; i < 12; ++i) frames.push_back(random_frame(rng, 40));
  write_trace(frames);
  const Bytes whole = file_bytes();
  // Record boundaries: where a cut leaves only whole records.
  std::vector<size_t> boundaries{kTraceHeaderBytes};
  for (const auto& f : frames)
    boundaries.push_back(boundaries.back() + kTraceRecordHeaderBytes + (f.size() + 7) / 8 * 8);
  ASSERT_EQ(boundaries.back(), whole.size());

  for (size_t cut = 0; cut < whole.size(); ++cut) {
    Status err;
    auto r = TraceReader::from_bytes(std::span(whole).first(cut), &err);
    if (cut < kTraceHeaderBytes) {
      EXPECT_FALSE(r) << "cut " << cut;
      EXPECT_NE(err.message().find("header"), std::string::npos) << err.message();
      continue;
    }
    ASSERT_TRUE(r) << "cut " << cut << ": " << err.message();
    auto [got, end] = read_all(*r, &err);
    auto it = std::find(boundaries.begin(), boundaries.end(), cut);
    if (it != boundaries.end()) {
      EXPECT_EQ(end, TraceReader::Next::kEnd) << "cut " << cut << ": " << err.message();
      EXPECT_EQ(got.size(), static_cast<size_t>(it - boundaries.begin()));
    } else {
      EXPECT_EQ(end, TraceReader::Next::kError) << "cut " << cut;
      EXPECT_NE(err.message().find("truncated"), std::string::npos) << err.message();
    }
    // Whatever was returned is a prefix of what was written.
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], frames[i]) << "cut " << cut;
  }
}

TEST_F(TraceFileTest, EveryFlippedBitInARecordIsDetected) {
  std::mt19937_64 rng(9);
  std::vector<Bytes> frames{random_frame(rng, 24), random_frame(rng, 24)};
  frames[0].resize(24);  // no padding: every byte of record 0 matters
  write_trace(frames);
  const Bytes whole = file_bytes();
  const size_t rec0_end = kTraceHeaderBytes + kTraceRecordHeaderBytes + 24;
  for (size_t byte = kTraceHeaderBytes; byte < rec0_end; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes bad = whole;
      bad[byte] ^= std::byte(1 << bit);
      Status err;
      auto r = TraceReader::from_bytes(bad, &err);
      ASSERT_TRUE(r);
      auto [got, end] = read_all(*r, &err);
      EXPECT_EQ(end, TraceReader::Next::kError) << "byte " << byte << " bit " << bit;
      EXPECT_TRUE(got.empty()) << "a corrupted record was returned (byte " << byte << ")";
      EXPECT_FALSE(err.message().empty());
    }
  }
}

TEST_F(TraceFileTest, BadHeadersAreRejectedByName) {
  write_trace({Bytes{std::byte{1}}});
  const Bytes whole = file_bytes();
  struct Case {
    size_t offset;
    uint8_t value;
    const char* expect;
  } cases[] = {{0, 'X', "magic"}, {8, 2, "version"}, {12, 7, "header size"}, {13, 0xff, "header size"}};
  for (const auto& c : cases) {
    Bytes bad = whole;
    bad[c.offset] = std::byte(c.value);
    Status err;
    EXPECT_FALSE(TraceReader::from_bytes(bad, &err));
    EXPECT_NE(err.message().find(c.expect), std::string::npos) << err.message();
  }
}

TEST_F(TraceFileTest, HugeAnnouncedLengthIsRejectedBeforeAllocating) {
  write_trace({Bytes(16, std::byte{3})});
  Bytes bad = file_bytes();
  for (int i = 0; i < 4; ++i) bad[kTraceHeaderBytes + i] = std::byte{0xff};  // length 4 GiB-1
  Status err;
  auto r = TraceReader::from_bytes(bad, &err);
  ASSERT_TRUE(r);
  std::span<const std::byte> f;
  EXPECT_EQ(r->next(&f, &err), TraceReader::Next::kError);
  EXPECT_NE(err.message().find("outside"), std::string::npos) << err.message();
}

TEST_F(TraceFileTest, MissingFileIsAnError) {
  Status err;
  EXPECT_FALSE(TraceReader::open(path_.string() + ".absent", &err));
  EXPECT_NE(err.message().find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace dsvmi
