// IndexBuilder: a CrawlSink that turns a crawl into an index file.
//
// It keeps compact records (not the model objects) while the crawler streams,
// sorts them once per file system, and serializes them with FlatBuffers.
// Memory while crawling is about the size of the index itself.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dsvmi/crawl_sink.h"
#include "dsvmi/disk_reader.h"
#include "dsvmi/status.h"

namespace dsvmi {

// At most this many CrawlProblems are stored per file system; the rest are
// counted (a hostile image can report one per block).
inline constexpr size_t kMaxStoredProblems = 1000;

struct IndexSource {
  std::string description;  // e.g. DiskReader::describe()
  uint64_t disk_size = 0;
};

class IndexBuilder : public CrawlSink {
 public:
  // `disk`, if given, is read (superblock only) at end_filesystem to record
  // the identity that later detects a stale index.
  IndexBuilder(const IndexSource& source, DiskReader* disk);
  ~IndexBuilder() override;

  void begin_filesystem(const FilesystemInfo& fs) override;
  void inode(const Inode& inode) override;
  void dir_entry(uint64_t dir_ino, const DirEntry& entry) override;
  void blocks(BlockKind kind, uint64_t first, uint64_t count, uint64_t owner_ino,
              uint64_t logical) override;
  void problem(const CrawlProblem& problem) override;
  void end_filesystem() override;

  // Serializes everything seen so far. Errors: limits of the format (block or
  // inode numbers above 2^32, an index above 2 GiB).
  Status finish(std::vector<uint8_t>* out);
  // finish() then write_index_file().
  Status write(const std::string& path, size_t* bytes_written);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Writes index bytes to `path` via a temporary file and rename, so a reader
// never maps a half-written index.
Status write_index_file(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace dsvmi
