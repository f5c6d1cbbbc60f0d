// ImageReplayer: see dsvmi/replay.h.
#include "dsvmi/replay.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "dsvmi/frame_view.h"

namespace dsvmi {
namespace {

std::string range_text(uint64_t offset, uint64_t length) {
  return "[" + std::to_string(offset) + ", +" + std::to_string(length) + ")";
}

Status pwrite_all(int fd, const uint8_t* data, uint64_t length, uint64_t offset) {
  while (length > 0) {
    ssize_t n = ::pwrite(fd, data, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::error(std::string("replay: write: ") + std::strerror(errno));
    data += n;
    offset += static_cast<uint64_t>(n);
    length -= static_cast<uint64_t>(n);
  }
  return Status::ok();
}

}  // namespace

std::unique_ptr<ImageReplayer> ImageReplayer::open(const std::string& image_path,
                                                   const ReplayOptions& options, Status* error) {
  int fd = ::open(image_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    *error = Status::error("replay: cannot open " + image_path + ": " + std::strerror(errno));
    return nullptr;
  }
  std::unique_ptr<ImageReplayer> r(new ImageReplayer());
  r->fd_ = fd;
  r->options_ = options;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *error = Status::error("replay: " + image_path + " is not a regular (raw image) file");
    return nullptr;
  }
  r->size_ = static_cast<uint64_t>(st.st_size);
  return r;
}

ImageReplayer::~ImageReplayer() {
  if (fd_ >= 0) ::close(fd_);
}

void ImageReplayer::report_loss(const std::string& message) {
  if (loss_fn_) loss_fn_(message, loss_ctx_);
}

Status ImageReplayer::write_zeroes(uint64_t offset, uint64_t length, bool punch_hole) {
  if (length == 0) return Status::ok();
  // A hole and FALLOC_FL_ZERO_RANGE both read back as zeroes; where the file
  // system supports neither, write zeroes by hand.
  const int mode = punch_hole ? (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) : FALLOC_FL_ZERO_RANGE;
  if (::fallocate(fd_, mode, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
    return Status::ok();
  if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
    return Status::error(std::string("replay: fallocate: ") + std::strerror(errno));
  static const std::vector<uint8_t> zeroes(1 << 20, 0);
  while (length > 0) {
    const uint64_t n = length < zeroes.size() ? length : zeroes.size();
    if (Status s = pwrite_all(fd_, zeroes.data(), n, offset); !s) return s;
    offset += n;
    length -= n;
  }
  return Status::ok();
}

Status ImageReplayer::apply(std::span<const std::byte> frame) {
  const uint64_t index = stats_.frames;
  auto fail = [&](const std::string& why) {
    return Status::error("replay: frame " + std::to_string(index) + ": " + why);
  };
  FrameView v;
  std::string err;
  if (!DecodeFrame(reinterpret_cast<const uint8_t*>(frame.data()), frame.size(), &v, &err))
    return fail(err);
  stats_.frames += 1;

  // Sequence numbers: every frame the producer tried has one; a Lost frame
  // stands for the dropped ones (its seq is the last dropped). A jump that no
  // Lost frame explains is a loss too (e.g. a consumer that skipped corrupt
  // records).
  const uint64_t first = v.kind == FrameKind::kLost ? v.first_lost_seq : v.seq;
  if (have_seq_ && first != next_seq_) {
    stats_.unexplained_gaps += 1;
    const uint64_t missing = first > next_seq_ ? first - next_seq_ : 0;
    stats_.unexplained_missing += missing;
    report_loss("sequence jumps from " + std::to_string(next_seq_) + " to " + std::to_string(first) +
                " at frame " + std::to_string(index) + " (" + std::to_string(missing) +
                " frames missing with no Lost record)");
  }
  have_seq_ = true;
  next_seq_ = v.seq + 1;

  if (v.kind == FrameKind::kFlush) {
    stats_.flushes += 1;
    return Status::ok();
  }
  if (v.kind == FrameKind::kLost) {
    stats_.lost_records += 1;
    stats_.lost_frames += v.lost_frames;
    stats_.lost_bytes += v.lost_bytes;
    report_loss("LOST " + std::to_string(v.lost_frames) + " frames (seq " +
                std::to_string(v.first_lost_seq) + ".." + std::to_string(v.seq) + ", " +
                std::to_string(v.lost_bytes) + " bytes) within disk range " +
                range_text(v.offset, v.length));
    return Status::ok();
  }
  if (v.length > size_ || v.offset > size_ - v.length)
    return fail(std::string(FrameKindName(v.kind)) + " " + range_text(v.offset, v.length) +
                " reaches past the end of the " + std::to_string(size_) + "-byte image");
  switch (v.kind) {
    case FrameKind::kWrite:
      stats_.writes += 1;
      stats_.write_bytes += v.length;
      if (Status s = pwrite_all(fd_, v.payload, v.payload_len, v.offset); !s) return fail(s.message());
      return Status::ok();
    case FrameKind::kWriteZeroes:
      stats_.write_zeroes += 1;
      stats_.write_zeroes_bytes += v.length;
      if (Status s = write_zeroes(v.offset, v.length, false); !s) return fail(s.message());
      return Status::ok();
    case FrameKind::kDiscard:
      stats_.discards += 1;
      stats_.discard_bytes += v.length;
      if (options_.discard == ReplayOptions::Discard::kSkip) return Status::ok();
      if (Status s = write_zeroes(v.offset, v.length,
                                  options_.discard == ReplayOptions::Discard::kPunchHole);
          !s)
        return fail(s.message());
      return Status::ok();
    default:
      return fail("unexpected kind");
  }
}

Status ImageReplayer::finish() {
  if (::fsync(fd_) != 0) return Status::error(std::string("replay: fsync: ") + std::strerror(errno));
  return Status::ok();
}

}  // namespace dsvmi
