// A CrawlSink that records everything a crawler reports, for tests that
// compare a crawl against an outside oracle (debugfs, The Sleuth Kit, mtools).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "dsvmi/crawl_sink.h"

namespace dsvmi::testing {

struct RecordedRun {
  BlockKind kind;
  uint64_t first, count, owner;
};

class RecordingSink : public CrawlSink {
 public:
  void begin_filesystem(const FilesystemInfo& fs) override { info = fs; begins++; }
  void inode(const Inode& n) override {
    if (!inodes.emplace(n.ino, n).second) duplicate_inodes++;
  }
  void dir_entry(uint64_t dir, const DirEntry& e) override { entries.push_back({dir, e}); }
  void blocks(BlockKind kind, uint64_t first, uint64_t count, uint64_t owner, uint64_t) override {
    runs.push_back({kind, first, count, owner});
  }
  void problem(const CrawlProblem& p) override { problems.push_back(p); }
  void end_filesystem() override { ends++; }

  std::string problems_text() const {
    std::string s;
    for (const CrawlProblem& p : problems) s += p.what + "\n";
    return s;
  }

  FilesystemInfo info;
  int begins = 0, ends = 0, duplicate_inodes = 0;
  std::map<uint64_t, Inode> inodes;
  std::vector<std::pair<uint64_t, DirEntry>> entries;
  std::vector<RecordedRun> runs;
  std::vector<CrawlProblem> problems;
};

// Path ("/a/b") -> ino from a recorded crawl: every name of every file
// (bounded walk: a hostile tree with a cycle cannot hang a test).
inline std::map<std::string, uint64_t> crawl_paths(const RecordingSink& sink, uint64_t root) {
  std::multimap<uint64_t, const DirEntry*> by_parent;
  for (const auto& e : sink.entries) by_parent.emplace(e.first, &e.second);
  std::map<std::string, uint64_t> out;
  std::vector<std::pair<uint64_t, std::string>> stack{{root, ""}};
  size_t guard = 0;
  while (!stack.empty() && guard++ < 1000000) {
    auto [dir, prefix] = stack.back();
    stack.pop_back();
    auto range = by_parent.equal_range(dir);
    for (auto it = range.first; it != range.second; ++it) {
      const std::string path = prefix + "/" + it->second->name;
      out[path] = it->second->ino;
      if (it->second->type == FileType::Directory) stack.push_back({it->second->ino, path});
    }
  }
  return out;
}

}  // namespace dsvmi::testing
