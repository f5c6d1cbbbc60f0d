// The engine's side of the gate: a CRoaring bitmap of the grains whose writes
// the engine needs, published into the shared file QEMU's reader maps.
//
//   std::unique_ptr<dsvmi::Gate> gate;
//   Status s = dsvmi::Gate::create("/dev/shm/vm1.gate", {.disk_size = 20_GiB}, &gate);
//   gate->set_bytes(0, 1 << 20);   // e.g. partition table + superblock
//   gate->publish();               // visible to QEMU's next should_pass()
//
// One Gate per file at a time (it holds an exclusive flock). Not thread safe:
// one engine thread owns it. publish() never blocks on the reader.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "dsvmi/grain.h"
#include "dsvmi/status.h"

struct roaring_bitmap_s;

namespace dsvmi {

enum class GateMode : uint32_t {
  kPassAll = 1,  // copy every write (full capture)
  kDropAll = 2,  // attached but silent
  kSet = 3,      // copy a write iff one of its grains is set (low overhead)
};

const char* gate_mode_name(GateMode mode);  // "pass-all", "drop-all", "set"
bool parse_gate_mode(std::string_view name, GateMode* mode);

struct GateOptions {
  uint64_t disk_size = 0;     // bytes
  uint32_t grain_size = 4096; // power of two in [512, 1 MiB]
  GateMode mode = GateMode::kSet;
};

// What the reader reports in shared memory. Written by QEMU: informational,
// never trusted for anything but display.
struct GateCounters {
  uint64_t writes_passed = 0;
  uint64_t bytes_passed = 0;
  uint64_t writes_dropped = 0;
  uint64_t bytes_dropped = 0;
  uint64_t fallbacks = 0;  // writes passed because the reader had no valid view
  uint64_t rejected = 0;   // published generations the reader refused
  uint64_t adoptions = 0;  // published generations the reader adopted
};

class Gate {
 public:
  // Creates the gate file (mode 0600; atomically replaces an existing one,
  // whose current readers keep the old file) and publishes generation 1: an
  // empty set in `options.mode`.
  static Status create(const std::string& path, const GateOptions& options,
                       std::unique_ptr<Gate>* gate);
  // Takes over an existing gate file: validates it and continues from its
  // published generation (bitmap and mode). Fails if another Gate holds it.
  static Status open(const std::string& path, std::unique_ptr<Gate>* gate);

  ~Gate();
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  uint64_t disk_size() const { return disk_size_; }
  uint32_t grain_shift() const { return grain_shift_; }
  uint32_t grain_size() const { return 1u << grain_shift_; }
  uint64_t grain_count() const { return grains_; }

  GateMode mode() const { return mode_; }
  void set_mode(GateMode mode) { mode_ = mode; }

  // Byte ranges are rounded out to whole grains; they must lie on the disk.
  Status set_bytes(uint64_t offset, uint64_t length);
  Status clear_bytes(uint64_t offset, uint64_t length);
  Status set_grains(GrainRange range);
  Status clear_grains(GrainRange range);
  bool grain_is_set(uint64_t grain) const;
  uint64_t set_grain_count() const;

  // Makes the current bitmap and mode the reader's next view: serializes into
  // a slot neither published nor named by the reader, then flips the
  // published word. Cost grows with the serialized size (bench_gate).
  Status publish();
  // Converts every container to its smallest form (run/array/bitset): smaller
  // buffers, cheaper publishes and adoptions. Worth calling after bulk
  // changes (e.g. a crawl), not before every publish.
  void optimize();
  uint64_t generation() const { return generation_; }
  uint64_t published_bytes() const { return published_bytes_; }

  GateCounters reader_counters() const;

 private:
  Gate() = default;
  Status check_range(GrainRange range) const;

  int fd_ = -1;
  uint8_t* base_ = nullptr;
  uint64_t map_len_ = 0;
  roaring_bitmap_s* bitmap_ = nullptr;
  GateMode mode_ = GateMode::kSet;
  uint64_t disk_size_ = 0;
  uint64_t grains_ = 0;
  uint32_t grain_shift_ = 12;
  uint32_t nslots_ = 0;
  uint64_t slot_capacity_ = 0;
  uint64_t generation_ = 0;
  uint32_t published_slot_ = UINT32_MAX;  // private copy: never read back
  uint64_t published_bytes_ = 0;
};

}  // namespace dsvmi
