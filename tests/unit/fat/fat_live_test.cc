// FAT's live driver against images changed by mtools: each step's sector
// diff becomes frames (then a Flush, or nothing and a pause longer than the
// quiet interval), the engine runs over them with the first image as its
// disk (full capture) or behind a gate with a disk that is already at the
// step's image (low-overhead mode, as QEMU's filter would pass them). The
// oracles: The Sleuth Kit (`fls -r -p` paths and types, `istat` sizes and
// the read-only attribute) and mtools (`mtype` bytes) on the final image,
// `fsck.fat -n` that the final image is clean.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "../infer/infer_oracle.h"
#include "dsvmi/gate_writer.h"
#include "dsvmi/inference.h"
#include "fat_oracles.h"

namespace dsvmi::testing {
namespace {

namespace fs = std::filesystem;

struct Variant {
  const char* name;
  const char* mkfs;  // mkfs.vfat arguments
  const char* size;  // truncate -s
};

void host_file(const fs::path& p, size_t bytes, uint32_t seed) {
  fs::create_directories(p.parent_path());
  std::mt19937 rng(seed);
  std::string data(bytes, '\0');
  for (auto& c : data) c = char('a' + rng() % 26);
  write_file(p.string(), data);
}

// The oracle's tree: paths and types from fls, sizes and the read-only bit
// from istat (as mode: attributes.h maps read-only to 0555), ids from the
// engine's own index of the first image by path (FAT has no inode numbers;
// the replay needs one per file to follow attribute events).
Tree tsk_tree(const Volume& v, const Index* ids) {
  Tree t;
  OracleEntry root;
  root.type = "dir";
  root.mode = 0755;
  t["/"] = root;
  for (const auto& [path, e] : tsk_paths(v)) {
    OracleEntry o;
    o.type = e.type == 'd' ? "dir" : "file";
    const TskStat st = tsk_istat(v, e.addr);
    o.size = o.type == "dir" ? 0 : st.size;
    o.mode = (o.type == "file" && st.attributes.find("Read Only") != std::string::npos) ? 0555 : 0755;
    if (ids != nullptr) {
      uint64_t ino = 0;
      if (ids->filesystems()[0].lookup(path, &ino)) o.ino = ino;
    }
    t[path] = o;
  }
  return t;
}

// What the comparison keeps: type, size of files, mode.
std::string describe(const Tree& t) {
  std::string s;
  for (const auto& [p, e] : t) {
    s += p + " " + e.type + " mode=" + std::to_string(e.mode);
    if (e.type == "file") s += " size=" + std::to_string(e.size);
    s += "\n";
  }
  return s;
}

std::string describe(const std::vector<Event>& events) {
  std::string s;
  for (const Event& e : events) {
    Event c = e;
    c.data.clear();
    std::string line;
    event_to_json(c, &line);
    s += line + "\n";
  }
  return s;
}

class FatLiveTest : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    vol_.image = (tmp_ / "image0.img");
    int rc = 0;
    std::string out = run(std::string("truncate -s ") + GetParam().size + " " + quote(vol_.image) + " && mkfs.vfat " +
                              GetParam().mkfs + " " + quote(vol_.image) + " >/dev/null 2>&1",
                          &rc);
    ASSERT_EQ(rc, 0) << out;
    const fs::path h = tmp_ / "host";
    host_file(h / "EFI/BOOT/BOOTX64.EFI", 70000, 1);
    host_file(h / "EFI/debian/grubx64.efi", 20000, 2);
    host_file(h / "docs/a.txt", 1500, 3);
    host_file(h / "docs/sub/b.txt", 700, 4);
    host_file(h / "gone/x", 100, 5);
    host_file(h / "keep.txt", 9000, 6);
    host_file(h / "empty", 0, 7);
    fs::create_directories(h / "emptydir");
    out = run(vol_.m("copy") + " -s -Q " + quote(h.string()) + "/* ::/ 2>&1", &rc);
    ASSERT_EQ(rc, 0) << out;
    host_file(h / "new/BOOTX64.EFI", 90000, 11);
    host_file(h / "new/new.efi", 5000, 12);
    host_file(h / "new/n.txt", 3000, 13);
    host_file(h / "new/keep_longer.txt", 20000, 14);
    host_file(h / "new/keep_shorter.txt", 2000, 15);
    host_file(h / "new/filled", 1234, 16);
    host_file(h / "new/late.txt", 4321, 17);
  }

  // One step: mtools commands on a copy of the current image.
  void step(const std::string& cmds, bool flush) {
    const std::string next = (tmp_ / ("image" + std::to_string(++steps_) + ".img"));
    fs::copy_file(cur_.empty() ? vol_.image : cur_, next);
    Volume v{next, 0};
    std::string script;
    size_t pos = 0;
    while (pos < cmds.size()) {
      size_t nl = cmds.find('\n', pos);
      if (nl == std::string::npos) nl = cmds.size();
      const std::string line = cmds.substr(pos, nl - pos);
      pos = nl + 1;
      if (line.empty()) continue;
      const size_t sp = line.find(' ');
      script += v.m(line.substr(0, sp)) + line.substr(sp) + " && ";
    }
    int rc = 0;
    std::string out = run(script + "true 2>&1", &rc);
    ASSERT_EQ(rc, 0) << cmds << out;
    steps_images_.push_back({cur_.empty() ? vol_.image : cur_, next, flush});
    cur_ = next;
  }

  void build_steps() {
    const std::string n = (tmp_ / "host/new") + "/";
    // Replace the boot loader, add one beside it, a new directory with a file.
    step("copy -o " + quote(n + "BOOTX64.EFI") + " ::/EFI/BOOT/BOOTX64.EFI\ncopy " + quote(n + "new.efi") +
             " ::/EFI/BOOT/new.efi\nmd ::/newdir\ncopy " + quote(n + "n.txt") + " ::/newdir/n.txt",
         true);
    // Delete a file and its directory, rename, move across directories.
    step("del ::/gone/x\nrd ::/gone\nren ::/docs/a.txt renamed.txt\nmove ::/docs/sub/b.txt ::/newdir/b.txt", true);
    // Read-only attribute; a file grows. No Flush: the quiet interval ends
    // this batch (the next frame is later than it).
    step("attrib +r ::/keep.txt\ncopy -o " + quote(n + "keep_longer.txt") + " ::/EFI/debian/grubx64.efi", false);
    // A file shrinks; an empty file gets data (a new id: docs/fat.md);
    // an empty directory goes; a new file in a new nested directory.
    step("copy -o " + quote(n + "keep_shorter.txt") + " ::/docs/renamed.txt\ncopy -o " + quote(n + "filled") +
             " ::/empty\nrd ::/emptydir\nmd ::/newdir/deeper\ncopy " + quote(n + "late.txt") +
             " ::/newdir/deeper/late.txt",
         true);
  }

  FrameStream frames_for_steps() {
    FrameStream fsx;
    for (const auto& s : steps_images_) {
      fsx.diff(s.before, s.after, 512);
      if (s.flush) {
        fsx.flush();
      } else {
        fsx.pause(500ull * 1000000);
      }
    }
    return fsx;
  }

  struct StepImages {
    std::string before, after;
    bool flush;
  };
  TempDir tmp_{"dsvmi-fat-live"};
  Volume vol_;
  std::string cur_;
  int steps_ = 0;
  std::vector<StepImages> steps_images_;
};

// Contents: the first image's files plus the modify/size events, per id.
std::map<uint64_t, std::string> rebuild(const Volume& first, const Tree& initial, const std::vector<Event>& events) {
  std::map<uint64_t, std::string> content;
  for (const auto& [p, e] : initial) {
    if (e.type == "file") content[e.ino] = run(first.m("type") + " " + quote("::" + p));
  }
  for (const Event& e : events) {
    if (e.kind == EventKind::Create) {
      content[e.ino].clear();
    } else if (e.kind == EventKind::Modify) {
      std::string& c = content[e.ino];
      EXPECT_EQ(e.data.size(), e.length);
      if (c.size() < e.offset + e.data.size()) c.resize(e.offset + e.data.size(), '\0');
      std::memcpy(c.data() + e.offset, e.data.data(), e.data.size());
    } else if (e.kind == EventKind::Truncate || e.kind == EventKind::Extend) {
      content[e.ino].resize(e.attrs.size, '\0');
    }
  }
  return content;
}

TEST_P(FatLiveTest, FullCaptureFollowsMtools) {
  build_steps();
  ASSERT_FALSE(HasFailure());
  auto index = crawl(vol_.image, (tmp_ / "image0.dsvx"));
  ASSERT_TRUE(index);
  const Volume final_vol{cur_, 0};
  int rc = 0;
  std::string fsck = run("fsck.fat -n " + quote(cur_) + " 2>&1", &rc);
  ASSERT_EQ(rc, 0) << "mtools left a damaged image: " << fsck;

  FrameStream frames = frames_for_steps();
  Status s;
  auto disk = open_disk(vol_.image, {}, &s);
  ASSERT_TRUE(disk) << s.message();
  VectorEventSink sink;
  InferenceOptions o;
  o.capture_data = true;
  auto engine = InferenceEngine::create(*index, *disk, sink, o, &s);
  ASSERT_TRUE(engine) << s.message();
  for (const Frame& f : frames.frames) ASSERT_TRUE(engine->feed_bytes(f.bytes()));
  ASSERT_TRUE(engine->finish());
  std::string state;
  engine->dump_state(&state);
  const InferenceStats& st = engine->stats();

  // 1. The engine's tree is TSK's view of the final image.
  const Tree want = tsk_tree(final_vol, nullptr);
  EXPECT_EQ(describe(tree_from_state(state)), describe(want)) << describe(sink.events);

  // 2. Events applied in order to the first image's tree give the final one.
  const Tree initial = tsk_tree(vol_, index.get());
  Tree replayed = initial;
  EXPECT_EQ(apply_events(&replayed, sink.events), "") << describe(sink.events);
  EXPECT_EQ(describe(replayed), describe(want)) << describe(sink.events);

  // 3. Every final file's bytes (mtype) from the first image's plus the events.
  const auto content = rebuild(vol_, initial, sink.events);
  const Tree final_state = tree_from_state(state);
  int files = 0;
  for (const auto& [p, e] : final_state) {
    if (e.type != "file") continue;
    auto c = content.find(e.ino);
    ASSERT_NE(c, content.end()) << p;
    const std::string want_bytes = run(final_vol.m("type") + " " + quote("::" + p));
    EXPECT_TRUE(c->second == want_bytes) << p << " differs from mtype: " << c->second.size() << " bytes vs "
                                         << want_bytes.size() << ", id " << e.ino;
    files++;
  }
  EXPECT_GE(files, 9);

  // 4. The quiet interval ended the batch without a Flush; no operation was
  // forced out of order; ids followed renames and moves.
  EXPECT_EQ(st.quiet_points, 1u);
  EXPECT_EQ(st.forced_ops, 0u);
  EXPECT_EQ(st.metadata_rereads, 4u);
  bool renamed = false, moved = false;
  for (const Event& e : sink.events) {
    renamed = renamed || (e.kind == EventKind::Rename && e.old_path == "/docs/a.txt" && e.path == "/docs/renamed.txt");
    moved = moved || (e.kind == EventKind::Rename && e.old_path == "/docs/sub/b.txt" && e.path == "/newdir/b.txt");
  }
  EXPECT_TRUE(renamed && moved) << describe(sink.events);
}

TEST_P(FatLiveTest, LowOverheadGateFollowsMtools) {
  build_steps();
  ASSERT_FALSE(HasFailure());
  auto index = crawl(vol_.image, (tmp_ / "image0.dsvx"));
  ASSERT_TRUE(index);
  const Volume final_vol{cur_, 0};
  // The live disk: each step's writes are on it before the engine reads
  // their frames (what QEMU forwards, the guest's disk has).
  const std::string live = (tmp_ / "live.img");
  fs::copy_file(vol_.image, live);
  Status s;
  auto disk = open_disk(live, {}, &s);
  ASSERT_TRUE(disk) << s.message();
  std::unique_ptr<Gate> gate;
  GateOptions go;
  go.disk_size = disk->size();
  ASSERT_TRUE(Gate::create((tmp_ / "gate"), go, &gate));
  VectorEventSink sink;
  InferenceOptions o;
  o.capture_data = true;
  o.gate = gate.get();
  o.read_back_new_data = true;
  o.policy = GatePolicy{GatePolicyKind::MetadataAndGlobs, {"/EFI/**", "/newdir/**"}};
  auto engine = InferenceEngine::create(*index, *disk, sink, o, &s);
  ASSERT_TRUE(engine) << s.message();
  ASSERT_TRUE(engine->set_policy(o.policy, nullptr));
  // QEMU's filter numbers the frames it passes; so does this loop.
  uint64_t passed = 0, dropped = 0, seq = 1, time_ns = 1000000000;
  for (const auto& step : steps_images_) {
    FrameStream one;
    one.diff(step.before, step.after, 512);
    write_file(live, read_file(step.after));
    for (const Frame& f : one.frames) {
      const auto* v = fb::GetFrame(f.storage.data());
      bool pass = false;
      for (uint64_t g = v->offset() / gate->grain_size(); g * gate->grain_size() < v->offset() + v->length(); g++)
        pass = pass || gate->grain_is_set(g);
      (pass ? passed : dropped)++;
      if (!pass) continue;
      const Frame renumbered = make_frame(seq++, fb::FrameKind::Write, v->offset(), v->length(), v->payload()->data(),
                                          time_ns += 1000000);
      ASSERT_TRUE(engine->feed_bytes(renumbered.bytes()));
    }
    if (step.flush) {
      ASSERT_TRUE(engine->feed_bytes(make_frame(seq++, fb::FrameKind::Flush, 0, 0, nullptr, time_ns += 1000000).bytes()));
    } else {
      // No frame for longer than the quiet interval: the run loop's idle().
      EXPECT_GT(engine->idle(time_ns + 1000000), time_ns + 1000000) << "due too early";
      engine->idle(time_ns += o.quiet_ns + 1);
    }
  }
  ASSERT_TRUE(engine->finish());
  EXPECT_GT(dropped, 0u) << "the gate dropped nothing: the test shows nothing about low-overhead mode";
  EXPECT_GT(passed, 0u);
  std::string state;
  engine->dump_state(&state);

  const Tree want = tsk_tree(final_vol, nullptr);
  EXPECT_EQ(describe(tree_from_state(state)), describe(want)) << describe(sink.events);
  const Tree initial = tsk_tree(vol_, index.get());
  Tree replayed = initial;
  EXPECT_EQ(apply_events(&replayed, sink.events), "") << describe(sink.events);
  EXPECT_EQ(describe(replayed), describe(want)) << describe(sink.events);
  // Watched files' bytes: what the events say == mtype of the final image.
  const auto content = rebuild(vol_, initial, sink.events);
  int watched = 0;
  for (const auto& [p, e] : tree_from_state(state)) {
    if (e.type != "file" || (p.rfind("/EFI/", 0) != 0 && p.rfind("/newdir/", 0) != 0)) continue;
    auto c = content.find(e.ino);
    ASSERT_NE(c, content.end()) << p;
    EXPECT_TRUE(c->second == run(final_vol.m("type") + " " + quote("::" + p))) << p << " differs from mtype";
    watched++;
  }
  EXPECT_EQ(watched, 6);
  EXPECT_GT(engine->stats().data_blocks_read_back, 0u);
  EXPECT_EQ(engine->stats().quiet_points, 1u);
}

INSTANTIATE_TEST_SUITE_P(Variants, FatLiveTest,
                         ::testing::Values(Variant{"fat32_512", "-F 32 -s 1", "64M"},
                                           Variant{"fat32_1k", "-F 32 -s 2", "80M"},
                                           Variant{"fat16", "-F 16 -s 4", "32M"},
                                           Variant{"fat12", "-F 12 -s 4", "4M"}),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace dsvmi::testing
