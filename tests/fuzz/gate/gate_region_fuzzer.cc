// libFuzzer target: the gate's shared region is hostile. Inputs either are the
// whole region (raw) or scribble over a valid region between queries, with an
// op that repairs the checksum so that the frozen-format parser is reached.
// Oracles: the reader never crashes, hangs or leaks (ASan/UBSan); whenever
// the reader's parser accepts a buffer, libroaring's frozen_view accepts it
// too and answers the same for sampled grains.
#include <roaring/roaring.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "dsvmi/gate.h"
#include "dsvmi/gate_writer.h"
#include "gate_checksum.h"
#include "gate_index.h"
#include "gate_layout.h"
#include "gate_reader_internal.h"

namespace {

std::vector<uint8_t>* g_template;

// A valid gate (256 MiB disk, 512-byte grains: 8 containers) holding a run,
// arrays and a bitset, read back into memory.
void make_template() {
  std::string path = "/dev/shm/dsvmi-gate-fuzz-" + std::to_string(getpid());
  std::unique_ptr<dsvmi::Gate> gate;
  if (!dsvmi::Gate::create(path, {256ull << 20, 512, dsvmi::GateMode::kSet}, &gate)) std::abort();
  (void)gate->set_grains({100, 5000});                                      // run
  for (uint64_t g = 70000; g < 72000; g += 37) (void)gate->set_grains({g, 1});  // array
  for (uint64_t g = 131072; g < 131072 + 60000; g += 7) (void)gate->set_grains({g, 1});  // bitset
  (void)gate->set_grains({(7ull << 16) + 65000, 536});                      // run at the end
  if (!gate->publish()) std::abort();
  std::ifstream in(path, std::ios::binary);
  g_template = new std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
  unlink(path.c_str());
}

struct Cursor {
  const uint8_t* p;
  size_t n;
  template <typename T>
  bool take(T* out) {
    if (n < sizeof(T)) return false;
    std::memcpy(out, p, sizeof(T));
    p += sizeof(T);
    n -= sizeof(T);
    return true;
  }
};

// The parser may be stricter than libroaring, never laxer.
void cross_check(const uint8_t* slot_bytes, uint64_t size, uint32_t nkeys) {
  std::vector<dsvmi_gate_container> table(nkeys);
  std::vector<uint8_t> scratch(5 * nkeys + 4);
  char err[200];
  if (size > 1u << 20) return;
  uint8_t* copy = static_cast<uint8_t*>(std::aligned_alloc(32, (size + 31) & ~uint64_t{31}));
  if (size) std::memcpy(copy, slot_bytes, size);
  if (dsvmi_gate_index_build(copy, size, table.data(), nkeys, scratch.data(), nullptr, nullptr,
                             err, sizeof(err))) {
    const roaring_bitmap_t* view = roaring_bitmap_frozen_view(reinterpret_cast<char*>(copy), size);
    if (!view) {
      std::fprintf(stderr, "parser accepted a buffer libroaring refuses\n");
      std::abort();
    }
    for (uint32_t g = 0; g < (nkeys << 16); g += 997) {
      if (dsvmi_gate_index_any(table.data(), copy, g, g) != roaring_bitmap_contains(view, g)) {
        std::fprintf(stderr, "parser and libroaring disagree at %u\n", g);
        std::abort();
      }
    }
    roaring_bitmap_free(view);
  }
  std::free(copy);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!g_template) make_template();
  if (size < 1) return 0;
  Cursor in{data + 1, size - 1};
  std::vector<uint8_t> region;
  if (data[0] & 1) {
    region.assign(in.p, in.p + in.n);  // raw: the input is the region
    in.n = 0;
  } else {
    region = *g_template;
  }
  // page-aligned private copy, as an mmap would be
  size_t len = region.size();
  uint8_t* mem = static_cast<uint8_t*>(std::aligned_alloc(4096, (len + 4095) & ~size_t{4095}));
  if (len) std::memcpy(mem, region.data(), len);
  char err[256];
  dsvmi_gate_reader_t* r = dsvmi_gate_reader_attach(mem, len, err, sizeof(err));
  if (!r) {
    std::free(mem);
    return 0;
  }
  auto* h = reinterpret_cast<dsvmi_gate_header*>(mem);
  // the geometry as validated at attach time (the header may be scribbled later)
  dsvmi_gate_geometry geo;
  if (!dsvmi_gate_check_header(mem, len, &geo, err, sizeof(err))) std::abort();
  const uint32_t nkeys = geo.nkeys;
  uint8_t op;
  int steps = 0;
  while (in.take(&op) && steps++ < 64) {
    switch (op % 4) {
      case 0: {  // scribble bytes
        uint32_t off;
        uint64_t val;
        if (!in.take(&off) || !in.take(&val)) break;
        off %= static_cast<uint32_t>(len);
        std::memcpy(mem + off, &val, std::min<size_t>(8, len - off));
        break;
      }
      case 1: {  // repair the published slot's checksum
        uint64_t pub = h->published;
        uint32_t slot = pub & 0xff;
        if (slot >= geo.nslots) break;
        dsvmi_gate_slot_desc& d = h->slots[slot];
        uint64_t off = dsvmi_gate_slot_offset(&geo, slot);
        if (d.size > geo.slot_capacity) break;
        d.checksum = dsvmi_gate_slot_checksum(mem + off, d.size, d.generation, d.mode);
        cross_check(mem + off, d.size, nkeys);
        break;
      }
      case 2: {  // republish: bump the generation (descriptor too, sometimes)
        uint8_t which;
        if (!in.take(&which)) break;
        uint32_t slot = h->published & 0xff;
        uint64_t gen = (h->published >> 8) + 1;
        h->published = gen << 8 | (which & 0x80 ? which & 7 : slot);
        if (slot < geo.nslots && (which & 1)) h->slots[slot].generation = gen;
        break;
      }
      default: {  // query
        uint64_t offset, length;
        if (!in.take(&offset) || !in.take(&length)) break;
        if (op & 0x80) offset %= geo.disk_size + 1, length %= 1 << 20;
        (void)dsvmi_gate_should_pass(r, offset, length);
      }
    }
  }
  (void)dsvmi_gate_should_pass(r, 0, 4096);
  (void)dsvmi_gate_reader_error(r);
  dsvmi_gate_reader_close(r);
  std::free(mem);
  return 0;
}
