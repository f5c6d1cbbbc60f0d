// libFuzzer target: the index reader on arbitrary bytes. Whatever opens is
// exercised through every lookup path (records, listings, paths, reverse map,
// kind bitmaps, gate grains).
#include <roaring/roaring.h>

#include <cstddef>
#include <cstdint>

#include "dsvmi/index.h"
#include "dsvmi/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dsvmi::Status s;
  auto idx = dsvmi::Index::from_bytes(data, size, &s);
  if (!idx) return 0;
  for (const dsvmi::FsIndex& f : idx->filesystems()) {
    const dsvmi::FilesystemInfo info = f.info();
    std::vector<dsvmi::DirEntry> entries;
    std::vector<std::string> paths;
    dsvmi::Inode in;
    for (uint64_t ino = 0; ino < 64; ++ino) {
      (void)f.inode(ino, &in);
      (void)f.list(ino, &entries);
      (void)f.paths(ino, &paths);
    }
    uint64_t ino;
    (void)f.lookup("/a/b/c", &ino);
    dsvmi::BlockOwner o;
    for (uint64_t b = 0; b < std::min<uint64_t>(info.block_count, 4096); ++b) (void)f.owner(b, &o);
    (void)f.problems();
  }
  roaring_bitmap_t* grains = roaring_bitmap_create();
  dsvmi::GatePolicy policy{dsvmi::GatePolicyKind::MetadataAndGlobs, {"**/*"}};
  (void)dsvmi::build_gate_grains(*idx, policy, 1 << 20, grains, nullptr);
  roaring_bitmap_free(grains);
  return 0;
}
