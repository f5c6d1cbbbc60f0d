#include "dsvmi/crawl.h"

#include <chrono>

#include "dsvmi/ext4.h"
#include "dsvmi/fat.h"
#include "dsvmi/index.h"
#include "dsvmi/index_builder.h"
#include "dsvmi/ntfs.h"

namespace dsvmi {
namespace {

// Forwards to the builder, counting what the summary shows and reporting
// progress by inode number (crawlers stream inodes in on-disk order).
class CountingSink : public CrawlSink {
 public:
  CountingSink(CrawlSink& next, const CrawlOptions& options, size_t fs_number)
      : next_(next), options_(options), fs_number_(fs_number) {}
  void begin_filesystem(const FilesystemInfo& fs) override {
    began = true;
    inode_count_ = fs.inode_count;
    fs_ = fs;
    next_.begin_filesystem(fs);
  }
  void inode(const Inode& in) override {
    ++out.inodes;
    out.files += in.type == FileType::Regular;
    out.directories += in.type == FileType::Directory;
    if (options_.progress && inode_count_ && (out.inodes & 4095) == 0)
      options_.progress(fs_number_, double(in.ino) / double(inode_count_));
    next_.inode(in);
  }
  void dir_entry(uint64_t dir, const DirEntry& e) override { next_.dir_entry(dir, e); }
  void blocks(BlockKind k, uint64_t first, uint64_t count, uint64_t owner, uint64_t logical) override {
    next_.blocks(k, first, count, owner, logical);
  }
  void problem(const CrawlProblem& p) override {
    ++out.problems;
    next_.problem(p);
  }
  void end_filesystem() override { next_.end_filesystem(); }

  CrawledFilesystem out;
  FilesystemInfo fs_;
  bool began = false;  // the file system is in the index

 private:
  CrawlSink& next_;
  const CrawlOptions& options_;
  size_t fs_number_;
  uint64_t inode_count_ = 0;
};

bool is_ext(const std::string& fs) { return fs == "ext2" || fs == "ext3" || fs == "ext4"; }
bool is_fat(const std::string& fs) { return fs == "vfat"; }
bool is_ntfs(const std::string& fs) { return fs == "ntfs"; }

}  // namespace

Status crawl_disk(DiskReader& disk, const CrawlOptions& options, CrawlSummary* summary) {
  const auto t0 = std::chrono::steady_clock::now();
  *summary = {};
  summary->disk = disk.describe();
  summary->disk_size = disk.size();
  Status s = read_partition_table(disk, &summary->table);
  if (!s) return s;
  IndexBuilder builder({disk.describe(), disk.size()}, &disk);
  std::vector<bool> in_index;
  for (const Partition& p : summary->table.partitions) {
    if (!is_ext(p.filesystem) && !is_fat(p.filesystem) && !is_ntfs(p.filesystem)) {
      summary->skipped.push_back("partition " + std::to_string(p.number) + ": " +
                                 (p.filesystem.empty() ? "unknown contents" : p.filesystem));
      continue;
    }
    CountingSink sink(builder, options, summary->filesystems.size());
    Status cs;
    uint64_t metadata_blocks = 0, bytes_read = 0;
    if (is_ntfs(p.filesystem)) {
      NtfsCrawlStats stats;
      cs = crawl_ntfs(disk, p.offset, p.size, sink, {}, &stats);
      bytes_read = stats.bytes_read;
    } else if (is_fat(p.filesystem)) {
      FatCrawlStats stats;
      cs = crawl_fat(disk, p.offset, p.size, sink, {}, &stats);
      bytes_read = stats.bytes_read;
    } else {
      Ext4CrawlStats stats;
      cs = crawl_ext4(disk, p.offset, p.size, sink, {}, &stats);
      metadata_blocks = stats.metadata_blocks;
      bytes_read = stats.bytes_read;
    }
    CrawledFilesystem fs = sink.out;
    fs.partition = p.number;
    fs.type = sink.fs_.type.empty() ? p.filesystem : sink.fs_.type;
    fs.uuid = sink.fs_.uuid;
    fs.label = sink.fs_.label;
    fs.offset = p.offset;
    fs.size = p.size;
    fs.block_size = sink.fs_.block_size;
    fs.metadata_blocks = metadata_blocks;
    fs.bytes_read = bytes_read;
    fs.status = cs;
    in_index.push_back(sink.began);
    summary->inodes += fs.inodes;
    summary->filesystems.push_back(fs);
    if (options.progress) options.progress(summary->filesystems.size() - 1, 1.0);
  }
  std::vector<uint8_t> bytes;
  if (!(s = builder.finish(&bytes))) return s;
  // The builder's count (union of every metadata kind) is the one the index
  // and the gate use; prefer it over the crawler's per-run sum.
  Status os;
  auto idx = Index::view_bytes(bytes.data(), bytes.size(), &os);
  if (!idx) return Status::error("internal: the index just built does not verify: " + os.message());
  size_t k = 0;
  for (size_t i = 0; i < summary->filesystems.size(); ++i) {
    if (in_index[i] && k < idx->filesystems().size())
      summary->filesystems[i].metadata_blocks = idx->filesystems()[k++].metadata_blocks();
  }
  if (!options.index_path.empty() && !(s = write_index_file(options.index_path, bytes))) return s;
  summary->index_bytes = bytes.size();
  summary->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return Status::ok();
}

}  // namespace dsvmi
