// libFuzzer target for FAT's live driver: arbitrary frame streams over a real
// FAT32 image (fuzzed bytes written into its boot sector, FATs and
// directory sectors, writes and zeroes anywhere, flushes, lost ranges, quiet
// intervals by the frame clock and by idle(), policy changes) against an
// engine over that image and its crawl index, with a gate. Every consistency
// point re-reads the fuzzed metadata with the crawler: the driver must never
// crash, hang or grow without bound on any of it.
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "dsvmi/crawl.h"
#include "dsvmi/frame_generated.h"
#include "dsvmi/gate_writer.h"
#include "dsvmi/index.h"
#include "dsvmi/inference.h"
#include "dsvmi/memory_reader.h"

namespace {

constexpr uint32_t kSector = 512;

struct World {
  std::vector<std::byte> image;
  std::vector<uint8_t> index;
  std::vector<uint64_t> metadata;  // sectors: system area and directories
  std::unique_ptr<dsvmi::Gate> gate;
  bool ok = false;
};

std::vector<char> slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

World make_world() {
  World w;
  char dir[] = "/tmp/dsvmi-fuzz-fat-live-XXXXXX";
  if (!mkdtemp(dir)) return w;
  const std::string d = dir, img = d + "/fs.img", idx = d + "/fs.dsvx", src = d + "/src";
  const std::string cmd = "mkdir -p " + src + "/EFI/BOOT " + src + "/many && head -c 9000 /dev/zero | tr '\\0' x > " +
                          src + "/EFI/BOOT/BOOTX64.EFI && for i in $(seq 1 40); do echo $i > " + src +
                          "/many/entry_with_a_long_name_$i; done && truncate -s 40M " + img +
                          " && mkfs.vfat -F 32 -s 1 " + img + " >/dev/null 2>&1 && MTOOLS_SKIP_CHECK=1 mcopy -s -Q -i " +
                          img + " " + src + "/* ::/";
  if (std::system(cmd.c_str()) != 0) return w;
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
  for (uint64_t b = 0; b < fs.info().block_count; b++) {
    dsvmi::BlockOwner o;
    if (fs.owner(b, &o) && o.kind != dsvmi::BlockKind::Free && o.kind != dsvmi::BlockKind::FileData)
      w.metadata.push_back(b);
  }
  dsvmi::GateOptions go;
  go.disk_size = w.image.size();
  if (!dsvmi::Gate::create(d + "/gate", go, &w.gate)) return w;
  std::system(("rm -rf " + d).c_str());
  w.ok = fs.info().type == "vfat" && w.metadata.size() > 8;
  return w;
}

struct Reader {
  const uint8_t* p;
  size_t n;
  uint8_t u8() { return n ? (n--, *p++) : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | u8() << 8); }
  uint32_t u32() { return u16() | uint32_t{u16()} << 16; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World world = make_world();
  if (!world.ok) abort();  // the harness itself is broken: say so loudly
  dsvmi::Status s;
  static std::unique_ptr<dsvmi::Index> index = dsvmi::Index::from_bytes(world.index.data(), world.index.size(), &s);
  if (!index) abort();
  dsvmi::MemoryReader disk(world.image);
  dsvmi::VectorEventSink sink;
  dsvmi::InferenceOptions options;
  options.capture_data = true;
  options.pending_max_bytes = 1 << 20;
  options.gate = world.gate.get();
  options.read_back_new_data = size % 3 == 0;
  options.hash_globs = {"/EFI/**"};
  auto engine = dsvmi::InferenceEngine::create(*index, disk, sink, options, &s);
  if (!engine) abort();

  Reader r{data, size};
  uint64_t seq = 1, now = 1000000000;
  std::vector<uint8_t> sector(kSector);
  for (int ops = 0; ops < 48 && r.n > 0; ops++) {
    flatbuffers::FlatBufferBuilder fbb(kSector * 8 + 256);
    const uint8_t op = r.u8() % 7;
    now += uint64_t{r.u8()} * 4000000;  // up to ~1 s between frames: quiet points
    if (op == 5) {
      static const char* kGlobs[] = {"/EFI/**", "/many/*", "/**", "/x", "[!", "/many/entry_*_1?"};
      dsvmi::GatePolicy p;
      p.kind = static_cast<dsvmi::GatePolicyKind>(r.u8() % 3);
      if (p.kind == dsvmi::GatePolicyKind::MetadataAndGlobs) p.globs.push_back(kGlobs[r.u8() % 6]);
      dsvmi::PolicyApplyResult res;
      (void)engine->set_policy(p, &res);
      continue;
    }
    if (op == 6) {
      (void)engine->idle(now);
      continue;
    }
    uint64_t offset = 0, length = 0;
    if (op == 0) {
      // A metadata sector with a stretch of input bytes (or several sectors
      // of them: directory growth, a FAT rewritten).
      const uint64_t b = world.metadata[r.u16() % world.metadata.size()];
      const uint32_t count = 1 + r.u8() % 8;
      std::vector<uint8_t> bytes(uint64_t{count} * kSector);
      for (uint32_t k = 0; k < count && (b + k + 1) * kSector <= world.image.size(); k++)
        std::memcpy(bytes.data() + k * kSector, world.image.data() + (b + k) * kSector, kSector);
      const uint32_t at = r.u16() % bytes.size(), len = std::min<uint32_t>(r.u16() % 1024, bytes.size() - at);
      for (uint32_t k = 0; k < len; k++) bytes[at + k] = r.u8();
      offset = b * kSector;
      length = std::min<uint64_t>(bytes.size(), world.image.size() - offset);
      auto payload = fbb.CreateVector(bytes.data(), length);
      fbb.Finish(dsvmi::fb::CreateFrame(fbb, seq++, dsvmi::fb::FrameKind::Write, offset, length, now, payload), "DSVF");
    } else if (op == 1) {
      fbb.Finish(dsvmi::fb::CreateFrame(fbb, seq++, dsvmi::fb::FrameKind::Flush, 0, 0, now), "DSVF");
    } else if (op == 2) {
      const uint64_t lost = 1 + r.u8() % 4;
      offset = uint64_t{r.u32()} % world.image.size();
      length = uint64_t{r.u32()} % (1 << 22);
      fbb.Finish(dsvmi::fb::CreateFrame(fbb, seq + lost - 1, dsvmi::fb::FrameKind::Lost, offset, length, now, 0, lost,
                                        length, seq),
                 "DSVF");
      seq += lost;
    } else if (op == 3) {
      offset = (uint64_t{r.u32()} % world.image.size()) & ~uint64_t{kSector - 1};
      length = std::min<uint64_t>(r.u16() * uint64_t{kSector}, world.image.size() - offset);
      fbb.Finish(dsvmi::fb::CreateFrame(fbb, seq++, dsvmi::fb::FrameKind::WriteZeroes, offset, length, now), "DSVF");
    } else {
      // Data anywhere (a file's cluster, free space, an unaligned piece).
      offset = uint64_t{r.u32()} % world.image.size();
      length = std::min<uint64_t>(1 + r.u16() % 4096, world.image.size() - offset);
      std::vector<uint8_t> bytes(length);
      for (auto& c : bytes) c = r.u8();
      auto payload = fbb.CreateVector(bytes.data(), bytes.size());
      fbb.Finish(dsvmi::fb::CreateFrame(fbb, seq++, dsvmi::fb::FrameKind::Write, offset, length, now, payload), "DSVF");
    }
    std::vector<uint64_t> aligned((fbb.GetSize() + 7) / 8);
    std::memcpy(aligned.data(), fbb.GetBufferPointer(), fbb.GetSize());
    (void)engine->feed_bytes({reinterpret_cast<const std::byte*>(aligned.data()), fbb.GetSize()});
  }
  (void)engine->finish();
  std::string state, line;
  engine->dump_state(&state);
  for (const dsvmi::Event& e : sink.events) dsvmi::event_to_json(e, &line);
  return 0;
}
