// The NATS connection both sides make (docs/stream.md, "Connection").
#pragma once
#include <nats/nats.h>

#include <string>

#include "dsvmi/status.h"

namespace dsvmi::stream {

struct ConnectOptions {
  std::string urls;  // comma-separated
  std::string creds_file;
  bool reconnect = true;
  int timeout_ms = 2000;
};

// One connection to the first server of `urls` that answers; the error
// names the servers and the library's reason (e.g. "authorization
// violation").
Status nats_connect(const ConnectOptions& o, natsConnection** out);

// natsStatus text plus the library's last error detail, if any.
std::string nats_error_text(natsStatus s);

}  // namespace dsvmi::stream
