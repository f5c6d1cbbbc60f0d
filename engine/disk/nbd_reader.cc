#include "nbd_reader.h"

#include <libnbd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace dsvmi {
namespace {

// NBD servers commonly refuse requests above 32 MiB; stay well below.
constexpr uint64_t kMaxCommand = 4u << 20;

Status nbd_failure(const std::string& what) {
  const char* msg = nbd_get_error();
  return Status::error("nbd: " + what + ": " + (msg ? msg : "unknown error"));
}

}  // namespace

std::unique_ptr<DiskReader> NbdReader::open(const std::string& uri, const DiskReaderOptions& options,
                                            Status* error) {
  std::unique_ptr<NbdReader> r(new NbdReader());
  r->uri_ = uri;
  r->depth_ = options.queue_depth == 0 ? 1 : (options.queue_depth > 64 ? 64 : options.queue_depth);
  r->nbd_ = nbd_create();
  if (r->nbd_ == nullptr) {
    *error = nbd_failure("cannot create handle");
    return nullptr;
  }
  if (nbd_connect_uri(r->nbd_, uri.c_str()) == -1) {
    *error = nbd_failure("cannot connect to " + uri);
    return nullptr;
  }
  int64_t size = nbd_get_size(r->nbd_);
  if (size < 0) {
    *error = nbd_failure("cannot get export size of " + uri);
    return nullptr;
  }
  r->size_ = static_cast<uint64_t>(size);
  return r;
}

NbdReader::~NbdReader() {
  if (nbd_ != nullptr) {
    nbd_shutdown(nbd_, 0);
    nbd_close(nbd_);
  }
}

Status NbdReader::read(uint64_t offset, std::span<std::byte> out) {
  ReadRequest r{offset, out};
  return read_batch(std::span<const ReadRequest>(&r, 1));
}

Status NbdReader::read_batch(std::span<const ReadRequest> requests) {
  for (const ReadRequest& r : requests) {
    if (r.offset > size_ || r.out.size() > size_ - r.offset) {
      return Status::error("nbd: read of " + std::to_string(r.out.size()) + " bytes at offset " +
                           std::to_string(r.offset) + " is past the end of " + uri_);
    }
  }
  std::vector<int64_t> cookies;
  cookies.reserve(depth_);
  size_t next_req = 0;
  uint64_t next_pos = 0;
  Status failure;
  for (;;) {
    while (failure.is_ok() && cookies.size() < depth_ && next_req < requests.size()) {
      const ReadRequest& r = requests[next_req];
      if (next_pos >= r.out.size()) {
        next_req++;
        next_pos = 0;
        continue;
      }
      uint64_t len = r.out.size() - next_pos;
      if (len > kMaxCommand) len = kMaxCommand;
      int64_t cookie = nbd_aio_pread(nbd_, r.out.data() + next_pos, len, r.offset + next_pos,
                                     NBD_NULL_COMPLETION, 0);
      if (cookie == -1) {
        failure = nbd_failure("pread at offset " + std::to_string(r.offset + next_pos));
        break;
      }
      cookies.push_back(cookie);
      next_pos += len;
    }
    if (cookies.empty()) break;
    // Reap whatever completed; wait for the connection otherwise.
    bool reaped = false;
    for (size_t i = 0; i < cookies.size();) {
      int rc = nbd_aio_command_completed(nbd_, cookies[i]);
      if (rc == 0) {
        i++;
        continue;
      }
      if (rc == -1 && failure.is_ok()) failure = nbd_failure("read failed");
      cookies[i] = cookies.back();
      cookies.pop_back();
      reaped = true;
    }
    if (!reaped && !cookies.empty()) {
      if (nbd_poll(nbd_, -1) == -1) return nbd_failure("poll failed");
    }
  }
  return failure;
}

}  // namespace dsvmi
