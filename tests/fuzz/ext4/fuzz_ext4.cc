// libFuzzer: the ext4 crawler on a small arbitrary image (seeded with valid
// mkfs.ext4 images, see make_seeds.sh). The sink reads every field it is given
// so sanitizers see any use of bad memory.
#include <cstddef>
#include <cstdint>

#include "dsvmi/ext4.h"
#include "dsvmi/memory_reader.h"

namespace {

class TouchingSink : public dsvmi::CrawlSink {
 public:
  void begin_filesystem(const dsvmi::FilesystemInfo& fs) override { sum += fs.uuid.size() + fs.block_size; }
  void inode(const dsvmi::Inode& n) override {
    sum += n.ino + n.size + n.symlink_target.size();
    for (const auto& x : n.extents) sum += x.physical + x.length;
  }
  void dir_entry(uint64_t dir, const dsvmi::DirEntry& e) override { sum += dir + e.ino + e.name.size(); }
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
  dsvmi::Ext4CrawlOptions options;
  options.batch_bytes = 16 << 10;
  options.max_problems = 100;
  (void)dsvmi::crawl_ext4(disk, 0, size, sink, options);
  return 0;
}
