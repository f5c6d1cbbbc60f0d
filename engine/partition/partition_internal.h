// Pieces of read_partition_table, one per table format.
#pragma once

#include <cstddef>
#include <span>

#include "dsvmi/partition.h"

namespace dsvmi::partition_detail {

// sector0: the first 512 bytes of the disk with a valid 0x55AA signature.
Status read_mbr(DiskReader& disk, std::span<const std::byte> sector0, PartitionTable* table);
Status read_gpt(DiskReader& disk, PartitionTable* table);

}  // namespace dsvmi::partition_detail
