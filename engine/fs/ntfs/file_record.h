// One file as the crawl sees it: the attributes of its base record and of
// every extension record its $ATTRIBUTE_LIST names, merged. Non-resident
// attributes split over several records arrive as pieces (each with its
// starting VCN); merging concatenates their runs and takes the sizes from
// the piece at VCN 0.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "attributes.h"
#include "record.h"
#include "runlist.h"

namespace dsvmi::ntfs {

struct Stream {
  bool present = false;
  bool non_resident = false;
  bool have_first_piece = false;  // the piece starting at VCN 0
  uint16_t flags = 0;             // attribute header flags (compressed, sparse)
  uint64_t data_size = 0, allocated_size = 0, initialized_size = 0;
  std::vector<Run> runs;
  std::string resident;           // the value, when resident
};

struct FileRecord {
  uint64_t record = 0;
  uint16_t sequence = 0;
  uint16_t flags = 0;       // record header flags
  uint16_t link_count = 0;  // record header
  bool have_standard_information = false;
  StandardInformation si;
  std::vector<FileName> names;
  std::map<std::string, Stream> data;  // $DATA by stream name ("" = the file's data)
  Stream index_root, index_allocation, index_bitmap;  // of $I30
  Stream reparse, volume_name, attribute_list;
};

// Limits per file (well above what Windows creates).
inline constexpr size_t kMaxRunsPerAttribute = 1u << 20;
inline constexpr size_t kMaxNamesPerFile = 1024;   // Windows allows 1024 hard links
inline constexpr size_t kMaxStreamsPerFile = 4096;

// Adds attribute `a` (from a record of this file) to `f`. Damage is
// appended to *problems (one line each) and the attribute, or what of it
// is consistent, is kept or dropped as the line says.
void add_attribute(FileRecord* f, const AttrView& a, uint64_t total_clusters, std::vector<std::string>* problems);

// After every record of the file: checks the merged runs of each
// non-resident stream (overlaps, loops) and that sizes are consistent.
void finish_streams(FileRecord* f, uint32_t cluster_size, std::vector<std::string>* problems);

}  // namespace dsvmi::ntfs
