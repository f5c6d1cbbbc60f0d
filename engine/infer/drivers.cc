// The table of live file-system drivers (fs_driver.h): one line per type.
#include "../fs/ext4/live/ext4_live.h"
#include "../fs/fat/live/fat_live.h"
#include "fs_driver.h"

namespace dsvmi::infer {

std::unique_ptr<FsDriver> make_fs_driver(EngineContext& ctx, const FsIndex& index, DiskReader& disk,
                                         uint32_t partition, std::string* why) {
  const std::string& type = index.info().type;
  if (type == "ext2" || type == "ext3" || type == "ext4") {
    return std::make_unique<Ext4Live>(ctx, index, disk, partition);
  }
  if (type == "vfat") return std::make_unique<FatLive>(ctx, index, disk, partition);
  *why = "no live driver for " + type;
  return nullptr;
}

}  // namespace dsvmi::infer
