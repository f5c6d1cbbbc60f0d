// Property tests: the reader's answers equal a std::vector<bool> model's for
// random set/clear/publish sequences and random queries, at 512 B and 4 KiB
// grains, with disk sizes that are not grain multiples.
#include <roaring/roaring.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "dsvmi/gate.h"
#include "dsvmi/gate_inspect.h"
#include "dsvmi/gate_writer.h"
#include "dsvmi/grain.h"
#include "gate_index.h"
#include "gate_test_util.h"

namespace dsvmi {
namespace {

using test::reference_should_pass;
using test::ScratchPath;

struct Shape {
  uint64_t disk_size;
  uint32_t grain;
};

class GateProperty : public ::testing::TestWithParam<Shape> {};

// Range lengths that matter: tiny, one grain, crossing one or several 64 Ki
// grain containers, the whole disk.
uint64_t random_length(std::mt19937_64& rng, uint64_t disk_size, uint32_t grain) {
  switch (rng() % 6) {
    case 0: return rng() % 8;                                  // 0..7 bytes
    case 1: return grain * (1 + rng() % 4);                    // a few grains
    case 2: return uint64_t{grain} * (rng() % (3 * 65536));    // up to 3 containers
    case 3: return rng() % (disk_size / 8 + 1);                // large
    case 4: return rng() % (131072 + 1);                       // a guest write
    default: return 1 + rng() % (4 * uint64_t{grain});
  }
}

uint64_t random_offset(std::mt19937_64& rng, uint64_t disk_size, uint32_t grain) {
  switch (rng() % 6) {
    case 0: return disk_size - 1 - rng() % (2 * uint64_t{grain});  // last grains
    case 1: return disk_size + rng() % 8192;                      // beyond the end
    case 2: {                                                     // near a container edge
      uint64_t edge = (rng() % (disk_size / (uint64_t{grain} * 65536) + 1)) * grain * 65536;
      uint64_t off = edge - std::min<uint64_t>(edge, rng() % (8 * uint64_t{grain}));
      return std::min(off, disk_size - 1);
    }
    default: return rng() % disk_size;
  }
}

TEST_P(GateProperty, ReaderMatchesVectorModel) {
  const Shape shape = GetParam();
  const uint32_t shift = static_cast<uint32_t>(__builtin_ctz(shape.grain));
  const uint64_t grains = (shape.disk_size + shape.grain - 1) >> shift;
  ScratchPath path("prop");
  std::unique_ptr<Gate> gate;
  ASSERT_TRUE(Gate::create(path.str(), {shape.disk_size, shape.grain, GateMode::kSet}, &gate))
      << "create";
  char err[256] = "";
  dsvmi_gate_reader_t* reader = dsvmi_gate_reader_open(path.c_str(), err, sizeof(err));
  ASSERT_NE(reader, nullptr) << err;

  std::mt19937_64 rng(shape.grain * 7919 + shape.disk_size);
  std::vector<bool> model(grains), published(grains);
  uint64_t queries = 0, passed = 0, bytes = 0;
  for (int round = 0; round < 300; round++) {
    // mutate: a few random set/clear ranges of random sizes
    int ops = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < ops; i++) {
      uint64_t first = rng() % grains;
      uint64_t count = std::min<uint64_t>(grains - first, random_length(rng, grains, 1) + 1);
      bool set = rng() % 3 != 0;
      Status s = set ? gate->set_grains({first, count}) : gate->clear_grains({first, count});
      ASSERT_TRUE(s) << s.message();
      std::fill(model.begin() + first, model.begin() + first + count, set);
    }
    if (rng() % 3 != 0) {
      ASSERT_TRUE(gate->publish());
      published = model;
    }
    for (int q = 0; q < 200; q++) {
      uint64_t offset = random_offset(rng, shape.disk_size, shape.grain);
      uint64_t length = random_length(rng, shape.disk_size, shape.grain);
      if (rng() % 50 == 0) length = UINT64_MAX - rng() % 4;  // wraps
      bool expect = reference_should_pass(published, shape.disk_size, shift, offset, length);
      bool got = dsvmi_gate_should_pass(reader, offset, length);
      ASSERT_EQ(got, expect) << "round " << round << " offset " << offset << " length "
                             << length;
      queries++;
      passed += got;
      bytes += length == 0 ? 1 : length;  // wraps harmlessly in both
    }
  }
  EXPECT_STREQ(dsvmi_gate_reader_error(reader), "");
  GateCounters c = gate->reader_counters();
  EXPECT_EQ(c.writes_passed + c.writes_dropped, queries);
  EXPECT_EQ(c.writes_passed, passed);
  EXPECT_EQ(c.bytes_passed + c.bytes_dropped, bytes);
  EXPECT_EQ(c.fallbacks, 0u);
  EXPECT_EQ(c.rejected, 0u);

  // The inspector counts the same grains as the model.
  GateSnapshot snap;
  ASSERT_TRUE(inspect_gate(path.str(), &snap));
  EXPECT_EQ(snap.set_grains,
            static_cast<uint64_t>(std::count(published.begin(), published.end(), true)));
  EXPECT_EQ(snap.generation, gate->generation());
  dsvmi_gate_reader_close(reader);
}

INSTANTIATE_TEST_SUITE_P(Shapes, GateProperty,
                         ::testing::Values(Shape{(3ull << 30) + 1234, 4096},
                                           Shape{(1ull << 30) + 777, 512},
                                           Shape{5 * 4096 + 1, 4096},
                                           Shape{(256ull << 20), 65536}),
                         [](const ::testing::TestParamInfo<Shape>& p) {
                           return "disk" + std::to_string(p.param.disk_size) + "_grain" +
                                  std::to_string(p.param.grain);
                         });

TEST(GateModes, PassAllAndDropAllIgnoreTheBitmap) {
  ScratchPath path("modes");
  std::unique_ptr<Gate> gate;
  ASSERT_TRUE(Gate::create(path.str(), {1ull << 30, 4096, GateMode::kPassAll}, &gate));
  dsvmi_gate_reader_t* reader = dsvmi_gate_reader_open(path.c_str(), nullptr, 0);
  ASSERT_NE(reader, nullptr);
  EXPECT_TRUE(dsvmi_gate_should_pass(reader, 4096 * 10, 4096));
  ASSERT_TRUE(gate->set_bytes(0, 4096));
  gate->set_mode(GateMode::kDropAll);
  ASSERT_TRUE(gate->publish());
  EXPECT_FALSE(dsvmi_gate_should_pass(reader, 0, 4096));
  EXPECT_FALSE(dsvmi_gate_should_pass(reader, 4096 * 10, 4096));
  gate->set_mode(GateMode::kSet);
  ASSERT_TRUE(gate->publish());
  EXPECT_TRUE(dsvmi_gate_should_pass(reader, 0, 4096));
  EXPECT_FALSE(dsvmi_gate_should_pass(reader, 4096 * 10, 4096));
  EXPECT_EQ(gate->reader_counters().fallbacks, 0u);
  dsvmi_gate_reader_close(reader);
}

// A writer that takes over the file continues from what was published.
TEST(GateReopen, OpenContinuesFromThePublishedGeneration) {
  ScratchPath path("reopen");
  std::vector<bool> model(262144);
  {
    std::unique_ptr<Gate> gate;
    ASSERT_TRUE(Gate::create(path.str(), {1ull << 30, 4096, GateMode::kSet}, &gate));
    std::mt19937_64 rng(5);
    for (int i = 0; i < 200; i++) {
      uint64_t first = rng() % 262144, count = 1 + rng() % 3000;
      count = std::min<uint64_t>(count, 262144 - first);
      ASSERT_TRUE(gate->set_grains({first, count}));
      std::fill(model.begin() + first, model.begin() + first + count, true);
    }
    ASSERT_TRUE(gate->publish());
    std::unique_ptr<Gate> second;
    Status busy = Gate::open(path.str(), &second);
    EXPECT_FALSE(busy);
    EXPECT_NE(busy.message().find("held by another writer"), std::string::npos) << busy.message();
  }
  std::unique_ptr<Gate> gate;
  ASSERT_TRUE(Gate::open(path.str(), &gate));
  EXPECT_EQ(gate->generation(), 2u);
  EXPECT_EQ(gate->mode(), GateMode::kSet);
  for (uint64_t g = 0; g < model.size(); g++) ASSERT_EQ(gate->grain_is_set(g), model[g]) << g;
}

// The reader's own frozen-format parser against libroaring's: for bitmaps
// holding every container type, the index answers like roaring_bitmap_contains
// and counts like roaring_bitmap_get_cardinality.
TEST(GateFrozenFormat, IndexAgreesWithLibroaring) {
  std::mt19937_64 rng(42);
  for (int trial = 0; trial < 40; trial++) {
    roaring_bitmap_t* r = roaring_bitmap_create();
    uint32_t nkeys = 1 + static_cast<uint32_t>(rng() % 12);
    for (uint32_t k = 0; k < nkeys; k++) {
      uint32_t base = k << 16;
      switch (rng() % 4) {
        case 0: break;  // empty
        case 1:         // sparse: an array
          for (int i = 0; i < 1 + static_cast<int>(rng() % 300); i++)
            roaring_bitmap_add(r, base + static_cast<uint32_t>(rng() % 65536));
          break;
        case 2:  // dense scatter: a bitset
          for (int i = 0; i < 9000; i++) roaring_bitmap_add(r, base + static_cast<uint32_t>(rng() % 65536));
          break;
        default:  // runs
          for (int i = 0; i < 1 + static_cast<int>(rng() % 20); i++) {
            uint32_t start = static_cast<uint32_t>(rng() % 65536);
            uint32_t len = static_cast<uint32_t>(rng() % 5000);
            roaring_bitmap_add_range(r, base + start, base + std::min<uint32_t>(65536, start + len + 1));
          }
      }
    }
    roaring_bitmap_run_optimize(r);
    size_t size = roaring_bitmap_frozen_size_in_bytes(r);
    char* buf = static_cast<char*>(std::aligned_alloc(32, (size + 31) & ~size_t{31}));
    roaring_bitmap_frozen_serialize(r, buf);
    std::vector<dsvmi_gate_container> table(nkeys);
    std::vector<uint8_t> scratch(5 * nkeys + 4);
    uint64_t card = 0;
    uint32_t containers = 0;
    char err[200];
    ASSERT_TRUE(dsvmi_gate_index_build(reinterpret_cast<uint8_t*>(buf), size, table.data(), nkeys,
                                       scratch.data(), &card, &containers, err, sizeof(err)))
        << err;
    EXPECT_EQ(card, roaring_bitmap_get_cardinality(r));
    const auto* u8 = reinterpret_cast<const uint8_t*>(buf);
    for (uint32_t g = 0; g < (nkeys << 16); g++) {
      ASSERT_EQ(dsvmi_gate_index_any(table.data(), u8, g, g), roaring_bitmap_contains(r, g))
          << "trial " << trial << " grain " << g;
    }
    for (int q = 0; q < 2000; q++) {
      uint32_t a = static_cast<uint32_t>(rng() % (nkeys << 16));
      uint32_t b = std::min<uint32_t>((nkeys << 16) - 1, a + static_cast<uint32_t>(rng() % 140000));
      bool expect = roaring_bitmap_range_cardinality(r, a, uint64_t{b} + 1) > 0;
      ASSERT_EQ(dsvmi_gate_index_any(table.data(), u8, a, b), expect) << a << ".." << b;
    }
    std::free(buf);
    roaring_bitmap_free(r);
  }
}

// Blocks of a file system at an unaligned partition offset cover exactly the
// grains their bytes fall in (brute force over the bytes is the oracle).
TEST(Grains, BlocksAtMisalignedPartitionOffsets) {
  for (uint32_t shift : {9u, 12u}) {
    for (uint64_t part : {0ull, 63ull * 512, 2048ull * 512, 63ull * 512 + 4096 * 7}) {
      for (uint32_t block : {1024u, 4096u}) {
        for (uint64_t first : {0ull, 1ull, 31ull, 32768ull}) {
          for (uint64_t count : {0ull, 1ull, 2ull, 17ull}) {
            GrainRange r = grains_for_blocks(part, block, first, count, shift);
            uint64_t lo = UINT64_MAX, hi = 0;
            for (uint64_t byte = part + first * block; byte < part + (first + count) * block; byte++) {
              lo = std::min(lo, byte >> shift);
              hi = std::max(hi, byte >> shift);
            }
            if (count == 0) {
              EXPECT_EQ(r.count, 0u);
            } else {
              EXPECT_EQ(r, (GrainRange{lo, hi - lo + 1}))
                  << "part " << part << " block " << block << " first " << first;
            }
          }
        }
      }
    }
  }
  // The classic case: 4 KiB blocks from sector 63 straddle two 4 KiB grains.
  EXPECT_EQ(grains_for_blocks(63 * 512, 4096, 0, 1, 12), (GrainRange{7, 2}));
}

TEST(GateCreate, RejectsBadGeometry) {
  ScratchPath path("geom");
  std::unique_ptr<Gate> gate;
  Status s = Gate::create(path.str(), {1ull << 30, 3000, GateMode::kSet}, &gate);
  EXPECT_NE(s.message().find("power of two"), std::string::npos) << s.message();
  s = Gate::create(path.str(), {(16ull << 40) + 4096, 4096, GateMode::kSet}, &gate);
  EXPECT_NE(s.message().find("2^32"), std::string::npos) << s.message();
  s = Gate::create(path.str(), {4ull << 40, 512, GateMode::kSet}, &gate);
  EXPECT_NE(s.message().find("2^32"), std::string::npos) << s.message();
  ASSERT_TRUE(Gate::create(path.str(), {1ull << 30, 4096, GateMode::kSet}, &gate));
  s = gate->set_bytes((1ull << 30) - 4096, 8192);
  EXPECT_NE(s.message().find("disk end"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace dsvmi
