// A CrawlSink for crawler fuzzers: it reads every field it is given, so
// sanitizers see any use of bad memory behind what a crawler reports.
#pragma once

#include <cstdint>

#include "dsvmi/crawl_sink.h"

namespace dsvmi::fuzzing {

class TouchingSink : public CrawlSink {
 public:
  void begin_filesystem(const FilesystemInfo& fs) override { sum += fs.uuid.size() + fs.label.size() + fs.block_size; }
  void inode(const Inode& n) override {
    sum += n.ino + n.size + n.symlink_target.size();
    for (const auto& x : n.extents) sum += x.physical + x.length;
    for (const auto& s : n.streams) sum += s.name.size() + s.size + s.extents.size();
  }
  void dir_entry(uint64_t dir, const DirEntry& e) override { sum += dir + e.ino + e.name.size(); }
  void blocks(BlockKind, uint64_t first, uint64_t count, uint64_t owner, uint64_t) override {
    sum += first + count + owner;
  }
  void problem(const CrawlProblem& p) override { sum += p.what.size(); }
  void end_filesystem() override {}
  uint64_t sum = 0;
};

}  // namespace dsvmi::fuzzing
