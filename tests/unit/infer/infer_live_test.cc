// The live engine's contract (docs/events.md, "Engine records"): policy
// changes applied without a restart (gate recomputed from the model, checked
// against debugfs), the latency histogram, drain-on-stop of `dsvmi run --ring`
// with a producer in this process, and inodes the crawl index knows without
// their generation (re-attach) not reported as reused.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>

#include <filesystem>
#include <regex>
#include <thread>

#include "dsvmi/crawl.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/gate_writer.h"
#include "dsvmi/index.h"
#include "dsvmi/inference.h"
#include "dsvmi/latency.h"
#include "dsvmi/ring.h"
#include "dsvmi/ring_inspect.h"
#include "infer_oracle.h"

extern char** environ;

namespace dsvmi::testing {
namespace {

namespace fs = std::filesystem;

// debugfs's list of the fs blocks of an inode (data, extent nodes).
std::set<uint64_t> debugfs_blocks(const std::string& image, uint64_t ino) {
  std::string out = run("debugfs -R " + quote("blocks <" + std::to_string(ino) + ">") + " " + quote(image) + " 2>/dev/null");
  std::set<uint64_t> r;
  std::istringstream in(out);
  uint64_t b;
  while (in >> b) r.insert(b);
  return r;
}

// Inode tables and bitmaps from debugfs's `stats` (group layout:
// "Group  0: block bitmap at 5, inode bitmap at 21, inode table at 37").
std::set<uint64_t> debugfs_group_metadata(const std::string& image) {
  std::string out = run("debugfs -R stats " + quote(image) + " 2>/dev/null");
  std::set<uint64_t> r;
  std::smatch m;
  uint64_t table_blocks = 0;
  if (std::regex_search(out, m, std::regex(R"(Inode blocks per group:\s+(\d+))"))) table_blocks = std::stoull(m[1]);
  EXPECT_GT(table_blocks, 0u) << out;
  std::regex group(R"(block bitmap at (\d+), inode bitmap at (\d+), inode table at (\d+))");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), group); it != std::sregex_iterator(); ++it) {
    r.insert(std::stoull((*it)[1]));
    r.insert(std::stoull((*it)[2]));
    for (uint64_t b = std::stoull((*it)[3]), k = 0; k < table_blocks; k++) r.insert(b + k);
  }
  return r;
}

// Blocks debugfs's icheck attributes to an inode: block -> inode (absent
// when "<block not found>").
std::map<uint64_t, uint64_t> debugfs_icheck(const std::string& image, const std::set<uint64_t>& blocks,
                                            const std::string& dir) {
  std::map<uint64_t, uint64_t> r;
  std::string cmds;
  std::vector<uint64_t> list(blocks.begin(), blocks.end());
  for (size_t i = 0; i < list.size(); i += 200) {
    cmds += "icheck";
    for (size_t k = i; k < std::min(list.size(), i + 200); k++) cmds += " " + std::to_string(list[k]);
    cmds += "\n";
  }
  write_file(dir + "/icheck.cmds", cmds);
  std::string out = run("debugfs -f " + quote(dir + "/icheck.cmds") + " " + quote(image) + " 2>/dev/null");
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    uint64_t b, ino;
    if (l >> b >> ino) r[b] = ino;
  }
  return r;
}

std::string describe(const std::vector<Event>& events) {
  std::string s;
  for (const Event& e : events) {
    std::string line;
    Event c = e;
    c.data.clear();
    event_to_json(c, &line);
    s += line + "\n";
  }
  return s;
}

// ---------------------------------------------------------------------------
// Latency histogram

TEST(LatencyHistogram, EmptyIsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(0.5), 0u);
  EXPECT_EQ(h.percentile(0.99), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 10; v++) h.record(v);  // 1..10
  EXPECT_EQ(h.count(), 10u);
  EXPECT_EQ(h.max(), 10u);
  EXPECT_EQ(h.percentile(0.5), 5u);   // rank 5
  EXPECT_EQ(h.percentile(0.99), 10u); // rank ceil(9.9) = 10
  EXPECT_EQ(h.percentile(0.1), 1u);
  EXPECT_EQ(h.percentile(1.0), 10u);
}

TEST(LatencyHistogram, BucketsBoundTheRelativeError) {
  // Every value lands in a bucket whose upper bound is >= it and < it * 1.0625.
  for (uint64_t v : std::vector<uint64_t>{16, 17, 31, 32, 1000, 4095, 4096, 123456789, uint64_t{1} << 40,
                                         (uint64_t{1} << 63) + 12345, UINT64_MAX}) {
    int b = LatencyHistogram::bucket_of(v);
    ASSERT_GE(b, 0);
    ASSERT_LT(b, LatencyHistogram::kBuckets);
    uint64_t hi = LatencyHistogram::bucket_upper(b);
    EXPECT_GE(hi, v) << v;
    EXPECT_LE(static_cast<long double>(hi), static_cast<long double>(v) * 1.0625L) << v;
    if (b > 0) {
      EXPECT_LT(LatencyHistogram::bucket_upper(b - 1), v) << v;
    }
  }
  // Buckets are contiguous and increasing.
  for (int b = 1; b < LatencyHistogram::kBuckets; b++)
    ASSERT_EQ(LatencyHistogram::bucket_of(LatencyHistogram::bucket_upper(b - 1) + 1), b) << b;
}

TEST(LatencyHistogram, PercentilesOfAKnownDistribution) {
  // 1000 values: 990 of 100 us, 10 of 50000 us. p50 = 100 (bucket bound
  // 103: [96, 104) / ... within 6.25 %), p99 = rank 990 -> still 100-ish,
  // p99.5 -> 50000-ish, max exact.
  LatencyHistogram h;
  for (int i = 0; i < 990; i++) h.record(100);
  for (int i = 0; i < 10; i++) h.record(50000);
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_GE(h.percentile(0.5), 100u);
  EXPECT_LT(h.percentile(0.5), 107u);
  EXPECT_GE(h.percentile(0.99), 100u);
  EXPECT_LT(h.percentile(0.99), 107u);
  EXPECT_EQ(h.percentile(0.995), 50000u);  // bucket bound clamped to the max
  EXPECT_EQ(h.max(), 50000u);
  LatencyHistogram g;
  g.record(7);
  g.merge(h);
  EXPECT_EQ(g.count(), 1001u);
  EXPECT_EQ(g.max(), 50000u);
  EXPECT_EQ(g.percentile(0.0001), 7u);
  g.clear();
  EXPECT_EQ(g.count(), 0u);
}

// ---------------------------------------------------------------------------
// An image built from a host tree (mkfs.ext4 -d).

class LiveImage : public ::testing::Test {
 protected:
  void make_image(const std::map<std::string, size_t>& files) {
    fs::create_directories(tmp_ / "tree");
    int salt = 0;
    for (auto& [path, size] : files) {
      fs::create_directories(fs::path(tmp_ / "tree" + path).parent_path());
      std::string data;
      while (data.size() < size) data += path + " line " + std::to_string(salt++) + "\n";
      data.resize(size);
      write_file(tmp_ / "tree" + path, data);
    }
    img0_ = tmp_ / "image0.img";
    int rc = 0;
    std::string out = run("mkfs.ext4 -q -F -b 4096 -d " + quote(tmp_ / "tree") + " " + quote(img0_) + " 32M 2>&1", &rc);
    ASSERT_EQ(rc, 0) << out;
  }

  uint64_t ino_of(const std::string& image, const std::string& path) {
    Tree t = debugfs_tree(image, false);
    auto it = t.find(path);
    return it == t.end() ? 0 : it->second.ino;
  }

  // Overwrites the first block of each file in place (a guest rewriting
  // existing data): a copy of `image` with new bytes there.
  std::string overwrite(const std::string& image, const std::vector<std::string>& paths, const std::string& out,
                        const std::string& tag) {
    std::string bytes = read_file(image);
    for (const std::string& p : paths) {
      std::set<uint64_t> blocks = debugfs_blocks(image, ino_of(image, p));
      EXPECT_FALSE(blocks.empty()) << p;
      if (blocks.empty()) continue;
      std::string line = tag + " rewrote " + p + "\n";
      bytes.replace(*blocks.begin() * 4096, line.size(), line);
    }
    write_file(out, bytes);
    return out;
  }

  TempDir tmp_;
  std::string img0_;
};

// ---------------------------------------------------------------------------
// Policy changes: the gate and modify events

class PolicyChange : public LiveImage {
 protected:
  // The gate's set grains (grain = fs block here: 4 KiB grains, whole-disk
  // file system) against debugfs: every metadata block debugfs names
  // (inode tables, bitmaps, directory and journal blocks) is set, the blocks
  // of exactly the watched files are set, no other file's block is set, and
  // every other set block belongs to no inode (superblocks, descriptors).
  void expect_gate(const Gate& gate, const std::string& image, const std::set<std::string>& watched) {
    std::set<uint64_t> set;
    for (uint64_t g = 0; g < gate.grain_count(); g++)
      if (gate.grain_is_set(g)) set.insert(g);
    Tree tree = debugfs_tree(image, false);
    std::set<uint64_t> metadata = debugfs_group_metadata(image), watched_blocks, other_blocks;
    ASSERT_FALSE(metadata.empty());
    for (uint64_t b : debugfs_blocks(image, 8)) metadata.insert(b);  // the journal
    for (uint64_t b : debugfs_blocks(image, 7)) metadata.insert(b);  // reserved GDT blocks (resize inode)
    for (auto& [path, e] : tree) {
      std::set<uint64_t> blocks = debugfs_blocks(image, e.ino);
      if (e.type == "dir") {
        metadata.insert(blocks.begin(), blocks.end());
      } else if (e.type == "file") {
        (watched.count(path) ? watched_blocks : other_blocks).insert(blocks.begin(), blocks.end());
        if (watched.count(path)) {
          EXPECT_FALSE(blocks.empty()) << path;
        }
      }
    }
    for (uint64_t b : metadata) EXPECT_TRUE(set.count(b)) << "metadata block " << b << " not in the gate";
    for (uint64_t b : watched_blocks) EXPECT_TRUE(set.count(b)) << "watched data block " << b << " not in the gate";
    for (uint64_t b : other_blocks) EXPECT_FALSE(set.count(b)) << "unwatched data block " << b << " in the gate";
    std::set<uint64_t> rest;
    for (uint64_t b : set)
      if (!metadata.count(b) && !watched_blocks.count(b)) rest.insert(b);
    for (auto& [b, ino] : debugfs_icheck(image, rest, tmp_.path()))
      ADD_FAILURE() << "gate block " << b << " belongs to inode " << ino << " (neither metadata nor watched)";
  }

  std::vector<Event> feed(InferenceEngine& e, VectorEventSink& sink, const FrameStream& frames, size_t* from) {
    for (size_t i = *from; i < frames.frames.size(); i++) EXPECT_TRUE(e.feed_bytes(frames.frames[i].bytes()));
    *from = frames.frames.size();
    std::vector<Event> out = std::move(sink.events);
    sink.events.clear();
    return out;
  }

  static std::set<std::string> modified(const std::vector<Event>& events) {
    std::set<std::string> r;
    for (const Event& e : events)
      if (e.kind == EventKind::Modify) r.insert(e.path);
    return r;
  }
};

TEST_F(PolicyChange, GateAndModifyEventsFollowTheLivePolicy) {
  make_image({{"/a/f1", 20000}, {"/a/f2", 9000}, {"/a/deep/f3", 5000}, {"/b/g1", 13000}, {"/b/g2", 30000},
              {"/c/h1", 7000}});
  ASSERT_FALSE(HasFailure());
  auto index = crawl(img0_, tmp_ / "image0.dsvx");
  ASSERT_TRUE(index);
  std::unique_ptr<Gate> gate;
  GateOptions go;
  go.disk_size = fs::file_size(img0_);
  ASSERT_TRUE(Gate::create(tmp_ / "gate", go, &gate));
  Status s;
  auto disk = open_disk(img0_, {}, &s);
  ASSERT_TRUE(disk) << s.message();
  VectorEventSink sink;
  InferenceOptions o;
  o.policy = GatePolicy{GatePolicyKind::MetadataAndGlobs, {"/a/**"}};
  o.gate = gate.get();
  auto engine = InferenceEngine::create(*index, *disk, sink, o, &s);
  ASSERT_TRUE(engine) << s.message();
  PolicyApplyResult r;
  ASSERT_TRUE(engine->set_policy(o.policy, &r));
  EXPECT_EQ(r.watched_files, 3u);
  EXPECT_EQ(r.gate_grains, gate->set_grain_count());
  expect_gate(*gate, img0_, {"/a/f1", "/a/f2", "/a/deep/f3"});

  // Step 1 (under /a/**): in-place rewrites of /a/f1 and /b/g1, and a new
  // file /b/new (not in the crawl index: only the engine's model has it).
  FrameStream frames;
  size_t fed = 0;
  std::string img1 = overwrite(img0_, {"/a/f1", "/b/g1"}, tmp_ / "image1.img", "one");
  write_file(tmp_ / "newfile", std::string(10000, 'n'));
  debugfs_w(img1, "write " + tmp_ / "newfile" + " /b/new\n", tmp_.path());
  frames.diff(img0_, img1, 4096);
  frames.flush();
  std::vector<Event> ev = feed(*engine, sink, frames, &fed);
  EXPECT_EQ(modified(ev), (std::set<std::string>{"/a/f1"})) << describe(ev);
  bool created = false;
  for (const Event& e : ev) created = created || (e.kind == EventKind::Create && e.path == "/b/new");
  EXPECT_TRUE(created) << describe(ev);

  // Switch to /b/**: the gate now holds /b's data (incl. /b/new) and not /a's.
  uint64_t gen = gate->generation();
  ASSERT_TRUE(engine->set_policy(GatePolicy{GatePolicyKind::MetadataAndGlobs, {"/b/**"}}, &r));
  EXPECT_EQ(gate->generation(), gen + 1) << "one publication per policy change";
  EXPECT_EQ(r.watched_files, 3u);
  EXPECT_EQ(gate->mode(), GateMode::kSet);
  expect_gate(*gate, img1, {"/b/g1", "/b/g2", "/b/new"});

  // Step 2: the same files rewritten again: modify events for /b only.
  std::string img2 = overwrite(img1, {"/a/f1", "/b/g1", "/b/new"}, tmp_ / "image2.img", "two");
  frames.diff(img1, img2, 4096);
  frames.flush();
  ev = feed(*engine, sink, frames, &fed);
  EXPECT_EQ(modified(ev), (std::set<std::string>{"/b/g1", "/b/new"})) << describe(ev);

  // A bad glob is refused and changes nothing.
  gen = gate->generation();
  uint64_t grains = gate->set_grain_count();
  Status bad = engine->set_policy(GatePolicy{GatePolicyKind::MetadataAndGlobs, {"/b/**", std::string(5000, 'x')}}, &r);
  EXPECT_FALSE(bad);
  EXPECT_NE(bad.message().find("glob"), std::string::npos) << bad.message();
  EXPECT_EQ(engine->policy().globs, std::vector<std::string>{"/b/**"});
  EXPECT_EQ(gate->generation(), gen);
  EXPECT_EQ(gate->set_grain_count(), grains);

  // Metadata only: no data block passes, no modify event.
  ASSERT_TRUE(engine->set_policy(GatePolicy{GatePolicyKind::MetadataOnly, {}}, &r));
  expect_gate(*gate, img2, {});
  std::string img3 = overwrite(img2, {"/a/f1", "/b/g1"}, tmp_ / "image3.img", "three");
  frames.diff(img2, img3, 4096);
  frames.flush();
  ev = feed(*engine, sink, frames, &fed);
  EXPECT_TRUE(modified(ev).empty()) << describe(ev);

  // Full: the gate passes everything, every file is watched.
  ASSERT_TRUE(engine->set_policy(GatePolicy{GatePolicyKind::PassAll, {}}, &r));
  EXPECT_EQ(gate->mode(), GateMode::kPassAll);
  EXPECT_TRUE(r.gate_pass_all);
  std::string img4 = overwrite(img3, {"/a/f1", "/c/h1"}, tmp_ / "image4.img", "four");
  frames.diff(img3, img4, 4096);
  frames.flush();
  ev = feed(*engine, sink, frames, &fed);
  EXPECT_EQ(modified(ev), (std::set<std::string>{"/a/f1", "/c/h1"})) << describe(ev);

  // And back to low-overhead: mode set again, /c only.
  ASSERT_TRUE(engine->set_policy(GatePolicy{GatePolicyKind::MetadataAndGlobs, {"/c/*"}}, &r));
  EXPECT_EQ(gate->mode(), GateMode::kSet);
  expect_gate(*gate, img4, {"/c/h1"});

  // The model still matches debugfs.
  std::string state;
  engine->dump_state(&state);
  Tree want = debugfs_tree(img4);
  Tree got = tree_from_state(state);
  EXPECT_EQ(got.size(), want.size());
  for (auto& [p, e] : want) EXPECT_TRUE(got.count(p)) << p;
}

// ---------------------------------------------------------------------------
// Re-attach: an index crawled from a disk whose inodes the kernel created
// (non-zero i_generation; the index keeps no generation).

TEST_F(LiveImage, IndexInodesWithAGenerationAreNotReportedAsReused) {
  std::map<std::string, size_t> files;
  for (int i = 0; i < 12; i++) files["/data/f" + std::to_string(i)] = 8192;
  files["/var/log/app.log"] = 300;
  make_image(files);
  ASSERT_FALSE(HasFailure());
  // What a kernel does and mkfs -d does not: a random generation per inode.
  std::string script;
  uint32_t g = 0x9e3779b9;
  for (auto& [p, size] : files) script += "sif " + p + " generation " + std::to_string(g += 0x7f4a7c15) + "\n";
  for (const char* d : {"/data", "/var", "/var/log"}) script += std::string("sif ") + d + " generation " + std::to_string(g += 0x7f4a7c15) + "\n";
  debugfs_w(img0_, script, tmp_.path());
  // A directory's generation seeds its blocks' checksums: e2fsck rewrites
  // them (as the kernel would have written them).
  int rc = 0;
  std::string fsck = run("e2fsck -fy " + quote(img0_) + " 2>&1", &rc);
  ASSERT_LE(rc, 1) << fsck;
  fsck = run("e2fsck -fn " + quote(img0_) + " 2>&1", &rc);
  ASSERT_EQ(rc, 0) << fsck;
  std::string stat = run("debugfs -R " + quote("stat /data/f3") + " " + quote(img0_) + " 2>&1");
  ASSERT_NE(stat.find("Generation: "), std::string::npos) << stat;
  ASSERT_EQ(stat.find("Generation: 0 "), std::string::npos) << stat;
  auto index = crawl(img0_, tmp_ / "image0.dsvx");
  ASSERT_TRUE(index);

  // The guest goes on: a new file in /data (its inode shares an inode-table
  // block with the existing ones, its name a directory block), app.log grows.
  std::string img1 = tmp_ / "image1.img";
  fs::copy_file(img0_, img1);
  write_file(tmp_ / "newfile", std::string(8192, 'x'));
  debugfs_w(img1, "write " + tmp_ / "newfile" + " /data/f12\nsif /var/log/app.log size 400\n", tmp_.path());
  FrameStream frames;
  frames.diff(img0_, img1, 4096);
  frames.flush();

  Status s;
  auto disk = open_disk(img0_, {}, &s);
  ASSERT_TRUE(disk) << s.message();
  VectorEventSink sink;
  auto engine = InferenceEngine::create(*index, *disk, sink, InferenceOptions{}, &s);
  ASSERT_TRUE(engine) << s.message();
  for (const Frame& f : frames.frames) ASSERT_TRUE(engine->feed_bytes(f.bytes()));
  ASSERT_TRUE(engine->finish());

  // The guest's own actions: one create, one size change; nothing else.
  std::vector<std::string> names;
  for (const Event& e : sink.events) {
    if (e.kind == EventKind::Modify) continue;
    names.push_back(std::string(event_kind_name(e.kind)) + " " + e.path);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"create /data/f12", "extend /var/log/app.log"})) << describe(sink.events);
  Tree replayed = debugfs_tree(img0_);
  EXPECT_EQ(apply_events(&replayed, sink.events), "");
  Tree want;
  for (auto& [p, e] : debugfs_tree(img1)) want[p] = strip_for_events(e);
  EXPECT_EQ(replayed, want);
  EXPECT_EQ(engine->stats().forced_ops, 0u);
}

// ---------------------------------------------------------------------------
// Drain on stop: `dsvmi run --ring` stopped (SIGSTOP) while a producer in
// this process publishes a workload, then SIGTERM: every frame published
// before the signal yields its events.

class DrainOnStop : public LiveImage {
 protected:
  void SetUp() override {
    std::map<std::string, size_t> files{{"/keep/k1", 5000}};
    make_image(files);
    ASSERT_FALSE(HasFailure());
    index_ = crawl(img0_, tmp_ / "image0.dsvx");
    ASSERT_TRUE(index_);
    // The workload: 3 batches of creates (Home writes + Flush, like a
    // journal-less guest), the disk the engine reads is the final one.
    std::string cur = img0_;
    for (int batch = 0; batch < 3; batch++) {
      std::string next = tmp_ / ("b" + std::to_string(batch) + ".img");
      fs::copy_file(cur, next, fs::copy_options::overwrite_existing);
      std::string script = batch == 0 ? "mkdir /new\n" : "";
      for (int i = 0; i < 20; i++) {
        std::string host = tmp_ / ("src" + std::to_string(batch) + "_" + std::to_string(i));
        write_file(host, std::string(3000 + 100 * i, char('a' + i % 26)));
        script += "write " + host + " /new/file_" + std::to_string(batch) + "_" + std::to_string(i) + "\n";
      }
      debugfs_w(next, script, tmp_.path());
      batches_.push_back({cur, next});
      cur = next;
    }
    final_ = cur;
    int rc = 0;
    std::string out = run(std::string(DSVMI_BIN) + " ring-create " + quote(tmp_ / "ring") + " --size 4M 2>&1", &rc);
    ASSERT_EQ(rc, 0) << out;
  }

  pid_t start_engine(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {DSVMI_BIN, "run", "--ring", tmp_ / "ring", "--index", tmp_ / "image0.dsvx",
                                     "--disk", final_, "--events", tmp_ / "events.jsonl", "--stats"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, (tmp_ / "stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid = -1;
    EXPECT_EQ(posix_spawn(&pid, DSVMI_BIN, &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    // Ready once it says so (it then sits in its consume loop).
    while (read_file(tmp_ / "stderr").find("dsvmi run: ready") == std::string::npos) {
      int st;
      if (waitpid(pid, &st, WNOHANG) == pid) {
        ADD_FAILURE() << "engine exited: " << read_file(tmp_ / "stderr");
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pid;
  }

  // Publishes every batch's block diff (64 KiB writes) and a Flush after each.
  void produce(size_t first = 0, size_t end = SIZE_MAX) {
    char err[256] = {};
    dsvmi_ring_producer_t* p = dsvmi_ring_producer_open((tmp_ / "ring").c_str(), err, sizeof err);
    ASSERT_NE(p, nullptr) << err;
    for (size_t k = first; k < std::min(end, batches_.size()); k++) {
      auto& [before, after] = batches_[k];
      FrameStream fsx;
      fsx.diff(before, after, 4096);
      const std::string a = read_file(after);
      for (const Frame& f : fsx.frames) {
        // Re-publish the Write frames' ranges through the producer.
        const fb::Frame* fr = fb::GetFrame(f.storage.data());
        struct iovec iov = {const_cast<char*>(a.data() + fr->offset()), static_cast<size_t>(fr->length())};
        ASSERT_EQ(dsvmi_ring_produce(p, DSVMI_FRAME_WRITE, fr->offset(), fr->length(), &iov, 1, 0), 1);
        published_++;
      }
      ASSERT_EQ(dsvmi_ring_produce(p, DSVMI_FRAME_FLUSH, 0, 0, nullptr, 0, 0), 1);
      published_++;
    }
    dsvmi_ring_producer_close(p);
  }

  int wait_exit(pid_t pid) {
    int st = 0;
    EXPECT_EQ(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

  uint64_t producer_index() {
    RingSnapshot s;
    std::string err;
    EXPECT_TRUE(InspectRing(tmp_ / "ring", &s, &err)) << err;
    EXPECT_TRUE(s.geometry_ok && s.indices_ok) << s.geometry_error;
    return s.producer_index;
  }

  std::vector<std::string> all_lines() {
    std::vector<std::string> r;
    std::istringstream in(read_file(tmp_ / "events.jsonl"));
    std::string l;
    while (std::getline(in, l)) r.push_back(l);
    return r;
  }

  std::vector<std::string> event_lines() {
    std::vector<std::string> r;
    std::istringstream in(read_file(tmp_ / "events.jsonl"));
    std::string l;
    while (std::getline(in, l))
      if (l.find("\"event\":") != std::string::npos) r.push_back(l);
    return r;
  }

  std::unique_ptr<Index> index_;
  std::vector<std::pair<std::string, std::string>> batches_;
  std::string final_;
  uint64_t published_ = 0;
};

TEST_F(DrainOnStop, EveryFramePublishedBeforeTheSignalYieldsItsEvents) {
  pid_t pid = start_engine();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  produce();
  ASSERT_FALSE(HasFailure());
  // The stop request is pending before the engine has consumed anything.
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  ASSERT_EQ(kill(pid, SIGCONT), 0);
  ASSERT_EQ(wait_exit(pid), 0) << read_file(tmp_ / "stderr");
  std::string err = read_file(tmp_ / "stderr");
  EXPECT_NE(err.find("dsvmi run: frames=" + std::to_string(published_) + " "), std::string::npos) << err;
  EXPECT_NE(err.find("drained"), std::string::npos) << err;
  // The guest's actions (debugfs's trees): one mkdir, 60 creates, with
  // their latency measured.
  std::vector<std::string> lines = event_lines();
  std::set<std::string> created;
  for (const std::string& l : lines) {
    if (json_str(l, "event") == "create") created.insert(json_str(l, "path"));
    std::string raw;
    EXPECT_TRUE(json_field(l, "latency_us", &raw)) << l;
  }
  std::set<std::string> want;
  Tree before = debugfs_tree(img0_, false);
  for (auto& [p, e] : debugfs_tree(final_, false))
    if (!before.count(p) && e.type == "file") want.insert(p);
  EXPECT_EQ(want.size(), 60u);
  EXPECT_EQ(created, want);
  std::regex lat(R"(event_latency_p50_us=(\d+) event_latency_p99_us=(\d+) event_latency_max_us=(\d+))");
  EXPECT_TRUE(std::regex_search(err, lat)) << err;
}

TEST_F(DrainOnStop, ASecondSignalExitsWithoutDraining) {
  pid_t pid = start_engine();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  produce();
  ASSERT_FALSE(HasFailure());
  // Two stop requests (two signal numbers: a pending signal does not queue
  // twice) before the engine runs again.
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  ASSERT_EQ(kill(pid, SIGINT), 0);
  ASSERT_EQ(kill(pid, SIGCONT), 0);
  ASSERT_EQ(wait_exit(pid), 0) << read_file(tmp_ / "stderr");
  std::string err = read_file(tmp_ / "stderr");
  EXPECT_NE(err.find("exiting without draining"), std::string::npos) << err;
  EXPECT_TRUE(event_lines().empty());
}

// The post-crawl replay: frames already in the ring when the engine starts
// (here: published before it ran) are bracketed by ready records, the
// boundary given by --replay-until (what a daemon read after its crawl).
TEST_F(DrainOnStop, ReadyRecordsBracketTheReplay) {
  produce(0, 1);
  ASSERT_FALSE(HasFailure());
  const uint64_t after_batch0 = producer_index();
  produce(1, 2);
  ASSERT_FALSE(HasFailure());
  pid_t pid = start_engine({"--stats-interval", "3600", "--replay-until", std::to_string(after_batch0)});
  ASSERT_GT(pid, 0);
  // The last batch while it runs (stopped, so it may or may not have
  // replayed yet: the order below holds either way), then stop it.
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  produce(2, 3);
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  ASSERT_EQ(kill(pid, SIGCONT), 0);
  ASSERT_EQ(wait_exit(pid), 0) << read_file(tmp_ / "stderr");
  std::vector<std::string> lines = all_lines();
  // Order: replaying record, batch 0's events, live record, then batches 1
  // and 2 (frames written after the boundary are live events).
  int replaying = -1, live = -1;
  std::map<std::string, int> created_at;
  for (int i = 0; i < int(lines.size()); i++) {
    const std::string& l = lines[i];
    if (json_str(l, "engine") == "ready" && json_str(l, "phase") == "replaying") {
      EXPECT_EQ(json_u64(l, "catch_up_to"), after_batch0) << l;
      replaying = i;
    }
    if (json_str(l, "engine") == "ready" && json_str(l, "phase") == "live") live = i;
    if (json_str(l, "event") == "create") created_at[json_str(l, "path")] = i;
  }
  ASSERT_GE(replaying, 0) << read_file(tmp_ / "events.jsonl");
  ASSERT_GT(live, replaying);
  ASSERT_EQ(created_at.size(), 60u);
  for (auto& [path, at] : created_at) {
    const bool batch0 = path.rfind("/new/file_0_", 0) == 0;
    if (batch0) {
      EXPECT_TRUE(at > replaying && at < live) << path << " at line " << at;
    } else {
      EXPECT_GT(at, live) << path;
    }
  }
}

}  // namespace
}  // namespace dsvmi::testing
