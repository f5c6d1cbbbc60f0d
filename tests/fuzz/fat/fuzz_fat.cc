// libFuzzer: the whole FAT crawler on a small arbitrary image (seeded with
// mkfs.vfat + mtools volumes, see make_seeds.sh). The sink reads every field
// it is given so sanitizers see any use of bad memory.
#include <cstddef>
#include <cstdint>

#include "dsvmi/fat.h"
#include "dsvmi/memory_reader.h"

namespace {

class TouchingSink : public dsvmi::CrawlSink {
 public:
  void begin_filesystem(const dsvmi::FilesystemInfo& fs) override { sum += fs.uuid.size() + fs.label.size(); }
  void inode(const dsvmi::Inode& n) override {
    sum += n.ino + n.size + uint64_t(n.mtime_ns) + uint64_t(n.crtime_ns);
    for (const auto& x : n.extents) sum += x.physical + x.length + x.logical;
  }
  void dir_entry(uint64_t dir, const dsvmi::DirEntry& e) override {
    sum += dir + e.ino;
    for (char c : e.name) sum += uint8_t(c);
  }
  void blocks(dsvmi::BlockKind, uint64_t first, uint64_t count, uint64_t owner, uint64_t) override {
    sum += first + count + owner;
  }
  void problem(const dsvmi::CrawlProblem& p) override { sum += p.what.size(); }
  void end_filesystem() override {}
  uint64_t sum = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dsvmi::MemoryReader disk(std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size));
  TouchingSink sink;
  dsvmi::FatCrawlOptions options;
  options.batch_bytes = 16 << 10;
  options.max_problems = 100;
  (void)dsvmi::crawl_fat(disk, 0, size, sink, options);
  return 0;
}
