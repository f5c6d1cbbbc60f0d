// dsvmi daemon: serve attach/detach/status/policy/watch on a Unix socket.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.h"
#include "usage.h"
#include "daemon_client.h"

namespace dsvmi::cli {

int cmd_daemon(int argc, char** argv) {
  DaemonOptions o;
  o.socket_path = default_daemon_socket();
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--socket" && i + 1 < argc) o.socket_path = argv[++i];
    else if (a == "--state-dir" && i + 1 < argc) o.state_dir = argv[++i];
    else if (a == "--metrics-file" && i + 1 < argc) o.metrics_file = argv[++i];
    else if (a == "--metrics-listen" && i + 1 < argc) o.metrics_listen = argv[++i];
    else {
      std::fprintf(is_help_arg(a.c_str()) ? stdout : stderr,
                   "usage: dsvmi daemon [--socket PATH] [--state-dir DIR] [--metrics-file FILE]\n"
                   "                    [--metrics-listen 127.0.0.1:PORT]\n"
                   "Manages monitored disks; the CLI (attach, detach, status, policy, watch) talks to it\n"
                   "over PATH (default $DSVMI_SOCKET or ${XDG_RUNTIME_DIR:-/tmp}/dsvmi.sock).\n"
                   "  --state-dir     rings, gates, indexes, engine logs (default /dev/shm/dsvmi-UID)\n"
                   "  --metrics-file  Prometheus textfile rewritten every 5 s (node_exporter textfile collector)\n"
                   "  --metrics-listen  serve the same metrics at http://ADDR/metrics (loopback only)\n");
      return is_help_arg(a.c_str()) ? 0 : 2;
    }
  }
  if (!o.metrics_listen.empty()) {
    std::string host;
    int port;
    if (Status s = parse_listen_address(o.metrics_listen, &host, &port); !s) {
      std::fprintf(stderr, "dsvmi daemon: %s\n", s.message().c_str());
      return 2;
    }
  }
  if (o.state_dir.empty()) o.state_dir = "/dev/shm/dsvmi-" + std::to_string(::getuid());
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    std::fprintf(stderr, "dsvmi daemon: cannot resolve /proc/self/exe\n");
    return 1;
  }
  o.self_exe.assign(exe, size_t(n));
  return run_daemon(o);
}

}  // namespace dsvmi::cli
