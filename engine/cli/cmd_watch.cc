// dsvmi watch 'HOST:VM:/path/**': file events as they happen. JSON Lines when
// stdout is not a terminal; aligned, coloured columns when it is.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "../daemon/line_socket.h"
#include "commands.h"
#include "usage.h"
#include "daemon_client.h"

namespace dsvmi::cli {

int cmd_watch(int argc, char** argv) {
  std::string socket = take_socket_arg(&argc, argv);
  if (argc != 1 || argv[0][0] == '-') {
    return usage_exit(wants_help(argc, argv),
                      "usage: dsvmi watch 'HOST:VM:/PATH-GLOB' [--socket DAEMON]\n"
                      "Streams the file events of every attached disk whose name matches HOST:VM\n"
                      "and whose path matches the glob: JSON Lines when stdout is not a terminal.\n");
  }
  int fd;
  if (Status s = daemon_internal::connect_unix(socket, &fd); !s) {
    std::fprintf(stderr, "dsvmi watch: %s (is the daemon running?)\n", s.message().c_str());
    return 1;
  }
  Json req(Json::Object{}), args(Json::Object{});
  args.set("pattern", argv[0]);
  req.set("execute", "watch");
  req.set("arguments", args);
  std::string buf, line;
  Status s = daemon_internal::write_all(fd, req.dump() + "\n");
  if (s) s = daemon_internal::read_line(fd, &buf, &line, 10000);
  Json reply;
  if (s) s = Json::parse(line, &reply);
  if (s && reply.get("error")) s = Status::error(reply.get("error")->get_string("desc"));
  if (!s) {
    std::fprintf(stderr, "dsvmi watch: %s\n", s.message().c_str());
    return 1;
  }
  const bool tty = ::isatty(1);
  while ((s = daemon_internal::read_line(fd, &buf, &line, -1))) {
    Json msg;
    if (!Json::parse(line, &msg) || !msg.get("data")) continue;
    const Json& ev = *msg.get("data");
    if (!tty) {
      std::printf("%s\n", ev.dump().c_str());
    } else {
      std::string type = ev.get_string("event", "?");
      const char* colour = type == "create" ? "\033[32m" : type == "delete" ? "\033[31m"
                           : type == "rename" ? "\033[33m" : "\033[36m";
      std::string path = ev.get_string("path");
      if (const Json* from = ev.get("old_path"); from && from->is_string()) path = from->as_string() + " -> " + path;
      std::printf("%-24s %s%-8s\033[0m %s\n", ev.get_string("disk").c_str(), colour, type.c_str(), path.c_str());
    }
    std::fflush(stdout);
  }
  std::fprintf(stderr, "dsvmi watch: %s\n", s.message().c_str());
  return 1;
}

}  // namespace dsvmi::cli
