// Unix stream sockets carrying one JSON object per line, with bounded lines
// (a peer that never sends '\n' cannot make us buffer without limit).
#pragma once
#include <string>

#include "dsvmi/daemon_json.h"
#include "dsvmi/status.h"

namespace dsvmi::daemon_internal {

constexpr size_t kMaxLine = 4 << 20;

Status connect_unix(const std::string& path, int* fd);
Status write_all(int fd, std::string_view data);
// Reads one line (without '\n') within timeout_ms (-1: forever), keeping
// surplus bytes in *buffer for the next call.
Status read_line(int fd, std::string* buffer, std::string* line, int timeout_ms);

}  // namespace dsvmi::daemon_internal
