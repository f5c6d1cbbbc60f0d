// Merging a file's attributes (docs/ntfs.md, "Attribute lists").
#include "file_record.h"

#include <algorithm>

namespace dsvmi::ntfs {
namespace {

std::string stream_label(uint32_t type, const std::string& name) {
  const char* t = type == kAttrData ? "$DATA" : type == kAttrIndexAllocation ? "$INDEX_ALLOCATION"
                  : type == kAttrIndexRoot ? "$INDEX_ROOT" : type == kAttrBitmap ? "$BITMAP"
                  : type == kAttrReparsePoint ? "$REPARSE_POINT" : type == kAttrAttributeList ? "$ATTRIBUTE_LIST"
                  : "attribute";
  return name.empty() ? t : std::string(t) + ":" + name;
}

void add_piece(Stream* s, const AttrView& a, uint64_t total_clusters, std::vector<std::string>* problems) {
  const std::string label = stream_label(a.type, a.name);
  if (!a.non_resident) {
    if (s->present) {
      problems->push_back(label + " appears twice; the second is ignored");
      return;
    }
    s->present = true;
    s->flags = a.flags;
    s->resident.assign(reinterpret_cast<const char*>(a.value), a.value_length);
    s->data_size = s->allocated_size = s->initialized_size = a.value_length;
    return;
  }
  if (s->present && !s->non_resident) {
    problems->push_back(label + " is both resident and non-resident; the non-resident piece is ignored");
    return;
  }
  s->present = true;
  s->non_resident = true;
  if (a.start_vcn == 0) {
    if (s->have_first_piece) {
      problems->push_back(label + " has two pieces at VCN 0; the second is ignored");
      return;
    }
    s->have_first_piece = true;
    s->flags = a.flags;
    s->data_size = a.data_size;
    s->allocated_size = a.allocated_size;
    s->initialized_size = a.initialized_size;
  }
  const size_t before = s->runs.size();
  Status st = decode_runlist(a.runlist, a.runlist_length, a.start_vcn, total_clusters, kMaxRunsPerAttribute, &s->runs);
  if (!st) problems->push_back(label + ": " + st.message());
  // The piece must end where its header says (last_vcn); a longer one would
  // claim VCNs that another piece owns.
  uint64_t end = a.start_vcn;
  for (size_t i = before; i < s->runs.size(); ++i) end = s->runs[i].vcn + s->runs[i].length;
  if (st && s->runs.size() > before && end != a.last_vcn + 1)
    problems->push_back(label + ": piece at VCN " + std::to_string(a.start_vcn) + " ends at VCN " +
                        std::to_string(end) + ", its header says " + std::to_string(a.last_vcn + 1));
}

}  // namespace

void add_attribute(FileRecord* f, const AttrView& a, uint64_t total_clusters, std::vector<std::string>* problems) {
  switch (a.type) {
    case kAttrStandardInformation:
      if (f->have_standard_information) return;
      if (a.non_resident || !decode_standard_information(a.value, a.value_length, &f->si)) {
        problems->push_back("malformed $STANDARD_INFORMATION");
        return;
      }
      f->have_standard_information = true;
      return;
    case kAttrFileName: {
      FileName fn;
      if (a.non_resident || !decode_file_name(a.value, a.value_length, &fn)) {
        problems->push_back("malformed $FILE_NAME");
        return;
      }
      if (f->names.size() >= kMaxNamesPerFile) {
        problems->push_back("more than " + std::to_string(kMaxNamesPerFile) + " names; the rest are ignored");
        return;
      }
      f->names.push_back(std::move(fn));
      return;
    }
    case kAttrData:
      if (!f->data.count(a.name) && f->data.size() >= kMaxStreamsPerFile) {
        problems->push_back("more than " + std::to_string(kMaxStreamsPerFile) + " data streams; the rest are ignored");
        return;
      }
      add_piece(&f->data[a.name], a, total_clusters, problems);
      return;
    case kAttrIndexRoot:
      if (a.name == "$I30") add_piece(&f->index_root, a, total_clusters, problems);
      return;
    case kAttrIndexAllocation:
      if (a.name == "$I30") add_piece(&f->index_allocation, a, total_clusters, problems);
      return;
    case kAttrBitmap:
      if (a.name == "$I30" || (f->record == 0 && a.name.empty())) add_piece(&f->index_bitmap, a, total_clusters, problems);
      return;
    case kAttrReparsePoint: add_piece(&f->reparse, a, total_clusters, problems); return;
    case kAttrVolumeName: add_piece(&f->volume_name, a, total_clusters, problems); return;
    case kAttrAttributeList: add_piece(&f->attribute_list, a, total_clusters, problems); return;
    default: return;
  }
}

void finish_streams(FileRecord* f, uint32_t cluster_size, std::vector<std::string>* problems) {
  auto finish = [&](Stream& s, const std::string& label) {
    if (!s.present || !s.non_resident) return;
    if (!s.have_first_piece) {
      problems->push_back(label + " has no piece at VCN 0; it is ignored");
      s = Stream{};
      return;
    }
    Status st = check_runs(&s.runs);
    if (!st) problems->push_back(label + ": " + st.message());
    // Sizes beyond the clusters the runs cover (sparse runs included) cannot
    // be read: the stream is cut to what is mapped.
    uint64_t covered = 0;
    for (const Run& r : s.runs)
      if (r.vcn == covered) covered += r.length;
    const uint64_t limit = covered >= (UINT64_MAX / cluster_size) ? UINT64_MAX : covered * cluster_size;
    if (s.data_size > s.allocated_size || s.data_size > limit) {
      problems->push_back(label + " claims " + std::to_string(s.data_size) + " bytes but " +
                          std::to_string(std::min(s.allocated_size, limit)) + " are allocated and mapped; cut to that");
      s.data_size = std::min(s.allocated_size, limit);
    }
    if (s.initialized_size > s.data_size) s.initialized_size = s.data_size;
  };
  for (auto& [name, s] : f->data) finish(s, stream_label(kAttrData, name));
  finish(f->index_allocation, "$INDEX_ALLOCATION:$I30");
  finish(f->index_bitmap, "$BITMAP");
  finish(f->reparse, "$REPARSE_POINT");
  finish(f->attribute_list, "$ATTRIBUTE_LIST");
}

}  // namespace dsvmi::ntfs
