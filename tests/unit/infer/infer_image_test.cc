// Inference against real images: debugfs changes an ext2/3/4 image step by
// step; each step's block diff becomes frames (home writes + Flush, or file
// data at home + a jbd2 transaction written by debugfs's own journal writer
// + the checkpoint e2fsck's journal replay does); the engine runs over the
// frames with the first image as its disk and its crawl as its index. The
// oracles: debugfs's view of the final image (tree, attributes, contents) and
// a reference replay of the emitted events onto debugfs's initial view.
#include <gtest/gtest.h>

#include <filesystem>

#include "dsvmi/crawl.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/index.h"
#include "dsvmi/inference.h"
#include "infer_oracle.h"

namespace dsvmi::testing {
namespace {

namespace fs = std::filesystem;

enum class Mode { Home, Journal };

struct Variant {
  const char* name;
  const char* mkfs;  // mke2fs arguments
  uint32_t block_size;
  Mode mode;
};

struct EngineRun {
  std::vector<Event> events;
  Tree state;
  InferenceStats stats;
};

class InferImageTest : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    const Variant& v = GetParam();
    bs_ = v.block_size;
    img0_ = tmp_ / "image0.img";
    int rc = 0;
    std::string out = run(std::string("mke2fs -q -F ") + v.mkfs + " " + quote(img0_) + " 64M 2>&1", &rc);
    ASSERT_EQ(rc, 0) << out;
    // Host files debugfs copies in.
    std::string small = "hello, dsvmi\n", medium, big;
    for (int i = 0; i < 3000; i++) medium += "line " + std::to_string(i) + " of a medium file\n";
    for (int i = 0; i < 40000; i++) big += "big file line " + std::to_string(i * 7919) + "\n";
    write_file(tmp_ / "small", small);
    write_file(tmp_ / "medium", medium);
    write_file(tmp_ / "big", big);
    std::string setup =
        "mkdir /d1\nmkdir /d1/sub\nwrite " + tmp_ / "big" + " /d1/big\nwrite " + tmp_ / "small" +
        " /d1/a.txt\nwrite " + tmp_ / "medium" + " /keep.txt\nmkdir /gone\nwrite " + tmp_ / "small" +
        " /gone/x\nmkdir /tree\nmkdir /tree/t1\nmkdir /tree/t1/t2\nwrite " + tmp_ / "small" +
        " /tree/t1/f1\nwrite " + tmp_ / "small" + " /tree/t1/t2/f2\nsymlink /short a.txt\n";
    debugfs_w(img0_, setup, tmp_ / "");
  }

  // A host file with the content of `n` plus a unique line: block diffs
  // then see every data write (a real guest writes even identical bytes).
  std::string file(const std::string& n) {
    std::string path = tmp_ / (n + "." + std::to_string(++unique_));
    write_file(path, read_file(tmp_ / n) + "unique " + std::to_string(unique_) + "\n");
    return path;
  }
  int unique_ = 0;

  // The workload, one debugfs script per batch.
  std::vector<std::string> steps() {
    std::string long_target(90, 'L');
    long_target = "/very/" + long_target + "/target";
    std::vector<std::string> s;
    // 1: deep mkdir, create, short and long symlinks.
    s.push_back("mkdir /p\nmkdir /p/q\nmkdir /p/q/r\nwrite " + file("small") + " /p/q/r/new.txt\nsymlink /p/longlink " +
                long_target + "\nsymlink /p/s x\nwrite " + file("medium") + " /d1/sub/m.txt\n");
    // 2: rename within a directory and across directories.
    s.push_back("ln /d1/a.txt /d1/b.txt\nunlink /d1/a.txt\nln /keep.txt /p/keep.txt\nunlink /keep.txt\n");
    // 3: hard link, chmod, chown.
    s.push_back("ln /d1/big /big2\nsif /d1/big links_count 2\nsif /d1/b.txt mode 0100600\nsif /d1/b.txt uid 1000\n"
                "sif /d1/b.txt gid 100\n");
    // 4: rename over an existing name.
    s.push_back("rm /d1/b.txt\nln /p/q/r/new.txt /d1/b.txt\nunlink /p/q/r/new.txt\n");
    // 5: rm, rmdir, rm -r, truncate down.
    s.push_back("rm /gone/x\nrmdir /gone\nrm /tree/t1/t2/f2\nrmdir /tree/t1/t2\nrm /tree/t1/f1\nrmdir /tree/t1\n"
                "rmdir /tree\npunch /d1/big 2\nsif /d1/big size 5000\n");
    // 6, 7: delete, then create (inode and block reuse; like the kernel,
    // freed blocks are reused only after the batch that freed them), a
    // directory with many entries.
    s.push_back("rm /p/keep.txt\n");
    {
      std::string m = "write " + file("small") + " /reuse.txt\nmkdir /many\n";
      for (int i = 0; i < 150; i++) m += "write " + file("small") + " /many/entry_with_a_longish_name_" + std::to_string(i) + "\n";
      s.push_back(m);
    }
    // 8, 9: truncate up; a new file under a just-deleted name.
    s.push_back("sif /reuse.txt size 100000\nrm /many/entry_with_a_longish_name_7\n");
    s.push_back("write " + file("medium") + " /many/entry_with_a_longish_name_7\n");
    return s;
  }

  // Runs the workload, returns the frames; leaves the final image at *final.
  FrameStream build_frames(std::string* final_image) {
    const Variant& v = GetParam();
    FrameStream fsx;
    std::string cur = tmp_ / "cur.img";
    fs::copy_file(img0_, cur, fs::copy_options::overwrite_existing);
    int k = 0;
    for (const std::string& step : steps()) {
      k++;
      std::string next = tmp_ / ("next" + std::to_string(k) + ".img");
      fs::copy_file(cur, next, fs::copy_options::overwrite_existing);
      debugfs_w(next, step, tmp_ / "");
      if (v.mode == Mode::Home) {
        fsx.diff(cur, next, bs_);
        fsx.flush();
        cur = next;
        continue;
      }
      // Journal mode: data home first (ordered mode), then the metadata as
      // one jbd2 transaction, then the checkpoint (e2fsck replays it).
      auto idx = crawl(next, tmp_ / "next.dsvx");
      const FsIndex& f = idx->filesystems()[0];
      std::set<uint64_t> changed = FrameStream::changed_blocks(cur, next, bs_), data, meta;
      for (uint64_t b : changed) {
        BlockOwner o;
        if (f.owner(b, &o) && o.kind == BlockKind::FileData) data.insert(b); else meta.insert(b);
      }
      fsx.diff(cur, next, bs_, &data);
      std::string with_data = tmp_ / "with_data.img";
      fs::copy_file(cur, with_data, fs::copy_options::overwrite_existing);
      {
        std::string n = read_file(next), w = read_file(with_data);
        for (uint64_t b : data) w.replace(b * bs_, bs_, n, b * bs_, bs_);
        write_file(with_data, w);
        std::string images, list;
        for (uint64_t b : meta) {
          images += n.substr(b * bs_, bs_);
          list += (list.empty() ? "" : ",") + std::to_string(b);
        }
        write_file(tmp_ / "meta.bin", images);
        std::string journaled = tmp_ / "journaled.img";
        fs::copy_file(with_data, journaled, fs::copy_options::overwrite_existing);
        debugfs_w(journaled, "jo\njw -b " + list + " " + tmp_ / "meta.bin" + "\njc\n", tmp_ / "");
        fsx.diff(with_data, journaled, bs_);
        fsx.flush();
        std::string checkpointed = tmp_ / ("ck" + std::to_string(k) + ".img");
        fs::copy_file(journaled, checkpointed, fs::copy_options::overwrite_existing);
        int rc = 0;
        std::string out = run("e2fsck -fy " + quote(checkpointed) + " 2>&1", &rc);
        EXPECT_LE(rc, 1) << out;
        fsx.diff(journaled, checkpointed, bs_);
        fsx.flush();
        cur = checkpointed;
      }
    }
    *final_image = cur;
    return fsx;
  }

  EngineRun run_engine(const std::vector<Frame>& frames, const std::string& disk_image, const Index& index,
                 InferenceOptions options) {
    EngineRun r;
    Status s;
    auto disk = open_disk(disk_image, {}, &s);
    EXPECT_TRUE(disk) << s.message();
    VectorEventSink sink;
    auto engine = InferenceEngine::create(index, *disk, sink, options, &s);
    EXPECT_TRUE(engine) << s.message();
    if (!engine) return r;
    for (const Frame& f : frames) EXPECT_TRUE(engine->feed_bytes(f.bytes()));
    EXPECT_TRUE(engine->finish());
    std::string state;
    engine->dump_state(&state);
    r.state = tree_from_state(state);
    r.events = sink.events;
    r.stats = engine->stats();
    return r;
  }

  TempDir tmp_;
  std::string img0_;
  uint32_t bs_ = 4096;
};

std::string describe(const Tree& t) {
  std::string s;
  for (auto& [p, e] : t) {
    s += p + " ino=" + std::to_string(e.ino) + " " + e.type + " mode=" + std::to_string(e.mode) +
         " uid=" + std::to_string(e.uid) + " gid=" + std::to_string(e.gid) + " size=" + std::to_string(e.size) +
         " links=" + std::to_string(e.links) + " mtime=" + std::to_string(e.mtime_ns) + " target=" + e.target + "\n";
  }
  return s;
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

TEST_P(InferImageTest, FinalTreeEventsAndContentsMatchDebugfs) {
  auto index = crawl(img0_, tmp_ / "image0.dsvx");
  ASSERT_TRUE(index);
  std::string final_image;
  FrameStream frames = build_frames(&final_image);
  ASSERT_FALSE(HasFailure());
  InferenceOptions options;
  options.capture_data = true;
  EngineRun r = run_engine(frames.frames, img0_, *index, options);

  // 1. The engine's tree is debugfs's view of the final image.
  Tree want = debugfs_tree(final_image);
  EXPECT_EQ(describe(r.state), describe(want)) << describe(r.events);

  // 2. The events, applied in order to the initial tree, give the final tree.
  Tree replayed = debugfs_tree(img0_);
  std::string err = apply_events(&replayed, r.events);
  EXPECT_EQ(err, "") << describe(r.events);
  Tree want_stripped;
  for (auto& [p, e] : want) want_stripped[p] = strip_for_events(e);
  EXPECT_EQ(describe(replayed), describe(want_stripped)) << describe(r.events);

  // 3. Contents rebuilt from the initial files plus modify/size events equal
  //    the final files.
  std::map<uint64_t, std::string> content;
  for (auto& [p, e] : debugfs_tree(img0_, false)) {
    if (e.type == "file") content[e.ino] = run("debugfs -R " + quote("cat <" + std::to_string(e.ino) + ">") + " " + quote(img0_) + " 2>/dev/null");
  }
  for (const Event& e : r.events) {
    switch (e.kind) {
      case EventKind::Create:
        content[e.ino].clear();
        break;
      case EventKind::Modify: {
        std::string& c = content[e.ino];
        ASSERT_EQ(e.data.size(), e.length);
        if (c.size() < e.offset + e.length) c.resize(e.offset + e.length, '\0');
        std::memcpy(c.data() + e.offset, e.data.data(), e.length);
        break;
      }
      case EventKind::Truncate:
      case EventKind::Extend:
        content[e.ino].resize(e.attrs.size, '\0');
        break;
      default:
        break;
    }
  }
  int files = 0;
  for (auto& [p, e] : want) {
    if (e.type != "file") continue;
    std::string expect = run("debugfs -R " + quote("cat <" + std::to_string(e.ino) + ">") + " " + quote(final_image) + " 2>/dev/null");
    std::string got = content[e.ino];
    got.resize(e.size, '\0');
    EXPECT_TRUE(got == expect) << p << " (inode " << e.ino << "): rebuilt " << got.size()
                               << " bytes differ from debugfs's " << expect.size() << ": "
                               << ::testing::PrintToString(got.substr(0, 40)) << " vs "
                               << ::testing::PrintToString(expect.substr(0, 40));
    files++;
  }
  EXPECT_GT(files, 150);
  EXPECT_EQ(r.stats.forced_ops, 0u);
  EXPECT_GT(r.stats.data_bytes_attributed, 0u);
  if (GetParam().mode == Mode::Journal) {
    EXPECT_EQ(r.stats.journal_commits, steps().size());
    EXPECT_GT(r.stats.journal_blocks_applied, 0u);
  }
  // Every kind of event the workload implies was seen.
  std::set<std::string> kinds;
  for (const Event& e : r.events) kinds.insert(event_kind_name(e.kind));
  for (const char* k : {"create", "mkdir", "symlink", "link", "delete", "rmdir", "rename", "attrib", "truncate",
                        "extend", "modify"}) {
    EXPECT_TRUE(kinds.count(k)) << "no " << k << " event";
  }
  // Modify events are coalesced: a file's contiguous bytes attributed for
  // one frame are one event (a multi-block file written in one step is not
  // one event per block), so no modify continues the one right before it.
  bool multi_block = false;
  for (size_t i = 0; i < r.events.size(); i++) {
    const Event& e = r.events[i];
    if (e.kind != EventKind::Modify) continue;
    multi_block = multi_block || e.length > bs_;
    if (i == 0) continue;
    const Event& p = r.events[i - 1];
    EXPECT_FALSE(p.kind == EventKind::Modify && p.ino == e.ino && p.frame_seq == e.frame_seq &&
                 p.offset + p.length == e.offset)
        << "modify events " << p.seq << " and " << e.seq << " (inode " << e.ino << ") were not coalesced";
  }
  EXPECT_TRUE(multi_block) << "no modify event spans more than one block";
  // rename over an existing name names the replaced inode.
  bool over = false;
  for (const Event& e : r.events) over = over || (e.kind == EventKind::Rename && e.replaced_ino != 0);
  EXPECT_TRUE(over);
}

// Frames dropped by the producer: a Lost record over their range makes the
// engine re-read that range from the (live) disk, emit the differences and
// an overflow event.
TEST_P(InferImageTest, LostFramesAreRepairedFromTheDisk) {
  if (GetParam().mode == Mode::Journal) GTEST_SKIP() << "one mode is enough";
  auto index = crawl(img0_, tmp_ / "image0.dsvx");
  ASSERT_TRUE(index);
  std::string next = tmp_ / "lost.img";
  fs::copy_file(img0_, next);
  debugfs_w(next, steps()[0] + steps()[1], tmp_ / "");
  std::set<uint64_t> changed = FrameStream::changed_blocks(img0_, next, bs_);
  ASSERT_FALSE(changed.empty());
  FrameStream frames;
  const uint64_t first = *changed.begin() * bs_, last = (*changed.rbegin() + 1) * bs_;
  frames.lost(first, last - first, 17);
  frames.flush();
  // The disk is the live one: it already holds what the lost frames wrote.
  EngineRun r = run_engine(frames.frames, next, *index, InferenceOptions{});
  Tree want = debugfs_tree(next);
  EXPECT_EQ(describe(r.state), describe(want)) << describe(r.events);
  ASSERT_FALSE(r.events.empty());
  EXPECT_EQ(r.events.back().kind, EventKind::Overflow);
  EXPECT_EQ(r.events.back().lost_frames, 17u);
  Tree replayed = debugfs_tree(img0_);
  EXPECT_EQ(apply_events(&replayed, r.events), "");
  Tree want_stripped;
  for (auto& [p, e] : want) want_stripped[p] = strip_for_events(e);
  EXPECT_EQ(describe(replayed), describe(want_stripped));
}

// A half-written batch (no Flush, no commit) yields no event at all.
TEST_P(InferImageTest, NothingBeforeTheConsistencyPoint) {
  auto index = crawl(img0_, tmp_ / "image0.dsvx");
  ASSERT_TRUE(index);
  std::string next = tmp_ / "half.img";
  fs::copy_file(img0_, next);
  debugfs_w(next, steps()[0], tmp_ / "");
  FrameStream frames;
  frames.diff(img0_, next, bs_);
  InferenceOptions o;
  o.policy.kind = GatePolicyKind::MetadataOnly;
  EngineRun r = run_engine(frames.frames, img0_, *index, o);
  EXPECT_TRUE(r.events.empty()) << describe(r.events);
  EXPECT_EQ(describe(r.state), describe(debugfs_tree(img0_)));
}

INSTANTIATE_TEST_SUITE_P(
    Variants, InferImageTest,
    ::testing::Values(Variant{"ext4_home", "-t ext4 -b 4096", 4096, Mode::Home},
                      Variant{"ext4_journal", "-t ext4 -b 4096", 4096, Mode::Journal},
                      Variant{"ext4_nojournal", "-t ext4 -b 4096 -O ^has_journal", 4096, Mode::Home},
                      Variant{"ext3_journal", "-t ext3 -b 4096", 4096, Mode::Journal},
                      Variant{"ext2_1k", "-t ext2 -b 1024", 1024, Mode::Home}),
    [](const ::testing::TestParamInfo<Variant>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace dsvmi::testing
