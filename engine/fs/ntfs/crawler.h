// The NTFS crawler's orchestration: boot sector, the $MFT's own record, then
// every File Record in batched reads, files with attribute lists after
// that, the names once every directory is known, and finally each
// directory's $I30 index against those names. boot.cc, record.cc,
// runlist.cc, attributes.cc, index_node.cc and file_record.cc hold the
// format; this file holds the walk.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "boot.h"
#include "dsvmi/crawl_sink.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/ntfs.h"
#include "file_record.h"

namespace dsvmi::ntfs {

// Records below this (except the root) are NTFS's own files; so is anything
// in $Extend. They are not shown as files (docs/ntfs.md).
inline constexpr uint64_t kFirstUserRecord = 24;
inline constexpr uint64_t kMftRecord = 0, kVolumeRecord = 3, kRootRecord = 5, kExtendRecord = 11;
// Attribute lists are at most 256 KiB on Windows; extension records per file
// and read-back budgets are bounded likewise.
inline constexpr uint64_t kMaxAttributeListBytes = 256u << 10;
inline constexpr size_t kMaxExtensionRecords = 4096;
inline constexpr uint64_t kMaxSmallStreamBytes = 64u << 10;  // reparse data, Interix files, $I30 bitmaps: read whole
inline constexpr uint64_t kMaxIndexBitmapBytes = 1u << 20;

class Crawler {
 public:
  Crawler(DiskReader& disk, uint64_t offset, uint64_t size, CrawlSink& sink, const NtfsCrawlOptions& options,
          NtfsCrawlStats& stats)
      : disk_(disk), offset_(offset), size_(size), sink_(sink), options_(options), stats_(stats) {}
  Status run();

 private:
  // A name as $FILE_NAME gives it, waiting for its parent to be known.
  struct PendingName {
    uint64_t parent_ref;
    uint64_t child_ref;  // record | sequence << 48
    FileType type;
    bool hidden;         // an NTFS system file: in the index, not shown
    std::string name;
  };
  // A directory's $I30 index, read after the MFT.
  struct IndexJob {
    uint64_t record;
    std::string root;            // the $INDEX_ROOT value
    std::vector<Run> runs;       // $INDEX_ALLOCATION
    uint64_t allocation_bytes = 0;
    std::string bitmap;          // $BITMAP:$I30
  };

  Status read_boot();
  Status read_mft_record0();
  Status read_record(uint64_t record, std::vector<unsigned char>* buf, RecordHeader* h,
                     std::vector<AttrView>* attrs, bool count);
  void crawl_mft();
  void process_record(uint64_t record, unsigned char* p);
  void resolve_attribute_list(FileRecord* f);
  void finish_file(FileRecord& f);
  void report_system_file(const FileRecord& f);
  bool read_stream(const Stream& s, uint64_t max_bytes, std::string* out);
  bool plan_read(const std::vector<Run>& runs, uint64_t off, uint64_t len, unsigned char* out,
                 std::vector<ReadRequest>* reqs) const;
  void emit_names();
  void check_indexes();
  void check_index(const IndexJob& job, std::vector<PendingName>* found);
  void extents_of(const std::vector<Run>& runs, uint64_t size, std::vector<Extent>* out) const;
  void problem(uint64_t ino, uint64_t cluster, std::string what);
  void problems(uint64_t record, std::vector<std::string>& lines);

  DiskReader& disk_;
  uint64_t offset_, size_;
  CrawlSink& sink_;
  const NtfsCrawlOptions& options_;
  NtfsCrawlStats& stats_;

  Geometry g_;
  std::vector<std::string> warnings_;
  std::vector<Run> mft_runs_;
  uint64_t mft_records_ = 0;
  uint64_t extension_reads_left_ = 0;
  std::vector<uint64_t> deferred_;                   // base records with an attribute list
  std::unordered_set<uint64_t> claimed_extensions_;  // each extension record belongs to one base
  std::unordered_map<uint64_t, uint16_t> directories_;  // record -> sequence, in use
  std::vector<PendingName> names_;
  std::vector<IndexJob> index_jobs_;
  std::string label_;
};

}  // namespace dsvmi::ntfs
