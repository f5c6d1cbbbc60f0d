#include "nats_util.h"

#include <vector>

namespace dsvmi::stream {

std::string nats_error_text(natsStatus s) {
  std::string t = natsStatus_GetText(s);
  const char* last = nats_GetLastError(nullptr);
  if (last && *last && t != last) t += std::string(" (") + last + ")";
  return t;
}

Status nats_connect(const ConnectOptions& o, natsConnection** out) {
  *out = nullptr;
  std::vector<std::string> urls;
  size_t start = 0;
  while (start <= o.urls.size()) {
    size_t comma = o.urls.find(',', start);
    if (comma == std::string::npos) comma = o.urls.size();
    if (comma > start) urls.push_back(o.urls.substr(start, comma - start));
    start = comma + 1;
  }
  if (urls.empty()) return Status::error("nats: no server URL");
  std::vector<const char*> ptrs;
  for (auto& u : urls) ptrs.push_back(u.c_str());
  natsOptions* opts = nullptr;
  natsStatus ns = natsOptions_Create(&opts);
  if (ns == NATS_OK) ns = natsOptions_SetServers(opts, ptrs.data(), int(ptrs.size()));
  if (ns == NATS_OK) ns = natsOptions_SetNoRandomize(opts, true);
  if (ns == NATS_OK) ns = natsOptions_SetTimeout(opts, o.timeout_ms);
  if (ns == NATS_OK) ns = natsOptions_SetAllowReconnect(opts, o.reconnect);
  if (ns == NATS_OK && o.reconnect) ns = natsOptions_SetMaxReconnect(opts, -1);
  if (ns == NATS_OK && !o.creds_file.empty())
    ns = natsOptions_SetUserCredentialsFromFiles(opts, o.creds_file.c_str(), nullptr);
  if (ns != NATS_OK) {
    natsOptions_Destroy(opts);
    return Status::error("nats: options: " + nats_error_text(ns));
  }
  ns = natsConnection_Connect(out, opts);
  natsOptions_Destroy(opts);
  if (ns != NATS_OK) {
    *out = nullptr;
    return Status::error("nats: cannot connect to " + o.urls + ": " + nats_error_text(ns));
  }
  return Status::ok();
}

}  // namespace dsvmi::stream
