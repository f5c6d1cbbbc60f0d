// The NTFS crawl: boot sector, the $MFT's record 0 (its runlist is where
// the MFT lies, fragments and all), every File Record in batched reads,
// files with attribute lists after the scan (their extension records read
// back, each claimed by one base record only), the names once every
// directory is known, then the $I30 indexes against those names. Work is
// bounded by the MFT, whose size is bounded by the volume. See docs/ntfs.md.
#include "crawler.h"

#include <algorithm>
#include <tuple>

#include "index_node.h"
#include "le.h"
#include "mode.h"
#include "names.h"
#include "ntfs_time.h"

namespace dsvmi::ntfs {
namespace {

constexpr uint32_t kMaxExtentClusters = 1u << 30;  // the index keeps extents below 2^31 blocks
constexpr uint64_t kMaxRecords = 0xFFFFFFFF;        // the index's 32-bit inode numbers

uint64_t make_ref(uint64_t record, uint16_t sequence) { return record | uint64_t(sequence) << 48; }

std::span<std::byte> bytes_of(unsigned char* p, size_t n) {
  return std::span<std::byte>(reinterpret_cast<std::byte*>(p), n);
}

// What the clusters of an NTFS system file are to the reverse map.
BlockKind system_kind(uint64_t record) {
  switch (record) {
    case 0: return BlockKind::InodeTable;  // $MFT
    case 2: return BlockKind::Journal;     // $LogFile
    case 6: return BlockKind::BlockBitmap; // $Bitmap
    case 7: return BlockKind::Superblock;  // $Boot
    default: return BlockKind::Reserved;
  }
}

std::string hex16(uint64_t v) {
  static const char* digits = "0123456789ABCDEF";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[size_t(i)] = digits[v & 15];
  return s;
}

}  // namespace

void Crawler::problem(uint64_t ino, uint64_t cluster, std::string what) {
  ++stats_.problems;
  if (stats_.problems < options_.max_problems) {
    sink_.problem({ino, cluster, "ntfs: " + std::move(what)});
  } else if (stats_.problems == options_.max_problems) {
    sink_.problem({0, 0, "ntfs: more than " + std::to_string(options_.max_problems) +
                             " problems; no more are reported"});
  }
}

void Crawler::problems(uint64_t record, std::vector<std::string>& lines) {
  for (std::string& l : lines) problem(record, 0, "record " + std::to_string(record) + ": " + std::move(l));
  lines.clear();
}

bool Crawler::plan_read(const std::vector<Run>& runs, uint64_t off, uint64_t len, unsigned char* out,
                        std::vector<ReadRequest>* reqs) const {
  const uint64_t cs = g_.cluster_size;
  while (len > 0) {
    const uint64_t vcn = off / cs;
    auto it = std::upper_bound(runs.begin(), runs.end(), vcn, [](uint64_t v, const Run& r) { return v < r.vcn; });
    if (it == runs.begin()) return false;
    const Run& r = *(it - 1);
    if (vcn >= r.vcn + r.length) return false;
    const uint64_t within = off - r.vcn * cs;
    const uint64_t n = std::min(len, r.length * cs - within);
    if (r.sparse) {
      std::fill(out, out + n, 0);
    } else {
      reqs->push_back({offset_ + r.lcn * cs + within, bytes_of(out, n)});
    }
    out += n;
    off += n;
    len -= n;
  }
  return true;
}

bool Crawler::read_stream(const Stream& s, uint64_t max_bytes, std::string* out) {
  if (!s.non_resident) {
    *out = s.resident.substr(0, max_bytes);
    return true;
  }
  const uint64_t n = std::min(s.data_size, max_bytes);
  out->assign(n, '\0');
  std::vector<ReadRequest> reqs;
  if (!plan_read(s.runs, 0, n, reinterpret_cast<unsigned char*>(out->data()), &reqs)) return false;
  stats_.bytes_read += n;
  return bool(disk_.read_batch(reqs));
}

Status Crawler::read_boot() {
  if (size_ < 512) return Status::error("ntfs: partition smaller than one sector");
  std::vector<unsigned char> boot(512);
  stats_.bytes_read += boot.size();
  Status s = disk_.read(offset_, bytes_of(boot.data(), boot.size()));
  if (!s) return s;
  if (!(s = decode_boot(boot.data(), boot.size(), size_, &g_))) return s;
  stats_.cluster_size = g_.cluster_size;
  stats_.record_size = g_.record_size;
  return Status::ok();
}

// Reads File Record `record` through the MFT's runs (as known so far).
Status Crawler::read_record(uint64_t record, std::vector<unsigned char>* buf, RecordHeader* h,
                            std::vector<AttrView>* attrs, bool count) {
  buf->assign(g_.record_size, 0);
  std::vector<ReadRequest> reqs;
  if (record >= mft_records_ && !mft_runs_.empty())
    return Status::error("record " + std::to_string(record) + " lies past the MFT's " +
                         std::to_string(mft_records_) + " records");
  if (!plan_read(mft_runs_, record * g_.record_size, g_.record_size, buf->data(), &reqs))
    return Status::error("record " + std::to_string(record) + " is not mapped by the $MFT's runlist");
  stats_.bytes_read += g_.record_size;
  Status s = disk_.read_batch(reqs);
  if (!s) return s;
  const FixupResult fx = apply_fixups(buf->data(), buf->size(), "FILE");
  if (fx != FixupResult::Ok) {
    if (count && fx == FixupResult::Torn) ++stats_.torn_records;
    return Status::error("record " + std::to_string(record) + ": " + fixup_result_text(fx));
  }
  attrs->clear();
  s = parse_record(buf->data(), buf->size(), h, attrs);
  if (!s) return Status::error("record " + std::to_string(record) + ": " + s.message());
  return Status::ok();
}

// Record 0 describes the MFT itself. Its first $DATA piece maps at least the
// MFT's first records (mkntfs and Windows keep the extension records of
// $MFT there), so extension records can be read through the runs known so
// far. $MFTMirr holds a copy of record 0 to fall back on.
Status Crawler::read_mft_record0() {
  std::vector<unsigned char> buf;
  RecordHeader h;
  std::vector<AttrView> attrs;
  const uint64_t clusters = (g_.record_size + g_.cluster_size - 1) / g_.cluster_size;
  Status s;
  for (uint64_t lcn : {g_.mft_lcn, g_.mftmirr_lcn}) {
    mft_runs_ = {Run{0, clusters, lcn, false}};
    mft_records_ = 1;
    if (lcn + clusters > g_.total_clusters) {
      s = Status::error("record 0 at cluster " + std::to_string(lcn) + " lies past the volume");
      continue;
    }
    if ((s = read_record(0, &buf, &h, &attrs, true))) break;
    warnings_.push_back("$MFT record 0 at cluster " + std::to_string(lcn) + ": " + s.message());
  }
  if (!s) return Status::error("ntfs: cannot read the $MFT's own record: " + s.message());
  if (mft_runs_[0].lcn != g_.mft_lcn) warnings_.push_back("$MFT record 0 read from $MFTMirr");
  if (!(h.flags & kRecordInUse) || h.base_ref != 0) return Status::error("ntfs: $MFT record 0 is not an in-use base record");
  FileRecord mft;
  mft.record = 0;
  mft.sequence = h.sequence;
  std::vector<std::string> lines;
  for (const AttrView& a : attrs) add_attribute(&mft, a, g_.total_clusters, &lines);
  Stream& data = mft.data[""];
  if (!data.non_resident || data.runs.empty())
    return Status::error("ntfs: the $MFT's record has no non-resident $DATA");
  // With the first piece's runs, extension records of $MFT become readable.
  std::vector<Run> first = data.runs;
  (void)check_runs(&first);
  mft_runs_ = first;
  mft_records_ = std::min<uint64_t>(mapped_clusters(first) * g_.cluster_size / g_.record_size, kMaxRecords);
  extension_reads_left_ = kMaxExtensionRecords;
  if (mft.attribute_list.present) resolve_attribute_list(&mft);
  finish_streams(&mft, g_.cluster_size, &lines);
  for (std::string& l : lines) warnings_.push_back("$MFT: " + l);
  const Stream& merged = mft.data[""];
  mft_runs_ = merged.runs;
  stats_.mft_runs = mft_runs_.size();
  mft_records_ = std::min<uint64_t>(merged.data_size / g_.record_size, kMaxRecords);
  stats_.mft_records = mft_records_;
  if (mft_records_ < kFirstUserRecord)
    return Status::error("ntfs: the $MFT holds " + std::to_string(mft_records_) + " records, fewer than NTFS's own " +
                         std::to_string(kFirstUserRecord));
  return Status::ok();
}

void Crawler::extents_of(const std::vector<Run>& runs, uint64_t size, std::vector<Extent>* out) const {
  out->clear();
  const uint64_t needed = (size + g_.cluster_size - 1) / g_.cluster_size;
  for (const Run& r : runs) {
    if (r.sparse || r.vcn >= needed) continue;
    uint64_t logical = r.vcn, physical = r.lcn, left = std::min(r.length, needed - r.vcn);
    while (left > 0) {
      const uint32_t n = uint32_t(std::min<uint64_t>(left, kMaxExtentClusters));
      out->push_back({logical, physical, n, false});
      logical += n;
      physical += n;
      left -= n;
    }
  }
}

// Reads every extension record the file's $ATTRIBUTE_LIST names, once, and
// merges its attributes. An extension record must name this file (record
// and sequence) as its base and may belong to no other file; its own
// attribute list, if any, is ignored: no chain of lists, so no cycle.
void Crawler::resolve_attribute_list(FileRecord* f) {
  std::vector<std::string> lines;
  std::string list;
  if (!read_stream(f->attribute_list, kMaxAttributeListBytes, &list)) {
    problem(f->record, 0, "record " + std::to_string(f->record) + ": cannot read its $ATTRIBUTE_LIST");
    return;
  }
  if (f->attribute_list.data_size > kMaxAttributeListBytes)
    lines.push_back("$ATTRIBUTE_LIST of " + std::to_string(f->attribute_list.data_size) + " bytes; only the first " +
                    std::to_string(kMaxAttributeListBytes) + " are read");
  std::vector<AttributeListEntry> entries;
  Status s = decode_attribute_list(reinterpret_cast<const unsigned char*>(list.data()), list.size(),
                                   kMaxAttributeListBytes / 26, &entries);
  if (!s) lines.push_back(s.message());
  std::vector<uint64_t> records;
  for (const AttributeListEntry& e : entries) {
    const uint64_t r = ref_record(e.record_ref);
    if (r != f->record && std::find(records.begin(), records.end(), r) == records.end()) {
      if (records.size() >= kMaxExtensionRecords) {
        lines.push_back("$ATTRIBUTE_LIST names more than " + std::to_string(kMaxExtensionRecords) + " records");
        break;
      }
      records.push_back(r);
    }
  }
  std::vector<unsigned char> buf;
  RecordHeader h;
  std::vector<AttrView> attrs;
  const uint64_t base_ref = make_ref(f->record, f->sequence);
  for (uint64_t r : records) {
    if (extension_reads_left_ == 0) {
      lines.push_back("extension record budget spent; record " + std::to_string(r) + " not read");
      break;
    }
    --extension_reads_left_;
    if (claimed_extensions_.count(r)) {
      lines.push_back("extension record " + std::to_string(r) + " is claimed by another file too");
      continue;
    }
    if (!(s = read_record(r, &buf, &h, &attrs, false))) {
      lines.push_back("extension " + s.message());
      continue;
    }
    if (!(h.flags & kRecordInUse) || h.base_ref != base_ref) {
      lines.push_back("record " + std::to_string(r) + " named by the $ATTRIBUTE_LIST belongs to record " +
                      std::to_string(ref_record(h.base_ref)) + " (sequence " + std::to_string(ref_sequence(h.base_ref)) +
                      "), not to this one");
      continue;
    }
    claimed_extensions_.insert(r);
    for (const AttrView& a : attrs) {
      if (a.type == kAttrAttributeList) {
        lines.push_back("extension record " + std::to_string(r) + " has an $ATTRIBUTE_LIST of its own; ignored");
        continue;
      }
      add_attribute(f, a, g_.total_clusters, &lines);
    }
  }
  problems(f->record, lines);
}

void Crawler::report_system_file(const FileRecord& f) {
  const BlockKind kind = system_kind(f.record);
  for (const auto& [name, s] : f.data)
    for (const Run& r : s.runs)
      if (!r.sparse) sink_.blocks(kind, r.lcn, r.length, 0, r.vcn);
  for (const Stream* s : {&f.index_allocation, &f.index_bitmap, &f.attribute_list})
    for (const Run& r : s->runs)
      if (!r.sparse) sink_.blocks(f.record == kMftRecord && s == &f.index_bitmap ? BlockKind::InodeBitmap : kind,
                                  r.lcn, r.length, 0, r.vcn);
  if (f.record == kVolumeRecord && f.volume_name.present && !f.volume_name.non_resident)
    label_ = utf16_to_utf8(reinterpret_cast<const unsigned char*>(f.volume_name.resident.data()),
                           f.volume_name.resident.size() / 2);
}

void Crawler::finish_file(FileRecord& f) {
  std::vector<std::string> lines;
  finish_streams(&f, g_.cluster_size, &lines);
  const bool in_extend =
      std::any_of(f.names.begin(), f.names.end(), [](const FileName& n) { return ref_record(n.parent_ref) == kExtendRecord; });
  const bool hidden = (f.record < kFirstUserRecord && f.record != kRootRecord) || in_extend;

  Inode in;
  in.ino = f.record;
  in.generation = f.sequence;
  const bool is_dir = (f.flags & kRecordDirectory) != 0;
  in.type = is_dir ? FileType::Directory : FileType::Regular;
  if (!f.have_standard_information) lines.push_back("no $STANDARD_INFORMATION; times are 0");
  in.flags = f.si.dos_attributes;
  in.crtime_ns = ntfs_time_ns(f.si.created);
  in.mtime_ns = ntfs_time_ns(f.si.modified);
  in.ctime_ns = ntfs_time_ns(f.si.mft_changed);
  in.atime_ns = ntfs_time_ns(f.si.accessed);

  if (is_dir) {
    if (!f.index_root.present || f.index_root.non_resident) {
      lines.push_back("directory without a resident $INDEX_ROOT:$I30");
    } else {
      IndexJob job;
      job.record = f.record;
      job.root = f.index_root.resident;
      if (f.index_allocation.present) {
        job.runs = f.index_allocation.runs;
        job.allocation_bytes = f.index_allocation.data_size;
        if (!read_stream(f.index_bitmap, kMaxIndexBitmapBytes, &job.bitmap))
          lines.push_back("cannot read $BITMAP:$I30");
      }
      index_jobs_.push_back(std::move(job));
    }
    // As ntfs-3g shows it: the index blocks' bytes, 0 while the index fits
    // in the record.
    in.size = f.index_allocation.present ? f.index_allocation.data_size : 0;
    extents_of(f.index_allocation.runs, in.size, &in.extents);
    if (f.index_bitmap.non_resident)
      for (const Run& r : f.index_bitmap.runs)
        if (!r.sparse && !hidden) sink_.blocks(BlockKind::MapNode, r.lcn, r.length, f.record, r.vcn);
  } else {
    auto main = f.data.find("");
    if (main == f.data.end()) {
      if (!hidden) lines.push_back("file without an unnamed $DATA");
    } else {
      const Stream& d = main->second;
      in.size = d.data_size;
      if (d.non_resident) extents_of(d.runs, d.allocated_size, &in.extents);
      // ntfs-3g's special files (docs/ntfs.md): only SYSTEM files, as it checks.
      if (f.si.dos_attributes & kDosSystem) {
        if (d.data_size == 0) {
          in.type = FileType::Fifo;
        } else if (d.data_size == 1) {
          in.type = FileType::Socket;
        } else if (d.data_size <= kInterixMaxBytes) {
          std::string bytes;
          if (read_stream(d, kInterixMaxBytes, &bytes)) {
            const InterixKind k = decode_interix(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                                                 &in.symlink_target, &in.rdev);
            if (k == InterixKind::Symlink) {
              in.type = FileType::Symlink;
              in.size = in.symlink_target.size();
            }
            if (k == InterixKind::CharDevice) in.type = FileType::CharDevice;
            if (k == InterixKind::BlockDevice) in.type = FileType::BlockDevice;
          }
        }
      }
    }
  }
  if (f.reparse.present) {
    std::string bytes;
    ReparsePoint rp;
    Status s;
    if (!read_stream(f.reparse, kMaxSmallStreamBytes, &bytes))
      s = Status::error("cannot read it");
    else
      s = decode_reparse_point(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), &rp);
    if (!s) lines.push_back("$REPARSE_POINT: " + s.message());
    if (rp.is_link) {
      in.type = FileType::Symlink;
      in.symlink_target = rp.target;
      in.size = rp.target.size();
      in.extents.clear();
    }
  }
  in.mode = mode_of(in.type, f.si.dos_attributes);
  // Names may point into a directory; a junction is a symlink, not a parent.
  if (in.type == FileType::Directory) directories_[f.record] = f.sequence;

  for (const auto& [name, s] : f.data) {
    if (name.empty()) continue;
    NamedStream ns;
    ns.name = name;
    ns.size = s.data_size;
    if (s.non_resident) extents_of(s.runs, s.allocated_size, &ns.extents);
    if (!hidden)
      for (const Extent& x : ns.extents) sink_.blocks(BlockKind::Xattr, x.physical, x.length, f.record, x.logical);
    in.streams.push_back(std::move(ns));
  }
  if (f.attribute_list.non_resident && !hidden)
    for (const Run& r : f.attribute_list.runs)
      if (!r.sparse) sink_.blocks(BlockKind::MapNode, r.lcn, r.length, f.record, r.vcn);

  uint32_t real_names = 0;
  for (FileName& n : f.names) {
    if (n.name_space == Namespace::Dos) {
      ++stats_.dos_names;
      continue;
    }
    ++real_names;
    names_.push_back({n.parent_ref, make_ref(f.record, f.sequence), in.type, hidden, std::move(n.name)});
  }
  in.links = real_names;
  if (f.record == kRootRecord) in.links = 1;

  if (hidden) {
    report_system_file(f);
  } else {
    if (real_names == 0 && f.record != kRootRecord) lines.push_back("no name outside the DOS namespace");
    stats_.files += in.type != FileType::Directory;
    stats_.directories += in.type == FileType::Directory;
    stats_.symlinks += in.type == FileType::Symlink;
    stats_.named_streams += in.streams.size();
    sink_.inode(in);
  }
  problems(f.record, lines);
}

void Crawler::process_record(uint64_t record, unsigned char* p) {
  const FixupResult fx = apply_fixups(p, g_.record_size, "FILE");
  if (fx == FixupResult::Empty) return;
  if (fx != FixupResult::Ok) {
    if (fx == FixupResult::Torn) {
      ++stats_.torn_records;
    } else {
      ++stats_.bad_records;
    }
    problem(record, 0, "record " + std::to_string(record) + " rejected: " + fixup_result_text(fx));
    return;
  }
  // A record not in use has nothing to say; its header is still checked
  // only when it claims to be.
  if (!(le16(p + 22) & kRecordInUse)) return;
  RecordHeader h;
  std::vector<AttrView> attrs;
  Status s = parse_record(p, g_.record_size, &h, &attrs);
  ++stats_.in_use_records;
  if (!s) {
    ++stats_.bad_records;
    problem(record, 0, "record " + std::to_string(record) + ": " + s.message() +
                           (attrs.empty() ? "; rejected" : "; the attributes before it are used"));
    if (attrs.empty()) return;
  }
  if (h.base_ref != 0) {
    ++stats_.extension_records;
    return;  // read again with its base record
  }
  FileRecord f;
  f.record = record;
  f.sequence = h.sequence;
  f.flags = h.flags;
  f.link_count = h.link_count;
  std::vector<std::string> lines;
  for (const AttrView& a : attrs) add_attribute(&f, a, g_.total_clusters, &lines);
  problems(record, lines);
  if (f.attribute_list.present) {
    ++stats_.attribute_lists;
    deferred_.push_back(record);
    return;
  }
  finish_file(f);
}

void Crawler::crawl_mft() {
  const uint64_t rs = g_.record_size;
  const uint64_t per_batch = std::max<uint64_t>(1, options_.batch_bytes / rs);
  std::vector<unsigned char> buf;
  for (uint64_t first = 0; first < mft_records_; first += per_batch) {
    const uint64_t n = std::min(per_batch, mft_records_ - first);
    buf.assign(n * rs, 0);
    std::vector<ReadRequest> reqs;
    Status s;
    if (!plan_read(mft_runs_, first * rs, n * rs, buf.data(), &reqs))
      s = Status::error("not mapped by the $MFT's runlist");
    else
      s = disk_.read_batch(reqs);
    stats_.bytes_read += n * rs;
    if (!s) {
      // One record at a time, so that one bad run costs only its records.
      for (uint64_t r = first; r < first + n; ++r) {
        std::vector<ReadRequest> one;
        unsigned char* p = buf.data() + (r - first) * rs;
        if (!plan_read(mft_runs_, r * rs, rs, p, &one) || !disk_.read_batch(one)) {
          ++stats_.bad_records;
          problem(r, 0, "record " + std::to_string(r) + " cannot be read");
          std::fill(p, p + rs, 0);
        }
      }
    }
    for (uint64_t r = first; r < first + n; ++r) process_record(r, buf.data() + (r - first) * rs);
  }
  std::vector<unsigned char> rec;
  RecordHeader h;
  std::vector<AttrView> attrs;
  for (uint64_t record : deferred_) {
    Status s = read_record(record, &rec, &h, &attrs, false);
    if (!s) {
      problem(record, 0, s.message());
      continue;
    }
    FileRecord f;
    f.record = record;
    f.sequence = h.sequence;
    f.flags = h.flags;
    f.link_count = h.link_count;
    std::vector<std::string> lines;
    for (const AttrView& a : attrs) add_attribute(&f, a, g_.total_clusters, &lines);
    problems(record, lines);
    resolve_attribute_list(&f);
    finish_file(f);
  }
}

// The tree comes from each file's $FILE_NAME parent references (see
// docs/ntfs.md for why); a name whose parent is not a directory in use with
// the same sequence number is an orphan and is reported, not shown.
void Crawler::emit_names() {
  for (PendingName& n : names_) {
    const uint64_t child = ref_record(n.child_ref), parent = ref_record(n.parent_ref);
    if (n.hidden || parent == child) continue;
    auto it = directories_.find(parent);
    if (it == directories_.end() || it->second != ref_sequence(n.parent_ref)) {
      problem(child, 0, "name '" + n.name + "' of record " + std::to_string(child) + ": parent record " +
                            std::to_string(parent) + " (sequence " + std::to_string(ref_sequence(n.parent_ref)) +
                            ") is not a directory in use; not shown");
      continue;
    }
    std::string name = n.name;
    if (sanitize_component(&name))
      problem(child, 0, "name of record " + std::to_string(child) + " holds '/' or NUL; shown with U+FFFD");
    if (name == "." || name == "..") {
      problem(child, 0, "record " + std::to_string(child) + " is named '" + name + "'; not shown");
      continue;
    }
    ++stats_.names;
    sink_.dir_entry(parent, {child, n.type, name});
  }
}

void Crawler::check_index(const IndexJob& job, std::vector<PendingName>* found) {
  auto add = [&](uint64_t ref, const FileName& key) {
    if (key.name_space == Namespace::Dos || ref_record(ref) == job.record) return;  // the root's "."
    found->push_back({make_ref(job.record, 0), ref, FileType::Unknown, false, key.name});
  };
  IndexRootInfo root;
  const auto* rp = reinterpret_cast<const unsigned char*>(job.root.data());
  Status s = decode_index_root(rp, job.root.size(), &root);
  if (s) s = walk_index_node(rp + root.node_offset, job.root.size() - root.node_offset, add);
  if (!s) problem(job.record, 0, "directory " + std::to_string(job.record) + ": $INDEX_ROOT: " + s.message());
  if (job.runs.empty() || job.allocation_bytes == 0) return;
  const uint64_t bs = root.block_size;
  if (bs < 512 || bs > kMaxRecordSize || (bs & (bs - 1)) != 0) {
    problem(job.record, 0, "directory " + std::to_string(job.record) + ": index block size " + std::to_string(bs));
    return;
  }
  const uint64_t blocks = std::min<uint64_t>(job.allocation_bytes / bs, uint64_t(job.bitmap.size()) * 8);
  const uint64_t per_batch = std::max<uint64_t>(1, options_.batch_bytes / bs);
  std::vector<uint64_t> wanted;
  for (uint64_t i = 0; i < blocks; ++i)
    if ((uint8_t(job.bitmap[i / 8]) >> (i % 8)) & 1) wanted.push_back(i);
  std::vector<unsigned char> buf;
  for (size_t first = 0; first < wanted.size(); first += per_batch) {
    const size_t n = std::min<size_t>(per_batch, wanted.size() - first);
    buf.assign(n * bs, 0);
    std::vector<ReadRequest> reqs;
    bool mapped = true;
    for (size_t k = 0; k < n && mapped; ++k)
      mapped = plan_read(job.runs, wanted[first + k] * bs, bs, buf.data() + k * bs, &reqs);
    stats_.bytes_read += n * bs;
    if (!mapped || !(s = disk_.read_batch(reqs))) {
      problem(job.record, 0, "directory " + std::to_string(job.record) + ": cannot read its index blocks");
      continue;
    }
    for (size_t k = 0; k < n; ++k) {
      unsigned char* p = buf.data() + k * bs;
      ++stats_.index_blocks;
      const FixupResult fx = apply_fixups(p, bs, "INDX");
      if (fx != FixupResult::Ok) {
        stats_.torn_index_blocks += fx == FixupResult::Torn;
        problem(job.record, 0, "directory " + std::to_string(job.record) + ": index block " +
                                   std::to_string(wanted[first + k]) + ": " + fixup_result_text(fx));
        continue;
      }
      if (!(s = walk_index_block(p, bs, add)))
        problem(job.record, 0, "directory " + std::to_string(job.record) + ": index block " +
                                   std::to_string(wanted[first + k]) + ": " + s.message());
    }
  }
}

// Each directory's $I30 entries against the $FILE_NAME names that point to
// it: every name must be in both, with the same record and sequence.
void Crawler::check_indexes() {
  std::vector<PendingName> indexed;
  for (const IndexJob& job : index_jobs_) check_index(job, &indexed);
  using Key = std::tuple<uint64_t, uint64_t, const std::string*>;
  auto key_less = [](const Key& a, const Key& b) {
    if (std::get<0>(a) != std::get<0>(b)) return std::get<0>(a) < std::get<0>(b);
    if (std::get<1>(a) != std::get<1>(b)) return std::get<1>(a) < std::get<1>(b);
    return *std::get<2>(a) < *std::get<2>(b);
  };
  std::vector<Key> from_index, from_names;
  for (const PendingName& n : indexed) from_index.emplace_back(ref_record(n.parent_ref), n.child_ref, &n.name);
  for (const PendingName& n : names_) {
    const uint64_t parent = ref_record(n.parent_ref);
    if (parent == ref_record(n.child_ref)) continue;  // the root's own name
    auto it = directories_.find(parent);
    if (it == directories_.end() || it->second != ref_sequence(n.parent_ref)) continue;  // an orphan, reported
    from_names.emplace_back(parent, n.child_ref, &n.name);
  }
  std::sort(from_index.begin(), from_index.end(), key_less);
  std::sort(from_names.begin(), from_names.end(), key_less);
  auto describe = [](const Key& k) {
    return "'" + *std::get<2>(k) + "' (record " + std::to_string(ref_record(std::get<1>(k))) + ", sequence " +
           std::to_string(ref_sequence(std::get<1>(k))) + ") in directory " + std::to_string(std::get<0>(k));
  };
  size_t i = 0, j = 0;
  while (i < from_index.size() || j < from_names.size()) {
    if (j == from_names.size() || (i < from_index.size() && key_less(from_index[i], from_names[j]))) {
      ++stats_.index_mismatches;
      problem(std::get<0>(from_index[i]), 0, "index entry " + describe(from_index[i]) + " has no matching $FILE_NAME");
      ++i;
    } else if (i == from_index.size() || key_less(from_names[j], from_index[i])) {
      ++stats_.index_mismatches;
      problem(std::get<0>(from_names[j]), 0, "name " + describe(from_names[j]) + " is missing from the directory's index");
      ++j;
    } else {
      ++i, ++j;
    }
  }
}

Status Crawler::run() {
  if (offset_ > disk_.size()) return Status::error("ntfs: partition starts past the end of the disk");
  size_ = std::min(size_, disk_.size() - offset_);
  Status s = read_boot();
  if (!s) return s;
  if (!(s = read_mft_record0())) return s;
  extension_reads_left_ = 2 * mft_records_ + 4096;
  claimed_extensions_.clear();

  // The label is $Volume's $VOLUME_NAME; read it before anything is reported.
  {
    std::vector<unsigned char> buf;
    RecordHeader h;
    std::vector<AttrView> attrs;
    if (read_record(kVolumeRecord, &buf, &h, &attrs, false)) {
      for (const AttrView& a : attrs)
        if (a.type == kAttrVolumeName && !a.non_resident) label_ = utf16_to_utf8(a.value, a.value_length / 2);
    }
  }

  FilesystemInfo info;
  info.type = "ntfs";
  info.uuid = hex16(g_.serial);
  info.label = label_;
  info.partition_offset = offset_;
  info.partition_size = size_;
  info.block_size = g_.cluster_size;
  info.block_count = g_.total_clusters;
  info.inode_count = mft_records_;
  info.root_ino = kRootRecord;
  info.inode_size = g_.record_size;
  sink_.begin_filesystem(info);
  for (std::string& w : warnings_) problem(0, 0, std::move(w));
  warnings_.clear();
  crawl_mft();
  if (!directories_.count(kRootRecord)) problem(kRootRecord, 0, "the root directory (record 5) is not a directory in use");
  emit_names();
  check_indexes();
  sink_.end_filesystem();
  return Status::ok();
}

}  // namespace dsvmi::ntfs

namespace dsvmi {

Status crawl_ntfs(DiskReader& disk, uint64_t offset, uint64_t size, CrawlSink& sink, const NtfsCrawlOptions& options,
                  NtfsCrawlStats* stats) {
  NtfsCrawlStats local;
  NtfsCrawlStats& st = stats ? *stats : local;
  st = {};
  ntfs::Crawler crawler(disk, offset, size, sink, options, st);
  return crawler.run();
}

}  // namespace dsvmi
