// Runlist decoding and consistency (docs/ntfs.md, "Runlists").
#include "runlist.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <string>

namespace dsvmi::ntfs {

Status decode_runlist(const unsigned char* p, size_t n, uint64_t start_vcn, uint64_t total_clusters,
                      size_t max_runs, std::vector<Run>* runs) {
  size_t at = 0;
  uint64_t vcn = start_vcn;
  int64_t lcn = 0;
  while (at < n) {
    const unsigned char head = p[at];
    if (head == 0) return Status::ok();
    const unsigned len_bytes = head & 0x0F, off_bytes = head >> 4;
    if (len_bytes == 0 || len_bytes > 8 || off_bytes > 8)
      return Status::error("runlist: bad run header 0x" + std::to_string(head) + " at byte " + std::to_string(at));
    if (1 + len_bytes + off_bytes > n - at) return Status::error("runlist: run at byte " + std::to_string(at) + " is cut off");
    uint64_t length = 0;
    for (unsigned i = 0; i < len_bytes; ++i) length |= uint64_t(p[at + 1 + i]) << (8 * i);
    if (len_bytes == 8 && (length >> 63)) length = 0;  // a negative length
    if (length == 0) return Status::error("runlist: run of 0 clusters at byte " + std::to_string(at));
    if (runs->size() >= max_runs) return Status::error("runlist: more than " + std::to_string(max_runs) + " runs");
    if (length > UINT64_MAX - vcn) return Status::error("runlist: VCN overflow at byte " + std::to_string(at));
    Run r;
    r.vcn = vcn;
    r.length = length;
    if (off_bytes == 0) {
      r.sparse = true;
    } else {
      uint64_t delta = 0;
      for (unsigned i = 0; i < off_bytes; ++i) delta |= uint64_t(p[at + 1 + len_bytes + i]) << (8 * i);
      if (off_bytes < 8 && (delta >> (8 * off_bytes - 1)) & 1) delta |= ~uint64_t(0) << (8 * off_bytes);
      // Two's complement addition without signed overflow.
      lcn = int64_t(uint64_t(lcn) + delta);
      if (lcn < 0 || uint64_t(lcn) >= total_clusters || length > total_clusters - uint64_t(lcn))
        return Status::error("runlist: run of " + std::to_string(length) + " clusters at LCN " +
                             std::to_string(lcn) + " lies outside the volume's " + std::to_string(total_clusters) +
                             " clusters");
      r.lcn = uint64_t(lcn);
    }
    runs->push_back(r);
    vcn += length;
    at += 1 + len_bytes + off_bytes;
  }
  return Status::error("runlist: no end marker");
}

Status check_runs(std::vector<Run>* runs) {
  std::stable_sort(runs->begin(), runs->end(), [](const Run& a, const Run& b) { return a.vcn < b.vcn; });
  for (size_t i = 1; i < runs->size(); ++i) {
    const Run& a = (*runs)[i - 1];
    if ((*runs)[i].vcn < a.vcn + a.length) {
      Status s = Status::error("runlist: pieces overlap at VCN " + std::to_string((*runs)[i].vcn));
      runs->resize(i);
      return s;
    }
  }
  // In VCN order, each run's clusters must be free of every earlier run's:
  // an interval map keyed by first LCN finds the first that is not.
  std::map<uint64_t, uint64_t> taken;  // first LCN -> end LCN
  for (size_t i = 0; i < runs->size(); ++i) {
    const Run& r = (*runs)[i];
    if (r.sparse) continue;
    auto next = taken.lower_bound(r.lcn);
    const bool hits_next = next != taken.end() && next->first < r.lcn + r.length;
    const bool hits_prev = next != taken.begin() && std::prev(next)->second > r.lcn;
    if (hits_next || hits_prev) {
      Status s = Status::error("runlist: VCN " + std::to_string(r.vcn) +
                               " maps clusters an earlier run maps too (a loop)");
      runs->resize(i);
      return s;
    }
    taken.emplace(r.lcn, r.lcn + r.length);
  }
  return Status::ok();
}

uint64_t mapped_clusters(const std::vector<Run>& runs) {
  uint64_t n = 0;
  for (const Run& r : runs)
    if (!r.sparse) n += r.length;
  return n;
}

}  // namespace dsvmi::ntfs
