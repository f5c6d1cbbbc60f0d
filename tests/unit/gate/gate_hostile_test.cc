// Hostile shared memory: whatever is scribbled into the gate, the reader
// answers "pass" (nothing lost) with a clear error and a counted fallback,
// and recovers at the next good generation; the writer never writes the slot
// the reader names, whatever it names. Run under ASan by scripts/test.sh.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dsvmi/gate.h"
#include "dsvmi/gate_inspect.h"
#include "dsvmi/gate_writer.h"
#include "gate_checksum.h"
#include "gate_index.h"
#include "gate_layout.h"
#include "gate_test_util.h"

namespace dsvmi {
namespace {

constexpr uint64_t kDisk = 1ull << 30;  // 4 containers of 4 KiB grains
constexpr uint64_t kSetGrain = 150;     // in the run container (key 0)
constexpr uint64_t kClearGrain = 5;

class GateHostile : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Gate::create(path_.str(), {kDisk, 4096, GateMode::kSet}, &gate_));
    ASSERT_TRUE(gate_->set_grains({100, 100}));                     // key 0: a run
    for (uint64_t g : {70000, 70005, 70100}) ASSERT_TRUE(gate_->set_grains({g, 1}));  // key 1: array
    for (uint64_t i = 0; i < 9000; i++) ASSERT_TRUE(gate_->set_grains({131072 + i * 7, 1}));  // key 2: bitset
    ASSERT_TRUE(gate_->publish());
    char err[256] = "";
    reader_ = dsvmi_gate_reader_open(path_.c_str(), err, sizeof(err));
    ASSERT_NE(reader_, nullptr) << err;
    int fd = open(path_.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    len_ = static_cast<size_t>(lseek(fd, 0, SEEK_END));
    map_ = static_cast<uint8_t*>(mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    close(fd);
    ASSERT_NE(map_, MAP_FAILED);
    ASSERT_TRUE(dsvmi_gate_should_pass(reader_, kSetGrain << 12, 4096));
    ASSERT_FALSE(dsvmi_gate_should_pass(reader_, kClearGrain << 12, 4096));
  }
  void TearDown() override {
    dsvmi_gate_reader_close(reader_);
    if (map_ && map_ != MAP_FAILED) munmap(map_, len_);
  }

  dsvmi_gate_header* hdr() { return reinterpret_cast<dsvmi_gate_header*>(map_); }
  uint32_t published_slot() { return static_cast<uint32_t>(hdr()->published & 0xff); }
  dsvmi_gate_slot_desc& desc() { return hdr()->slots[published_slot()]; }
  uint8_t* buffer() { return map_ + desc().offset; }
  // After changing buffer bytes: make the checksum right again, so that only
  // the structural checks stand between the scribble and the reader.
  void fix_checksum() {
    desc().checksum = dsvmi_gate_slot_checksum(buffer(), desc().size, desc().generation,
                                               desc().mode);
  }
  uint8_t* trailer_keys() { return buffer() + desc().size - 4 - 5 * 3; }  // 3 containers

  // Publishes a good generation, lets `scribble` corrupt it before the reader
  // looks, and checks the reader's refusal; then publishes again and checks
  // the recovery.
  void expect_refused(const std::function<void()>& scribble, const std::string& reason) {
    ASSERT_TRUE(gate_->publish());
    scribble();
    GateCounters before = gate_->reader_counters();
    EXPECT_TRUE(dsvmi_gate_should_pass(reader_, kClearGrain << 12, 4096)) << "fallback must pass";
    EXPECT_TRUE(dsvmi_gate_should_pass(reader_, kClearGrain << 12, 4096));
    GateCounters after = gate_->reader_counters();
    EXPECT_EQ(after.fallbacks, before.fallbacks + 2);
    EXPECT_EQ(after.rejected, before.rejected + 1) << "one refusal per generation, not per query";
    std::string error = dsvmi_gate_reader_error(reader_);
    EXPECT_NE(error.find(reason), std::string::npos) << "error: " << error;
    GateSnapshot snap;
    Status s = inspect_gate(path_.str(), &snap);  // may fail too (same checks), never crash
    if (s) {
      EXPECT_NE(snap.reader_error.find(reason), std::string::npos) << snap.reader_error;
    }

    ASSERT_TRUE(gate_->publish());  // a good generation again
    EXPECT_FALSE(dsvmi_gate_should_pass(reader_, kClearGrain << 12, 4096)) << "recovered";
    EXPECT_TRUE(dsvmi_gate_should_pass(reader_, kSetGrain << 12, 4096));
    EXPECT_TRUE(dsvmi_gate_should_pass(reader_, 70005ull << 12, 1));
    EXPECT_FALSE(dsvmi_gate_should_pass(reader_, 70006ull << 12, 1));
    EXPECT_TRUE(dsvmi_gate_should_pass(reader_, (131072ull + 7) << 12, 1));
    EXPECT_FALSE(dsvmi_gate_should_pass(reader_, (131072ull + 8) << 12, 1));
    EXPECT_EQ(gate_->reader_counters().fallbacks, after.fallbacks);
  }

  test::ScratchPath path_{"hostile"};
  std::unique_ptr<Gate> gate_;
  dsvmi_gate_reader_t* reader_ = nullptr;
  uint8_t* map_ = nullptr;
  size_t len_ = 0;
};

TEST_F(GateHostile, PublishedSlotOutOfRange) {
  expect_refused([&] { hdr()->published = (hdr()->published & ~0xffull) | 7; },
                 "published slot 7");
}

TEST_F(GateHostile, PublishedGenerationNotInTheSlot) {
  expect_refused([&] { hdr()->published += 5ull << 8; }, "holds generation");
}

TEST_F(GateHostile, DescriptorOffset) {
  expect_refused([&] { desc().offset += 4096; }, "buffer at");
}

TEST_F(GateHostile, DescriptorOffsetHuge) {
  expect_refused([&] { desc().offset = ~0ull - 100; }, "buffer at");
}

TEST_F(GateHostile, DescriptorSizeBeyondCapacity) {
  expect_refused([&] { desc().size = desc().capacity + 1; }, "-byte buffer");
}

TEST_F(GateHostile, DescriptorMode) {
  expect_refused([&] { desc().mode = 9; }, "unknown mode 9");
}

TEST_F(GateHostile, ModeFlipIsCaughtByTheChecksum) {
  expect_refused([&] { desc().mode = DSVMI_GATE_MODE_DROP_ALL; }, "checksum mismatch");
}

TEST_F(GateHostile, BufferByteFlipped) {
  expect_refused([&] { buffer()[8192 + 1] ^= 0x40; }, "checksum mismatch");
}

TEST_F(GateHostile, FrozenCookie) {
  expect_refused([&] { buffer()[desc().size - 4] ^= 1; fix_checksum(); }, "frozen cookie");
}

TEST_F(GateHostile, TooManyContainers) {
  expect_refused(
      [&] {
        uint32_t header = (60000u << 15) | DSVMI_FROZEN_COOKIE;
        std::memcpy(buffer() + desc().size - 4, &header, 4);
        fix_checksum();
      },
      "the disk has room for 4");
}

TEST_F(GateHostile, TrailerLongerThanBuffer) {
  expect_refused(
      [&] {
        uint32_t header = (4u << 15) | DSVMI_FROZEN_COOKIE;
        uint64_t size = 12;  // a 4-container trailer does not fit in 12 bytes
        std::memcpy(buffer() + size - 4, &header, 4);
        desc().size = size;
        fix_checksum();
      },
      "trailer");
}

TEST_F(GateHostile, UnknownTypeCode) {
  expect_refused([&] { buffer()[desc().size - 4 - 1] = 7; fix_checksum(); }, "unknown type code 7");
}

TEST_F(GateHostile, TypeCodeSwapChangesTheSizes) {
  // the array (container 1, 3 values = 6 bytes) read as 2 runs = 8 bytes
  expect_refused([&] { buffer()[desc().size - 4 - 3 + 1] = DSVMI_FROZEN_RUN; fix_checksum(); },
                 "describe");
}

TEST_F(GateHostile, BitsetReadAsAHugeArray) {
  // container 2 (a bitset, count 8999) as an array would be 9000 values long
  expect_refused([&] { buffer()[desc().size - 4 - 1] = DSVMI_FROZEN_ARRAY; fix_checksum(); },
                 "array of 9000 values");
}

TEST_F(GateHostile, KeyBeyondTheDisk) {
  expect_refused(
      [&] {
        uint16_t key = 100;
        std::memcpy(trailer_keys() + 4, &key, 2);
        fix_checksum();
      },
      "beyond the disk");
}

TEST_F(GateHostile, KeysOutOfOrder) {
  expect_refused(
      [&] {
        uint16_t key = 0;
        std::memcpy(trailer_keys() + 2, &key, 2);  // keys 0, 0, 2
        fix_checksum();
      },
      "not above the previous key");
}

TEST_F(GateHostile, ArrayNotSorted) {
  // zones: bitset (key 2) [0, 8192), run (key 0) [8192, 8196), array (key 1)
  expect_refused(
      [&] {
        uint16_t v = 65000;
        std::memcpy(buffer() + 8196, &v, 2);
        fix_checksum();
      },
      "array value");
}

TEST_F(GateHostile, RunPastContainerEnd) {
  expect_refused(
      [&] {
        uint16_t len = 65500;
        std::memcpy(buffer() + 8192 + 2, &len, 2);
        fix_checksum();
      },
      "passes the container end");
}

TEST_F(GateHostile, HeaderScribbledAfterOpenDoesNotMatterToAnOpenReader) {
  hdr()->magic = 0;
  hdr()->grain_shift = 40;
  hdr()->disk_size = ~0ull;
  ASSERT_TRUE(gate_->publish());
  EXPECT_TRUE(dsvmi_gate_should_pass(reader_, kSetGrain << 12, 4096));
  EXPECT_FALSE(dsvmi_gate_should_pass(reader_, kClearGrain << 12, 4096));
  char err[256] = "";
  EXPECT_EQ(dsvmi_gate_reader_open(path_.c_str(), err, sizeof(err)), nullptr);
  EXPECT_NE(std::string(err).find("bad magic"), std::string::npos) << err;
}

TEST_F(GateHostile, OpenRejectsBadHeaders) {
  struct Case {
    std::function<void(dsvmi_gate_header*)> scribble;
    const char* reason;
  };
  const Case cases[] = {
      {[](dsvmi_gate_header* h) { h->layout_version = 99; }, "layout version 99"},
      {[](dsvmi_gate_header* h) { h->grain_shift = 40; }, "grain shift 40"},
      {[](dsvmi_gate_header* h) { h->nslots = 200; }, "200 slots"},
      {[](dsvmi_gate_header* h) { h->slot_capacity = 64; }, "slot capacity 64"},
      {[](dsvmi_gate_header* h) { h->disk_size = 1ull << 60; }, "disk size"},
      {[](dsvmi_gate_header* h) { h->disk_size = 1ull << 45; h->grain_shift = 9; }, "more than 2^32"},
      {[](dsvmi_gate_header* h) { h->file_size += 4096; }, "file size field"},
      {[](dsvmi_gate_header* h) { h->roaring_version = 0x000300; }, "CRoaring 0.3.0"},
  };
  std::vector<uint8_t> saved(map_, map_ + 64);
  for (const Case& c : cases) {
    c.scribble(hdr());
    char err[256] = "";
    dsvmi_gate_reader_t* r = dsvmi_gate_reader_open(path_.c_str(), err, sizeof(err));
    EXPECT_EQ(r, nullptr) << c.reason;
    dsvmi_gate_reader_close(r);
    EXPECT_NE(std::string(err).find(c.reason), std::string::npos) << err;
    GateSnapshot snap;
    Status s = inspect_gate(path_.str(), &snap);
    EXPECT_NE(s.message().find(c.reason), std::string::npos) << s.message();
    std::memcpy(map_, saved.data(), saved.size());
  }
  // restored: the header is fine again, the refusal is now the fixture's reader
  char err[256] = "";
  dsvmi_gate_reader_t* r = dsvmi_gate_reader_open(path_.c_str(), err, sizeof(err));
  EXPECT_EQ(r, nullptr);
  EXPECT_NE(std::string(err).find("already has a reader"), std::string::npos) << err;
}

// reader_view protects one slot, so a gate has one reader at a time; the lock
// goes with the reader's fd (also when QEMU dies).
TEST_F(GateHostile, OneReaderAtATime) {
  char err[256] = "";
  EXPECT_EQ(dsvmi_gate_reader_open(path_.c_str(), err, sizeof(err)), nullptr);
  EXPECT_NE(std::string(err).find("already has a reader"), std::string::npos) << err;
  dsvmi_gate_reader_close(reader_);
  reader_ = dsvmi_gate_reader_open(path_.c_str(), err, sizeof(err));
  ASSERT_NE(reader_, nullptr) << err;
  EXPECT_TRUE(dsvmi_gate_should_pass(reader_, kSetGrain << 12, 4096));
  // the writer's flock does not block the reader, nor the reader a writer
  std::unique_ptr<Gate> other;
  Status s = Gate::open(path_.str(), &other);
  EXPECT_NE(s.message().find("held by another writer"), std::string::npos) << s.message();
}

// The engine does not trust the reader's word either: whatever slot it names,
// even nonsense, publishing goes on and never writes that slot.
TEST_F(GateHostile, WriterNeverWritesTheSlotTheReaderNames) {
  for (uint64_t view : {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{0xdeadbeef},
                        uint64_t{DSVMI_GATE_VIEW_NONE}, uint64_t{0x7ff} << 8}) {
    for (uint64_t round = 0; round < 6; round++) {
      hdr()->reader_view = view == DSVMI_GATE_VIEW_NONE ? view : view | (round << 8);
      uint32_t named = static_cast<uint32_t>(hdr()->reader_view & 0xff);
      uint32_t before_pub = published_slot();
      std::vector<uint8_t> named_bytes, named_desc;
      if (named < 3) {
        const auto& d = hdr()->slots[named];
        named_desc.assign(reinterpret_cast<const uint8_t*>(&d),
                          reinterpret_cast<const uint8_t*>(&d) + sizeof(d));
        named_bytes.assign(map_ + 4096 + named * d.capacity,
                           map_ + 4096 + named * d.capacity + 16384);
      }
      ASSERT_TRUE(gate_->set_grains({1000 + round * 3, 2}));
      ASSERT_TRUE(gate_->publish());
      EXPECT_NE(published_slot(), before_pub);
      if (named < 3) {
        EXPECT_NE(published_slot(), named);
        const auto& d = hdr()->slots[named];
        EXPECT_EQ(0, std::memcmp(named_desc.data(), &d, sizeof(d)));
        EXPECT_EQ(0, std::memcmp(named_bytes.data(), map_ + 4096 + named * d.capacity, 16384));
      }
    }
  }
}

// Counters are reader-owned: scribbling them changes nothing but what is shown.
TEST_F(GateHostile, CountersScribbledAreRewrittenFromPrivateCounts) {
  hdr()->writes_passed = 123456789;
  EXPECT_TRUE(dsvmi_gate_should_pass(reader_, kSetGrain << 12, 4096));
  EXPECT_EQ(gate_->reader_counters().writes_passed, 2u);  // SetUp's pass + this one
}

}  // namespace
}  // namespace dsvmi
