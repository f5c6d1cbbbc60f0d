// A minimal synchronous QMP client: greeting, qmp_capabilities, execute.
// Asynchronous QMP events are skipped. Every wait is bounded.
#pragma once
#include <string>

#include "dsvmi/daemon_json.h"
#include "dsvmi/status.h"

namespace dsvmi::daemon_internal {

class QmpClient {
 public:
  ~QmpClient();
  // Connects and negotiates capabilities.
  Status connect(const std::string& socket_path, int timeout_ms = 10000);
  // Runs a command; an {"error": ...} reply becomes an error Status whose
  // message is QEMU's desc.
  Status execute(const std::string& command, const Json& arguments, Json* result);

 private:
  int fd_ = -1;
  int timeout_ms_ = 10000;
  std::string buffer_;
};

}  // namespace dsvmi::daemon_internal
