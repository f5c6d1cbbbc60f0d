// TraceWriter: see dsvmi/trace.h for the file layout.
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "dsvmi/trace.h"

namespace dsvmi {
namespace {

constexpr size_t kFlushThreshold = 4u << 20;  // bytes buffered before a write()

void put_u32(std::byte* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = std::byte((v >> (8 * i)) & 0xff);
}

std::string errno_text(const char* what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

}  // namespace

std::unique_ptr<TraceWriter> TraceWriter::create(const std::string& path, Status* error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = Status::error("trace: " + errno_text("cannot create", path));
    return nullptr;
  }
  std::unique_ptr<TraceWriter> w(new TraceWriter(fd));
  std::byte header[kTraceHeaderBytes] = {};
  std::memcpy(header, kTraceMagic, sizeof(kTraceMagic));
  put_u32(header + 8, kTraceFormatVersion);
  put_u32(header + 12, kTraceHeaderBytes);
  w->buffer_.assign(header, header + kTraceHeaderBytes);
  w->bytes_ = kTraceHeaderBytes;
  if (Status s = w->flush(); !s) {
    *error = s;
    return nullptr;
  }
  return w;
}

// A destructor cannot report: a caller that needs to know the trace reached
// the disk calls close() itself (dsvmi capture does).
TraceWriter::~TraceWriter() { (void)close(); }

Status TraceWriter::append(std::span<const std::byte> frame) {
  if (fd_ < 0) return Status::error("trace: append after close");
  if (frame.empty() || frame.size() > kTraceMaxFrameBytes)
    return Status::error("trace: frame of " + std::to_string(frame.size()) +
                         " bytes outside 1.." + std::to_string(kTraceMaxFrameBytes));
  const auto length = static_cast<uint32_t>(frame.size());
  const auto crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(frame.data()), static_cast<uInt>(length)));
  std::byte rec[kTraceRecordHeaderBytes];
  put_u32(rec, length);
  put_u32(rec + 4, crc);
  const size_t pad = (8 - length % 8) % 8;
  buffer_.insert(buffer_.end(), rec, rec + sizeof(rec));
  buffer_.insert(buffer_.end(), frame.begin(), frame.end());
  buffer_.insert(buffer_.end(), pad, std::byte{0});
  records_ += 1;
  bytes_ += sizeof(rec) + length + pad;
  if (buffer_.size() >= kFlushThreshold) return flush();
  return Status::ok();
}

Status TraceWriter::write_all(const std::byte* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd_, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::error(std::string("trace: write: ") + std::strerror(errno));
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::ok();
}

Status TraceWriter::flush(bool durable) {
  if (fd_ < 0) return Status::error("trace: flush after close");
  Status s = write_all(buffer_.data(), buffer_.size());
  buffer_.clear();
  if (s && durable && ::fdatasync(fd_) != 0)
    s = Status::error(std::string("trace: fdatasync: ") + std::strerror(errno));
  return s;
}

Status TraceWriter::close() {
  if (fd_ < 0) return Status::ok();
  Status s = flush(true);
  if (::close(fd_) != 0 && s) s = Status::error(std::string("trace: close: ") + std::strerror(errno));
  fd_ = -1;
  return s;
}

}  // namespace dsvmi
