// The engine's writer of the gate. Protocol and safety argument: docs/gate.md.
#include "dsvmi/gate_writer.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <roaring/roaring.h>
#include <roaring/roaring_version.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "gate_checksum.h"
#include "gate_layout.h"
#include "gate_published.h"
#include "gate_reader_internal.h"

namespace dsvmi {

namespace {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

dsvmi_gate_header* header_of(uint8_t* base) { return reinterpret_cast<dsvmi_gate_header*>(base); }

}  // namespace

const char* gate_mode_name(GateMode mode) {
  switch (mode) {
    case GateMode::kPassAll: return "pass-all";
    case GateMode::kDropAll: return "drop-all";
    case GateMode::kSet: return "set";
  }
  return "unknown";
}

bool parse_gate_mode(std::string_view name, GateMode* mode) {
  for (GateMode m : {GateMode::kPassAll, GateMode::kDropAll, GateMode::kSet}) {
    if (name == gate_mode_name(m)) {
      *mode = m;
      return true;
    }
  }
  return false;
}

Gate::~Gate() {
  if (bitmap_) roaring_bitmap_free(bitmap_);
  if (base_) munmap(base_, map_len_);
  if (fd_ >= 0) close(fd_);  // drops the flock
}

Status Gate::create(const std::string& path, const GateOptions& options,
                    std::unique_ptr<Gate>* gate) {
  uint32_t g = options.grain_size;
  if (g == 0 || (g & (g - 1)) || g < (1u << DSVMI_GATE_MIN_GRAIN_SHIFT) ||
      g > (1u << DSVMI_GATE_MAX_GRAIN_SHIFT)) {
    return Status::error("gate: grain size " + std::to_string(g) +
                         " is not a power of two in [512, 1048576]");
  }
  uint32_t shift = static_cast<uint32_t>(__builtin_ctz(g));
  if (options.disk_size == 0) return Status::error("gate: disk size 0");
  uint64_t grains = (options.disk_size + g - 1) >> shift;
  if (options.disk_size > (uint64_t{1} << 52) || grains > (uint64_t{1} << 32)) {
    return Status::error("gate: a disk of " + std::to_string(options.disk_size) + " bytes has " +
                         std::to_string(grains) + " grains of " + std::to_string(g) +
                         " bytes; grain numbers are 32-bit (at most 2^32 grains)");
  }

  std::unique_ptr<Gate> self(new Gate());
  self->disk_size_ = options.disk_size;
  self->grains_ = grains;
  self->grain_shift_ = shift;
  self->nslots_ = DSVMI_GATE_DEFAULT_SLOTS;
  self->slot_capacity_ = dsvmi_gate_slot_capacity(grains);
  self->mode_ = options.mode;
  self->map_len_ = DSVMI_GATE_HEADER_SIZE + self->nslots_ * self->slot_capacity_;

  // Build under a temporary name, publish generation 1, then rename: a
  // reader never maps a half-made gate, and readers of a replaced gate keep
  // their (old) file instead of seeing it truncated under them.
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  self->fd_ = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (self->fd_ < 0) return Status::error(errno_text("gate " + tmp));
  auto fail = [&](const std::string& what) {
    unlink(tmp.c_str());
    return Status::error(errno_text("gate " + tmp + ": " + what));
  };
  if (flock(self->fd_, LOCK_EX | LOCK_NB) != 0) return fail("flock");
  if (ftruncate(self->fd_, static_cast<off_t>(self->map_len_)) != 0) return fail("ftruncate");
  void* base = mmap(nullptr, self->map_len_, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd_, 0);
  if (base == MAP_FAILED) return fail("mmap");
  self->base_ = static_cast<uint8_t*>(base);

  dsvmi_gate_header* h = header_of(self->base_);
  h->magic = DSVMI_GATE_MAGIC;
  h->layout_version = DSVMI_GATE_LAYOUT_VERSION;
  h->header_size = DSVMI_GATE_HEADER_SIZE;
  h->grain_shift = shift;
  h->nslots = self->nslots_;
  h->disk_size = options.disk_size;
  h->file_size = self->map_len_;
  h->slot_capacity = self->slot_capacity_;
  h->roaring_version = DSVMI_GATE_ROARING_VERSION(ROARING_VERSION_MAJOR, ROARING_VERSION_MINOR,
                                                  ROARING_VERSION_REVISION);
  h->published = 0;
  h->reader_view = DSVMI_GATE_VIEW_NONE;

  self->bitmap_ = roaring_bitmap_create();
  if (!self->bitmap_) return fail("out of memory");
  if (Status s = self->publish(); !s) {
    unlink(tmp.c_str());
    return s;
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) return fail("rename to " + path);
  *gate = std::move(self);
  return Status::ok();
}

Status Gate::open(const std::string& path, std::unique_ptr<Gate>* gate) {
  std::unique_ptr<Gate> self(new Gate());
  self->fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (self->fd_ < 0) return Status::error(errno_text("gate " + path));
  if (flock(self->fd_, LOCK_EX | LOCK_NB) != 0) {
    return Status::error(errno == EWOULDBLOCK ? "gate " + path + ": held by another writer"
                                              : errno_text("gate " + path + ": flock"));
  }
  struct stat st;
  if (fstat(self->fd_, &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_size < static_cast<off_t>(DSVMI_GATE_HEADER_SIZE)) {
    return Status::error("gate " + path + ": not a gate file (too small or not regular)");
  }
  self->map_len_ = static_cast<uint64_t>(st.st_size);
  void* base = mmap(nullptr, self->map_len_, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd_, 0);
  if (base == MAP_FAILED) return Status::error(errno_text("gate " + path + ": mmap"));
  self->base_ = static_cast<uint8_t*>(base);

  dsvmi_gate_geometry geo;
  char err[256];
  if (!dsvmi_gate_check_header(self->base_, self->map_len_, &geo, err, sizeof(err))) {
    return Status::error(path + ": " + err);
  }
  internal::PublishedCopy copy;
  if (Status s = internal::copy_published(self->base_, geo, &copy); !s) {
    return Status::error(path + ": " + s.message());
  }
  self->disk_size_ = geo.disk_size;
  self->grains_ = geo.grains;
  self->grain_shift_ = geo.grain_shift;
  self->nslots_ = geo.nslots;
  self->slot_capacity_ = geo.slot_capacity;
  self->generation_ = copy.generation;
  if (copy.generation == 0) {
    self->bitmap_ = roaring_bitmap_create();
  } else {
    self->published_slot_ = copy.slot;
    self->published_bytes_ = copy.desc.size;
    self->mode_ = static_cast<GateMode>(copy.desc.mode);
    // The copy passed dsvmi_gate_index_build, which is stricter than
    // libroaring's own checks: only validated bytes reach libroaring.
    const roaring_bitmap_t* view = roaring_bitmap_frozen_view(
        reinterpret_cast<const char*>(copy.bytes.get()), copy.desc.size);
    if (!view) return Status::error(path + ": libroaring refused the published bitmap");
    self->bitmap_ = roaring_bitmap_copy(view);
    roaring_bitmap_free(view);
  }
  if (!self->bitmap_) return Status::error("gate: out of memory");
  *gate = std::move(self);
  return Status::ok();
}

Status Gate::check_range(GrainRange range) const {
  if (range.first > grains_ || range.count > grains_ - range.first) {
    return Status::error("gate: grains [" + std::to_string(range.first) + ", +" +
                         std::to_string(range.count) + ") pass the disk's " +
                         std::to_string(grains_) + " grains");
  }
  return Status::ok();
}

Status Gate::set_grains(GrainRange range) {
  if (Status s = check_range(range); !s) return s;
  if (range.count) roaring_bitmap_add_range(bitmap_, range.first, range.first + range.count);
  return Status::ok();
}

Status Gate::clear_grains(GrainRange range) {
  if (Status s = check_range(range); !s) return s;
  if (range.count) roaring_bitmap_remove_range(bitmap_, range.first, range.first + range.count);
  return Status::ok();
}

Status Gate::set_bytes(uint64_t offset, uint64_t length) {
  if (offset > disk_size_ || length > disk_size_ - offset) {
    return Status::error("gate: bytes [" + std::to_string(offset) + ", +" +
                         std::to_string(length) + ") pass the disk end " +
                         std::to_string(disk_size_));
  }
  return set_grains(grains_for_bytes(offset, length, grain_shift_));
}

Status Gate::clear_bytes(uint64_t offset, uint64_t length) {
  if (offset > disk_size_ || length > disk_size_ - offset) {
    return Status::error("gate: bytes [" + std::to_string(offset) + ", +" +
                         std::to_string(length) + ") pass the disk end " +
                         std::to_string(disk_size_));
  }
  return clear_grains(grains_for_bytes(offset, length, grain_shift_));
}

bool Gate::grain_is_set(uint64_t grain) const {
  return grain < grains_ && roaring_bitmap_contains(bitmap_, static_cast<uint32_t>(grain));
}

uint64_t Gate::set_grain_count() const { return roaring_bitmap_get_cardinality(bitmap_); }

void Gate::optimize() {
  roaring_bitmap_run_optimize(bitmap_);
  roaring_bitmap_shrink_to_fit(bitmap_);
}

Status Gate::publish() {
  // The slot capacity assumes every container is at most 8 KiB, which
  // run_optimize guarantees (gate_layout.h). It costs about as much as the
  // serialization itself, so it runs only when the bitmap outgrew the slot
  // (run containers split by many clears) or when asked (optimize()).
  size_t size = roaring_bitmap_frozen_size_in_bytes(bitmap_);
  if (size > slot_capacity_) {
    roaring_bitmap_run_optimize(bitmap_);
    size = roaring_bitmap_frozen_size_in_bytes(bitmap_);
  }
  if (size > slot_capacity_) {
    return Status::error("gate: bitmap of " + std::to_string(size) +
                         " bytes exceeds the slot capacity " + std::to_string(slot_capacity_));
  }
  dsvmi_gate_header* h = header_of(base_);
  // The reader's word is untrusted: an out-of-range slot just reserves
  // nothing. Two slots are excluded at most, nslots >= 3, so one is free.
  uint64_t view = __atomic_load_n(&h->reader_view, __ATOMIC_SEQ_CST);
  uint32_t busy = view == DSVMI_GATE_VIEW_NONE ? UINT32_MAX
                                               : static_cast<uint32_t>(view & DSVMI_GATE_SLOT_MASK);
  uint32_t target = 0;
  while (target == published_slot_ || target == busy) target++;

  uint64_t offset = DSVMI_GATE_HEADER_SIZE + target * slot_capacity_;
  uint8_t* buf = base_ + offset;
  roaring_bitmap_frozen_serialize(bitmap_, reinterpret_cast<char*>(buf));
  uint64_t generation = generation_ + 1;
  dsvmi_gate_slot_desc desc{};
  desc.generation = generation;
  desc.offset = offset;
  desc.capacity = slot_capacity_;
  desc.size = size;
  desc.mode = static_cast<uint32_t>(mode_);
  desc.checksum = dsvmi_gate_slot_checksum(buf, size, generation, desc.mode);
  desc.cardinality = 0;  // gate-stat counts the validated copy instead
  desc.containers = static_cast<uint32_t>(bitmap_->high_low_container.size);
  std::memcpy(&h->slots[target], &desc, sizeof(desc));
  __atomic_store_n(&h->published, generation << DSVMI_GATE_SLOT_BITS | target, __ATOMIC_SEQ_CST);
  generation_ = generation;
  published_slot_ = target;
  published_bytes_ = size;
  return Status::ok();
}

GateCounters Gate::reader_counters() const {
  const dsvmi_gate_header* h = header_of(base_);
  auto load = [](const uint64_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); };
  GateCounters c;
  c.writes_passed = load(&h->writes_passed);
  c.bytes_passed = load(&h->bytes_passed);
  c.writes_dropped = load(&h->writes_dropped);
  c.bytes_dropped = load(&h->bytes_dropped);
  c.fallbacks = load(&h->fallbacks);
  c.rejected = load(&h->rejected);
  c.adoptions = load(&h->adoptions);
  return c;
}

}  // namespace dsvmi
