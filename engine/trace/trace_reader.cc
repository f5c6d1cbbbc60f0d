// TraceReader: see dsvmi/trace.h for the file layout. Every length read from
// the file is checked against kTraceMaxFrameBytes and against the bytes left
// in the file before anything is allocated or read.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "dsvmi/trace.h"

namespace dsvmi {
namespace {

uint32_t get_u32(const std::byte* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace

std::unique_ptr<TraceReader> TraceReader::open(const std::string& path, Status* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = Status::error("trace: cannot open " + path + ": " + std::strerror(errno));
    return nullptr;
  }
  std::unique_ptr<TraceReader> r(new TraceReader());
  r->fd_ = fd;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *error = Status::error("trace: " + path + " is not a regular file");
    return nullptr;
  }
  r->size_ = static_cast<uint64_t>(st.st_size);
  if (Status s = r->check_header(); !s) {
    *error = Status::error(s.message() + " (" + path + ")");
    return nullptr;
  }
  return r;
}

std::unique_ptr<TraceReader> TraceReader::from_bytes(std::span<const std::byte> bytes,
                                                     Status* error) {
  std::unique_ptr<TraceReader> r(new TraceReader());
  r->memory_.assign(bytes.begin(), bytes.end());
  r->size_ = bytes.size();
  if (Status s = r->check_header(); !s) {
    *error = s;
    return nullptr;
  }
  return r;
}

TraceReader::~TraceReader() {
  if (fd_ >= 0) ::close(fd_);
}

Status TraceReader::read_at(uint64_t offset, std::byte* out, size_t size) {
  if (offset > size_ || size > size_ - offset) return Status::error("trace: read past the end");
  if (fd_ < 0) {
    std::memcpy(out, memory_.data() + offset, size);
    return Status::ok();
  }
  while (size > 0) {
    ssize_t n = ::pread(fd_, out, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::error(std::string("trace: read: ") + std::strerror(errno));
    if (n == 0) return Status::error("trace: file shrank while being read");
    out += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
  return Status::ok();
}

Status TraceReader::check_header() {
  std::byte h[kTraceHeaderBytes];
  if (size_ < kTraceHeaderBytes)
    return Status::error("trace: file of " + std::to_string(size_) +
                         " bytes is shorter than the 32-byte header");
  if (Status s = read_at(0, h, sizeof(h)); !s) return s;
  if (std::memcmp(h, kTraceMagic, sizeof(kTraceMagic)) != 0)
    return Status::error("trace: bad magic (not a dsvmi capture trace)");
  const uint32_t version = get_u32(h + 8);
  if (version != kTraceFormatVersion)
    return Status::error("trace: format version " + std::to_string(version) +
                         " unsupported (this build reads " +
                         std::to_string(kTraceFormatVersion) + ")");
  const uint32_t header_size = get_u32(h + 12);
  if (header_size < kTraceHeaderBytes || header_size % 8 != 0 || header_size > size_)
    return Status::error("trace: bad header size " + std::to_string(header_size));
  offset_ = header_size;
  return Status::ok();
}

TraceReader::Next TraceReader::next(std::span<const std::byte>* frame, Status* error) {
  if (done_ != Next::kFrame) {
    if (done_ == Next::kError) *error = final_error_;
    return done_;
  }
  auto fail = [&](std::string why) {
    final_error_ = Status::error("trace: record " + std::to_string(frames_read_) + " at byte " +
                                 std::to_string(offset_) + ": " + why);
    *error = final_error_;
    done_ = Next::kError;
    return done_;
  };
  const uint64_t left = size_ - offset_;
  if (left == 0) {
    done_ = Next::kEnd;
    return done_;
  }
  if (left < kTraceRecordHeaderBytes)
    return fail("truncated record header (" + std::to_string(left) + " bytes left)");
  std::byte rec[kTraceRecordHeaderBytes];
  if (Status s = read_at(offset_, rec, sizeof(rec)); !s) return fail(s.message());
  const uint32_t length = get_u32(rec);
  const uint32_t crc = get_u32(rec + 4);
  if (length == 0 || length > kTraceMaxFrameBytes)
    return fail("frame length " + std::to_string(length) + " outside 1.." +
                std::to_string(kTraceMaxFrameBytes));
  const uint64_t padded = (uint64_t{length} + 7) & ~uint64_t{7};
  if (padded > left - kTraceRecordHeaderBytes)
    return fail("truncated frame (" + std::to_string(length) + " bytes announced, " +
                std::to_string(left - kTraceRecordHeaderBytes) + " left): the writer stopped mid-record");
  frame_buf_.resize(padded / 8);
  auto* data = reinterpret_cast<std::byte*>(frame_buf_.data());
  if (Status s = read_at(offset_ + kTraceRecordHeaderBytes, data, length); !s)
    return fail(s.message());
  const auto actual = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(data), static_cast<uInt>(length)));
  if (actual != crc) return fail("CRC mismatch (corrupted frame)");
  offset_ += kTraceRecordHeaderBytes + padded;
  frames_read_ += 1;
  *frame = std::span<const std::byte>(data, length);
  return Next::kFrame;
}

}  // namespace dsvmi
