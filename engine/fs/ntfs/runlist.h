// Runlists (mapping pairs): how a non-resident attribute's virtual clusters
// (VCN) map to the volume's logical clusters (LCN). Each run is a header byte
// (sizes of the two fields), a length and a signed LCN delta; a run with no
// delta is sparse (reads as zeroes, no clusters).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dsvmi/status.h"

namespace dsvmi::ntfs {

struct Run {
  uint64_t vcn = 0;
  uint64_t length = 0;  // clusters
  uint64_t lcn = 0;
  bool sparse = false;
};

// Decodes the runlist at p[0..n) of an attribute piece starting at
// `start_vcn`, appending to *runs. Every non-sparse run must lie inside the
// volume's `total_clusters`; VCNs must not overflow; at most `max_runs` runs
// in total. On error *runs holds the runs before the bad one.
Status decode_runlist(const unsigned char* p, size_t n, uint64_t start_vcn, uint64_t total_clusters,
                      size_t max_runs, std::vector<Run>* runs);

// Sorts runs of the pieces of one attribute by VCN and checks that they do
// not overlap in VCN (pieces that both claim a VCN) nor in LCN (two VCNs on
// one cluster: a loop). Returns an error describing the first conflict; the
// runs are then cut to the consistent prefix.
Status check_runs(std::vector<Run>* runs);

// Clusters mapped (non-sparse) by the runs.
uint64_t mapped_clusters(const std::vector<Run>& runs);

}  // namespace dsvmi::ntfs
