// libFuzzer target for the inference engine: arbitrary frame streams (writes
// into a real ext4 image's metadata and journal blocks, jbd2 descriptor /
// commit / revoke blocks with fuzzed tags, flushes, lost ranges) against an
// engine over that image and its crawl index, plus the raw jbd2 parsers.
// The engine must never crash, hang or grow without bound on any of it.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dsvmi/crawl.h"
#include "dsvmi/gate_writer.h"
#include "dsvmi/frame_generated.h"
#include "dsvmi/index.h"
#include "dsvmi/inference.h"
#include "dsvmi/memory_reader.h"
#include "journal.h"

namespace {

struct World {
  std::vector<std::byte> image;
  std::vector<uint8_t> index;
  std::vector<uint64_t> interesting;  // metadata blocks
  std::vector<uint64_t> journal;      // journal blocks, by position
  uint32_t bs = 4096;
  bool ok = false;
  // A gate the engine keeps in step (and recomputes on policy changes); its
  // file is unlinked, the mapping stays.
  std::unique_ptr<dsvmi::Gate> gate;
};

std::vector<char> slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

World make_world() {
  World w;
  char dir[] = "/tmp/dsvmi-fuzz-infer-XXXXXX";
  if (!mkdtemp(dir)) return w;
  const std::string d = dir, img = d + "/fs.img", idx = d + "/fs.dsvx", src = d + "/src";
  std::string cmd = "mkdir -p " + src + "/a/b && echo hi > " + src + "/a/f && ln -s f " + src + "/a/s && " +
                    "for i in $(seq 1 60); do echo $i > " + src + "/a/b/entry$i; done && " +
                    "mke2fs -q -F -t ext4 -b 4096 -d " + src + " " + img + " 8M >/dev/null 2>&1";
  if (system(cmd.c_str()) != 0) return w;
  dsvmi::Status s;
  auto disk = dsvmi::open_disk(img, {}, &s);
  if (!disk) return w;
  dsvmi::CrawlOptions opt;
  opt.index_path = idx;
  dsvmi::CrawlSummary sum;
  if (!dsvmi::crawl_disk(*disk, opt, &sum)) return w;
  auto bytes = slurp(img);
  w.image.resize(bytes.size());
  std::memcpy(w.image.data(), bytes.data(), bytes.size());
  auto ib = slurp(idx);
  w.index.assign(ib.begin(), ib.end());
  auto index = dsvmi::Index::from_bytes(w.index.data(), w.index.size(), &s);
  if (!index || index->filesystems().empty()) return w;
  const dsvmi::FsIndex& fs = index->filesystems()[0];
  const uint64_t n = fs.info().block_count;
  for (uint64_t b = 0; b < n; b++) {
    dsvmi::BlockOwner o;
    if (!fs.owner(b, &o)) continue;
    if (o.kind == dsvmi::BlockKind::Journal) {
      if (w.journal.size() <= o.logical) w.journal.resize(o.logical + 1);
      w.journal[o.logical] = b;
    } else if (o.kind != dsvmi::BlockKind::Free && o.kind != dsvmi::BlockKind::FileData) {
      w.interesting.push_back(b);
    }
  }
  dsvmi::GateOptions go;
  go.disk_size = w.image.size();
  if (!dsvmi::Gate::create(d + "/gate", go, &w.gate)) return w;
  std::system(("rm -rf " + d).c_str());
  w.ok = !w.interesting.empty() && w.journal.size() > 8;
  return w;
}

struct Reader {
  const uint8_t* p;
  size_t n;
  uint8_t u8() { return n ? (n--, *p++) : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | u8() << 8); }
  uint32_t u32() { return u16() | uint32_t{u16()} << 16; }
};

void put_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World world = make_world();
  if (!world.ok) abort();  // the harness itself is broken: say so loudly

  // The raw parsers first.
  {
    dsvmi::infer::JournalGeometry g;
    std::string why;
    std::vector<uint8_t> block(4096, 0);
    std::memcpy(block.data(), data, std::min<size_t>(size, block.size()));
    (void)dsvmi::infer::decode_journal_superblock(block.data(), block.size(), &g, &why);
    g.valid = true;
    g.block_size = 4096;
    g.maxlen = 1024;
    g.first = 1;
    g.incompat = size ? data[0] : 0;
    std::vector<dsvmi::infer::JournalTag> tags;
    (void)dsvmi::infer::parse_descriptor(g, block.data(), 5, &tags, &why);
  }

  dsvmi::Status s;
  // The engine only reads the index and the disk: both are shared by runs.
  static std::unique_ptr<dsvmi::Index> index = dsvmi::Index::from_bytes(world.index.data(), world.index.size(), &s);
  if (!index) abort();
  dsvmi::MemoryReader disk(world.image);
  dsvmi::VectorEventSink sink;
  dsvmi::InferenceOptions options;
  options.capture_data = true;
  options.pending_max_bytes = 1 << 20;
  options.journal_cache_blocks = 64;
  options.gate = world.gate.get();
  options.measure_latency = size % 2 == 1;
  auto engine = dsvmi::InferenceEngine::create(*index, disk, sink, options, &s);
  if (!engine) abort();

  Reader r{data, size};
  uint64_t seq = 1;
  std::vector<uint8_t> block(world.bs);
  for (int ops = 0; ops < 64 && r.n > 0; ops++) {
    flatbuffers::FlatBufferBuilder fbb(world.bs + 256);
    const uint8_t op = r.u8() % 6;
    if (op == 5) {
      // A live policy change over whatever the frames made of the model:
      // globs from a small alphabet (and raw bytes), any kind.
      static const char* kParts[] = {"/", "*", "**", "?", "a", "b", "[a-z]", "entry", "/a/**", "\\", "[!"};
      dsvmi::GatePolicy p;
      p.kind = static_cast<dsvmi::GatePolicyKind>(r.u8() % 3);
      for (int g = r.u8() % 3; g > 0; g--) {
        std::string glob;
        for (int k = r.u8() % 8; k > 0; k--) {
          uint8_t c = r.u8();
          glob += c < 200 ? std::string(kParts[c % 11]) : std::string(1, static_cast<char>(c));
        }
        p.globs.push_back(glob);
      }
      dsvmi::PolicyApplyResult res;
      (void)engine->set_policy(p, &res);
      continue;
    }
    uint64_t offset = 0, length = 0;
    dsvmi::fb::FrameKind kind = dsvmi::fb::FrameKind::Write;
    if (op == 0 || op == 3) {
      uint64_t b;
      if (op == 0) {
        b = world.interesting[r.u16() % world.interesting.size()];
        std::memcpy(block.data(), world.image.data() + b * world.bs, world.bs);
      } else {
        // A jbd2 block at a journal position: header + fuzzed body, whose
        // tags point at metadata blocks often enough to matter.
        uint32_t pos = 1 + r.u16() % static_cast<uint32_t>(world.journal.size() - 1);
        b = world.journal[pos];
        std::memset(block.data(), 0, world.bs);
        put_be32(block.data(), dsvmi::infer::kJbd2Magic);
        put_be32(block.data() + 4, 1 + r.u8() % 5);
        put_be32(block.data() + 8, r.u8() % 4);
        for (uint32_t t = 12; t + 16 <= world.bs && r.n > 0 && t < 12 + 16 * 8; t += 16) {
          put_be32(block.data() + t, static_cast<uint32_t>(world.interesting[r.u16() % world.interesting.size()]));
          put_be32(block.data() + t + 4, r.u8() & 0xF);
        }
      }
      // Overwrite a stretch of the block with input bytes.
      uint32_t at = r.u16() % world.bs, len = std::min<uint32_t>(r.u16() % 512, world.bs - at);
      for (uint32_t k = 0; k < len; k++) block[at + k] = r.u8();
      offset = b * world.bs;
      length = world.bs;
      auto payload = fbb.CreateVector(block.data(), block.size());
      fbb.Finish(dsvmi::fb::CreateFrame(fbb, seq, kind, offset, length, seq * 1000, payload), "DSVF");
      seq++;
    } else if (op == 1) {
      kind = dsvmi::fb::FrameKind::Flush;
      fbb.Finish(dsvmi::fb::CreateFrame(fbb, seq, kind, 0, 0, seq * 1000), "DSVF");
      seq++;
    } else if (op == 2) {
      kind = dsvmi::fb::FrameKind::Lost;
      uint64_t lost = 1 + r.u8() % 4;
      offset = uint64_t{r.u32()} % world.image.size();
      length = uint64_t{r.u32()} % (1 << 22);
      fbb.Finish(dsvmi::fb::CreateFrame(fbb, seq + lost - 1, kind, offset, length, seq * 1000, 0, lost, length, seq),
                 "DSVF");
      seq += lost;
    } else {
      // Sequence gap, then a zero write somewhere.
      seq += r.u8() % 3;
      kind = dsvmi::fb::FrameKind::WriteZeroes;
      offset = (uint64_t{r.u32()} % world.image.size()) & ~uint64_t{511};
      length = std::min<uint64_t>(r.u16() * 512ull, world.image.size() - offset);
      fbb.Finish(dsvmi::fb::CreateFrame(fbb, seq, kind, offset, length, seq * 1000), "DSVF");
      seq++;
    }
    std::vector<uint64_t> aligned((fbb.GetSize() + 7) / 8);
    std::memcpy(aligned.data(), fbb.GetBufferPointer(), fbb.GetSize());
    (void)engine->feed_bytes({reinterpret_cast<const std::byte*>(aligned.data()), fbb.GetSize()});
  }
  (void)engine->finish();
  std::string state;
  engine->dump_state(&state);
  std::string line;
  for (const dsvmi::Event& e : sink.events) dsvmi::event_to_json(e, &line);
  return 0;
}
