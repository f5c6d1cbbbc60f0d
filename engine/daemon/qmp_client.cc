#include "qmp_client.h"

#include <unistd.h>

#include "line_socket.h"

namespace dsvmi::daemon_internal {

QmpClient::~QmpClient() {
  if (fd_ >= 0) ::close(fd_);
}

Status QmpClient::connect(const std::string& socket_path, int timeout_ms) {
  timeout_ms_ = timeout_ms;
  Status s = connect_unix(socket_path, &fd_);
  if (!s) return s;
  std::string line;
  if (!(s = read_line(fd_, &buffer_, &line, timeout_ms_))) return Status::error("no QMP greeting: " + s.message());
  Json greeting;
  if (!Json::parse(line, &greeting) || !greeting.get("QMP"))
    return Status::error("not a QMP socket (no {\"QMP\": ...} greeting)");
  Json ignored;
  return execute("qmp_capabilities", Json(Json::Object{}), &ignored);
}

Status QmpClient::execute(const std::string& command, const Json& arguments, Json* result) {
  Json req(Json::Object{});
  req.set("execute", command);
  if (arguments.is_object() && !arguments.as_object().empty()) req.set("arguments", arguments);
  Status s = write_all(fd_, req.dump() + "\n");
  if (!s) return s;
  while (true) {
    std::string line;
    if (!(s = read_line(fd_, &buffer_, &line, timeout_ms_))) return Status::error("QMP " + command + ": " + s.message());
    Json reply;
    if (!(s = Json::parse(line, &reply))) return Status::error("QMP " + command + ": " + s.message());
    if (reply.get("event")) continue;
    if (const Json* err = reply.get("error")) return Status::error(err->get_string("desc", "unknown QMP error"));
    if (const Json* ret = reply.get("return")) {
      *result = *ret;
      return Status::ok();
    }
  }
}

}  // namespace dsvmi::daemon_internal
