// The control protocol's wire format (docs/daemon-protocol.md) and its
// client side: one request line, one reply line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdlib>

#include "dsvmi/daemon.h"
#include "line_socket.h"

namespace dsvmi {

Status parse_request(std::string_view line, std::string* command, Json* arguments) {
  Json req;
  Status s = Json::parse(line, &req);
  if (!s) return s;
  if (!req.is_object()) return Status::error("request is not a JSON object");
  const Json* ex = req.get("execute");
  if (!ex || !ex->is_string()) return Status::error("request has no string member 'execute'");
  const Json* args = req.get("arguments");
  if (args && !args->is_object()) return Status::error("'arguments' is not an object");
  *command = ex->as_string();
  *arguments = args ? *args : Json(Json::Object{});
  return Status::ok();
}

Json make_error(const std::string& error_class, const std::string& desc) {
  Json e(Json::Object{});
  e.set("class", error_class);
  e.set("desc", desc);
  Json r(Json::Object{});
  r.set("error", e);
  return r;
}

Json make_return(Json value) {
  Json r(Json::Object{});
  r.set("return", std::move(value));
  return r;
}

std::string default_daemon_socket() {
  if (const char* s = std::getenv("DSVMI_SOCKET"); s && *s) return s;
  const char* run = std::getenv("XDG_RUNTIME_DIR");
  return std::string(run && *run ? run : "/tmp") + "/dsvmi.sock";
}

Status daemon_call(const std::string& socket_path, const std::string& command, const Json& arguments,
                   Json* result) {
  int fd;
  Status s = daemon_internal::connect_unix(socket_path, &fd);
  if (!s) return Status::error(s.message() + " (is `dsvmi daemon --socket " + socket_path + "` running?)");
  Json req(Json::Object{});
  req.set("execute", command);
  req.set("arguments", arguments);
  s = daemon_internal::write_all(fd, req.dump() + "\n");
  std::string buf, line;
  if (s) s = daemon_internal::read_line(fd, &buf, &line, -1);
  ::close(fd);
  if (!s) return s;
  Json reply;
  if (!(s = Json::parse(line, &reply))) return s;
  if (const Json* e = reply.get("error")) return Status::error(e->get_string("desc"));
  const Json* r = reply.get("return");
  if (!r) return Status::error("daemon reply has neither 'return' nor 'error'");
  *result = *r;
  return Status::ok();
}

Status parse_listen_address(const std::string& spec, std::string* host, int* port) {
  size_t colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size())
    return Status::error("metrics address must be HOST:PORT, e.g. 127.0.0.1:9717, not '" + spec + "'");
  std::string h = spec.substr(0, colon), p = spec.substr(colon + 1);
  if (h == "localhost") h = "127.0.0.1";
  in_addr a;
  if (::inet_pton(AF_INET, h.c_str(), &a) != 1)
    return Status::error("metrics address: '" + h + "' is not an IPv4 address");
  if ((ntohl(a.s_addr) >> 24) != 127)
    return Status::error("metrics address: " + h + " is not a loopback address (the endpoint has no authentication; "
                                                   "put a reverse proxy in front to expose it)");
  char* end;
  long port_no = std::strtol(p.c_str(), &end, 10);
  if (*end || port_no < 1 || port_no > 65535) return Status::error("metrics address: bad port '" + p + "'");
  *host = h;
  *port = int(port_no);
  return Status::ok();
}

}  // namespace dsvmi
