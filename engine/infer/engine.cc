// InferenceEngine: routes verified frames to the live drivers (fs_driver.h)
// of the file systems they touch.
#include <roaring/roaring.h>

#include <algorithm>
#include <cstring>

#include "dsvmi/gate_writer.h"
#include "dsvmi/glob.h"
#include "dsvmi/inference.h"
#include "dsvmi/partition.h"
#include "dsvmi/policy.h"
#include "fs_driver.h"

namespace dsvmi {
namespace {

class Engine : public InferenceEngine {
 public:
  Status init(const Index& index, DiskReader& disk, EventSink& sink, const InferenceOptions& options) {
    ctx_.options = options;
    ctx_.sink = &sink;
    PartitionTable table;
    if (!read_partition_table(disk, &table)) table.partitions.clear();
    std::string not_followed;
    for (const FsIndex& fs : index.filesystems()) {
      // The index also holds file systems that are crawled but have no live
      // driver (fs_driver.h; FAT, NTFS: docs/fat.md, docs/ntfs.md); the
      // others are watched without them, gated from the crawl index.
      std::string why;
      std::unique_ptr<infer::FsDriver> e =
          infer::make_fs_driver(ctx_, fs, disk, partition_number(fs, table), &why);
      if (e == nullptr) {
        not_followed.append(" ").append(fs.info().type);
        crawl_only_.push_back(&fs);
        continue;
      }
      Status s = e->init();
      if (!s) return s;
      fss_.push_back(std::move(e));
    }
    if (fss_.empty())
      return Status::error(not_followed.empty() ? "inference: the index holds no file system"
                                                : "inference: no file system it can follow live (the index holds" +
                                                      not_followed + ")");
    return Status::ok();
  }

  Status feed(const FrameView& f) override {
    ctx_.stats.frames++;
    if (have_seq_ && f.kind != FrameKind::kLost && f.seq != next_seq_) {
      // Frames vanished without a Lost record: the gap's range is unknown.
      ctx_.stats.seq_gaps++;
      FrameView lost = f;
      lost.lost_frames = f.seq > next_seq_ ? f.seq - next_seq_ : 0;
      for (auto& fs : fss_) fs->lost(lost, fs->first_byte(), 0);
    }
    have_seq_ = true;
    next_seq_ = f.seq + 1;
    switch (f.kind) {
      case FrameKind::kWrite:
        if (f.payload == nullptr || f.payload_len != f.length) {
          ctx_.stats.bad_frames++;
          return Status::ok();
        }
        ctx_.stats.writes++;
        ctx_.stats.write_bytes += f.length;
        route(f, f.payload, false);
        break;
      case FrameKind::kWriteZeroes:
        route(f, nullptr, false);
        break;
      case FrameKind::kDiscard:
        route(f, nullptr, true);
        break;
      case FrameKind::kFlush:
        ctx_.stats.flushes++;
        for (auto& fs : fss_) fs->flush(f);
        break;
      case FrameKind::kLost:
        ctx_.stats.lost_records++;
        ctx_.stats.lost_frames += f.lost_frames;
        for (auto& fs : fss_) {
          uint64_t a = std::max(f.offset, fs->first_byte());
          uint64_t end = f.offset + std::min<uint64_t>(f.length, UINT64_MAX - f.offset);
          uint64_t b = std::min(end, fs->end_byte());
          if (a < b) fs->lost(f, a, b - a);
        }
        break;
    }
    ctx_.sink->flush();
    return Status::ok();
  }

  Status feed_bytes(std::span<const std::byte> frame) override {
    // DecodeFrame wants 8-byte aligned memory; trace records are.
    FrameView v;
    std::string err;
    const auto* p = reinterpret_cast<const uint8_t*>(frame.data());
    if (reinterpret_cast<uintptr_t>(p) % 8 != 0) {
      aligned_.assign((frame.size() + 7) / 8, 0);
      std::memcpy(aligned_.data(), p, frame.size());
      p = reinterpret_cast<const uint8_t*>(aligned_.data());
    }
    if (!DecodeFrame(p, frame.size(), &v, &err)) {
      ctx_.stats.bad_frames++;
      return Status::ok();
    }
    return feed(v);
  }

  Status finish() override {
    for (auto& fs : fss_) fs->finish();
    ctx_.sink->flush();
    return Status::ok();
  }

  uint64_t idle(uint64_t now_ns) override {
    uint64_t next = UINT64_MAX;
    for (auto& fs : fss_) next = std::min(next, fs->idle(now_ns));
    ctx_.sink->flush();
    return next;
  }

  void dump_state(std::string* out) override {
    std::vector<std::string> lines;
    for (auto& fs : fss_) fs->dump_state(&lines);
    std::sort(lines.begin(), lines.end());
    for (const std::string& l : lines) {
      out->append(l);
      out->push_back('\n');
    }
  }

  const InferenceStats& stats() const override { return ctx_.stats; }

  Status set_policy(const GatePolicy& policy, PolicyApplyResult* result) override {
    PolicyApplyResult local;
    PolicyApplyResult* r = result ? result : &local;
    *r = {};
    // Everything that can fail about the policy itself, before any change.
    std::vector<Glob> globs;
    if (policy.kind == GatePolicyKind::MetadataAndGlobs) {
      if (policy.globs.empty()) return Status::error("policy: glob policy without globs");
      for (const std::string& p : policy.globs) {
        Glob g;
        Status s = Glob::compile(p, &g);
        if (!s) return Status::error("policy: glob '" + p + "': " + s.message());
        globs.push_back(std::move(g));
      }
    }
    ctx_.options.policy = policy;
    for (auto& fs : fss_) fs->set_globs(globs);
    ctx_.stats.policy_changes++;
    Gate* gate = ctx_.options.gate;
    if (gate == nullptr) return Status::ok();
    r->gate = true;
    // One new generation: the whole grain set recomputed (metadata always,
    // data of exactly the watched files), the mode, one publish.
    Status s = gate->clear_grains(GrainRange{0, gate->grain_count()});
    for (auto& fs : fss_) {
      if (!s) break;
      s = fs->add_gate_grains(*gate, r);
    }
    // File systems crawled but not followed live keep what the crawl index
    // says they need (their metadata, the matching files' data).
    for (const FsIndex* fs : crawl_only_) {
      if (!s) break;
      roaring_bitmap_t* grains = roaring_bitmap_create();
      GatePolicyStats st;
      s = build_fs_gate_grains(*fs, policy, gate->grain_size(), grains, &st);
      roaring_uint32_iterator_t* it = roaring_create_iterator(grains);
      while (s && it->has_value) {
        const uint32_t first = it->current_value;
        uint32_t last = first;
        while (roaring_advance_uint32_iterator(it) && it->current_value == last + 1) ++last;
        s = gate->set_grains({first, uint64_t(last) - first + 1});
      }
      roaring_free_uint32_iterator(it);
      roaring_bitmap_free(grains);
    }
    if (!s) return Status::error("policy: gate: " + s.message());
    gate->set_mode(policy.kind == GatePolicyKind::PassAll ? GateMode::kPassAll : GateMode::kSet);
    gate->optimize();
    if (!(s = gate->publish())) return Status::error("policy: gate publish: " + s.message());
    ctx_.stats.gate_updates++;
    r->gate_pass_all = policy.kind == GatePolicyKind::PassAll;
    r->gate_grains = gate->set_grain_count();
    return Status::ok();
  }

  const GatePolicy& policy() const override { return ctx_.options.policy; }

  void set_pending_limits(uint64_t ttl_ns, uint64_t max_bytes) override {
    ctx_.options.pending_ttl_ns = ttl_ns;
    ctx_.options.pending_max_bytes = max_bytes;
  }

  void take_interval_latency(LatencyHistogram* out) override {
    *out = ctx_.interval_latency;
    ctx_.interval_latency.clear();
  }

 private:
  // The index records where a file system starts, not its partition
  // number: the partition table says (0 = no table, the whole disk).
  static uint32_t partition_number(const FsIndex& fs, const PartitionTable& table) {
    for (const Partition& p : table.partitions) {
      if (p.offset == fs.info().partition_offset) return p.number;
    }
    return 0;
  }

  void route(const FrameView& f, const uint8_t* data, bool discard) {
    if (f.length == 0 || f.offset + f.length < f.offset) return;
    for (auto& fs : fss_) {
      uint64_t a = std::max(f.offset, fs->first_byte());
      uint64_t b = std::min(f.offset + f.length, fs->end_byte());
      if (a >= b) continue;
      fs->write(f, a, b - a, data ? data + (a - f.offset) : nullptr, discard);
    }
  }

  infer::EngineContext ctx_;
  std::vector<std::unique_ptr<infer::FsDriver>> fss_;
  std::vector<const FsIndex*> crawl_only_;  // in the index, not followed live (docs/fat.md)
  bool have_seq_ = false;
  uint64_t next_seq_ = 0;
  std::vector<uint64_t> aligned_;
};

}  // namespace

std::unique_ptr<InferenceEngine> InferenceEngine::create(const Index& index, DiskReader& disk, EventSink& sink,
                                                         const InferenceOptions& options, Status* error) {
  auto e = std::make_unique<Engine>();
  Status s = e->init(index, disk, sink, options);
  if (!s) {
    *error = s;
    return nullptr;
  }
  return e;
}

}  // namespace dsvmi
