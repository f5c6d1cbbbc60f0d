#include "uring_reader.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace dsvmi {
namespace {

constexpr uint64_t kAlign = 4096;               // safe O_DIRECT alignment for files and devices
constexpr uint32_t kBufferedChunk = 1u << 20;   // largest single read without O_DIRECT
constexpr uint32_t kDirectChunk = 256u << 10;   // largest single O_DIRECT read (bounce size)
constexpr uint32_t kBounceBytes = kDirectChunk + 2 * kAlign;

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

std::unique_ptr<DiskReader> UringReader::open(const std::string& path,
                                              const DiskReaderOptions& options, Status* error) {
  std::unique_ptr<UringReader> r(new UringReader());
  r->path_ = path;
  r->direct_ = options.direct_io;
  r->depth_ = options.queue_depth == 0 ? 1 : (options.queue_depth > 256 ? 256 : options.queue_depth);
  int flags = O_RDONLY | O_CLOEXEC | (r->direct_ ? O_DIRECT : 0);
  r->fd_ = ::open(path.c_str(), flags);
  if (r->fd_ < 0) {
    *error = Status::error("disk: cannot open " + path + (r->direct_ ? " with O_DIRECT: " : ": ") +
                           errno_text(errno));
    return nullptr;
  }
  struct stat st {};
  if (fstat(r->fd_, &st) != 0) {
    *error = Status::error("disk: cannot stat " + path + ": " + errno_text(errno));
    return nullptr;
  }
  if (S_ISBLK(st.st_mode)) {
    uint64_t bytes = 0;
    if (ioctl(r->fd_, BLKGETSIZE64, &bytes) != 0) {
      *error = Status::error("disk: cannot get size of block device " + path + ": " + errno_text(errno));
      return nullptr;
    }
    r->size_ = bytes;
  } else if (S_ISREG(st.st_mode)) {
    r->size_ = static_cast<uint64_t>(st.st_size);
  } else {
    *error = Status::error("disk: " + path + " is neither a regular file nor a block device");
    return nullptr;
  }
  int rc = io_uring_queue_init(r->depth_, &r->ring_, 0);
  if (rc < 0) {
    *error = Status::error("disk: io_uring_queue_init failed: " + errno_text(-rc));
    return nullptr;
  }
  r->ring_ready_ = true;
  r->slots_ = std::make_unique<Slot[]>(r->depth_);
  if (r->direct_) {
    void* p = nullptr;
    if (posix_memalign(&p, kAlign, size_t{kBounceBytes} * r->depth_) != 0) {
      *error = Status::error("disk: cannot allocate O_DIRECT bounce buffers");
      return nullptr;
    }
    r->bounce_area_ = static_cast<std::byte*>(p);
    for (unsigned i = 0; i < r->depth_; i++) r->slots_[i].bounce = r->bounce_area_ + size_t{kBounceBytes} * i;
  }
  return r;
}

UringReader::~UringReader() {
  if (ring_ready_) io_uring_queue_exit(&ring_);
  if (fd_ >= 0) ::close(fd_);
  std::free(bounce_area_);
}

Status UringReader::read(uint64_t offset, std::span<std::byte> out) {
  ReadRequest r{offset, out};
  return read_batch(std::span<const ReadRequest>(&r, 1));
}

bool UringReader::submit_slot(unsigned i) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) return false;
  Slot& s = slots_[i];
  uint64_t off = s.offset + s.done;
  uint32_t len = s.length - s.done;
  if (direct_) {
    uint64_t start = off & ~(kAlign - 1);
    uint64_t end = (off + len + kAlign - 1) & ~(kAlign - 1);
    io_uring_prep_read(sqe, fd_, s.bounce, static_cast<unsigned>(end - start), start);
  } else {
    io_uring_prep_read(sqe, fd_, s.dest + s.done, len, off);
  }
  io_uring_sqe_set_data64(sqe, i);
  return true;
}

// Accounts for one completion. Sets *finished when the slot's piece is fully
// delivered; otherwise the caller resubmits the remainder (short read).
Status UringReader::complete_slot(unsigned i, int result, bool* finished) {
  Slot& s = slots_[i];
  *finished = false;
  uint64_t off = s.offset + s.done;
  uint32_t want = s.length - s.done;
  if (result < 0) {
    return Status::error("disk: read of " + std::to_string(want) + " bytes at offset " +
                         std::to_string(off) + " failed: " + errno_text(-result));
  }
  if (result == 0) {
    return Status::error("disk: unexpected end of " + path_ + " at offset " + std::to_string(off));
  }
  uint32_t got;
  if (direct_) {
    uint64_t start = off & ~(kAlign - 1);
    uint64_t skip = off - start;
    if (static_cast<uint64_t>(result) <= skip) {
      return Status::error("disk: short O_DIRECT read at offset " + std::to_string(start));
    }
    uint64_t avail = static_cast<uint64_t>(result) - skip;
    got = static_cast<uint32_t>(avail < want ? avail : want);
    std::memcpy(s.dest + s.done, s.bounce + skip, got);
  } else {
    got = static_cast<uint32_t>(result) < want ? static_cast<uint32_t>(result) : want;
  }
  s.done += got;
  *finished = s.done == s.length;
  return Status::ok();
}

Status UringReader::read_batch(std::span<const ReadRequest> requests) {
  for (const ReadRequest& r : requests) {
    if (r.offset > size_ || r.out.size() > size_ - r.offset) {
      return Status::error("disk: read of " + std::to_string(r.out.size()) + " bytes at offset " +
                           std::to_string(r.offset) + " is past the end of " + path_ + " (" +
                           std::to_string(size_) + " bytes)");
    }
  }
  const uint32_t chunk = direct_ ? kDirectChunk : kBufferedChunk;
  size_t next_req = 0;
  uint64_t next_pos = 0;  // bytes of requests[next_req] already handed to slots
  unsigned free_stack[256];
  unsigned free_count = 0;
  for (unsigned i = 0; i < depth_; i++) free_stack[free_count++] = depth_ - 1 - i;
  unsigned in_flight = 0;
  Status failure;

  for (;;) {
    // Hand pieces to free slots, unless a failure means we only drain.
    unsigned queued = 0;
    while (failure.is_ok() && free_count > 0 && next_req < requests.size()) {
      const ReadRequest& r = requests[next_req];
      if (next_pos >= r.out.size()) {
        next_req++;
        next_pos = 0;
        continue;
      }
      unsigned i = free_stack[free_count - 1];
      Slot& s = slots_[i];
      uint64_t left = r.out.size() - next_pos;
      s.dest = r.out.data() + next_pos;
      s.offset = r.offset + next_pos;
      s.length = static_cast<uint32_t>(left < chunk ? left : chunk);
      s.done = 0;
      if (!submit_slot(i)) break;
      free_count--;
      next_pos += s.length;
      queued++;
      in_flight++;
    }
    if (queued > 0) {
      int rc = io_uring_submit(&ring_);
      if (rc < 0 && failure.is_ok()) failure = Status::error("disk: io_uring_submit failed: " + errno_text(-rc));
    }
    if (in_flight == 0) break;
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_wait_cqe(&ring_, &cqe);
    if (rc < 0) {
      if (rc == -EINTR) continue;
      // Cannot reap: the kernel may still write into our buffers. Nothing
      // safe remains but to report; the ring is torn down by the destructor.
      return Status::error("disk: io_uring_wait_cqe failed: " + errno_text(-rc));
    }
    unsigned i = static_cast<unsigned>(io_uring_cqe_get_data64(cqe));
    int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    in_flight--;
    bool finished = false;
    Status s = complete_slot(i, res, &finished);
    if (!s && failure.is_ok()) failure = s;
    if (!finished && failure.is_ok()) {
      if (submit_slot(i)) {
        in_flight++;
        int src = io_uring_submit(&ring_);
        if (src < 0) failure = Status::error("disk: io_uring_submit failed: " + errno_text(-src));
        continue;
      }
      failure = Status::error("disk: io_uring submission queue full");
    }
    free_stack[free_count++] = i;
  }
  return failure;
}

}  // namespace dsvmi
