// dsvmi daemon: serve attach/detach/status/policy/watch on a Unix socket.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "commands.h"
#include "dsvmi/stream_publisher.h"
#include "usage.h"
#include "daemon_client.h"

namespace dsvmi::cli {

namespace {

// The daemon's events onto JetStream (docs/stream.md).
class PublisherTap : public EventTap {
 public:
  explicit PublisherTap(stream::Publisher* p) : p_(p) {}
  void on_event(const std::string& disk_name, const Json& event) override { p_->publish(disk_name, event); }
  Json status() const override { return p_->stats().to_json(); }

 private:
  stream::Publisher* p_;
};

bool parse_size(const char* s, size_t* out) {
  char* end = nullptr;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (end == s) return false;
  std::string suf = end;
  if (suf == "K" || suf == "k") v <<= 10;
  else if (suf == "M" || suf == "m") v <<= 20;
  else if (suf == "G" || suf == "g") v <<= 30;
  else if (!suf.empty()) return false;
  *out = size_t(v);
  return true;
}

}  // namespace

int cmd_daemon(int argc, char** argv) {
  DaemonOptions o;
  stream::PublisherOptions nats;
  bool bad_size = false;
  o.socket_path = default_daemon_socket();
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--socket" && i + 1 < argc) o.socket_path = argv[++i];
    else if (a == "--state-dir" && i + 1 < argc) o.state_dir = argv[++i];
    else if (a == "--metrics-file" && i + 1 < argc) o.metrics_file = argv[++i];
    else if (a == "--metrics-listen" && i + 1 < argc) o.metrics_listen = argv[++i];
    else if (a == "--nats" && i + 1 < argc) nats.urls = argv[++i];
    else if (a == "--nats-creds" && i + 1 < argc) nats.creds_file = argv[++i];
    else if (a == "--nats-stream" && i + 1 < argc) nats.stream = argv[++i];
    else if (a == "--nats-replicas" && i + 1 < argc) nats.replicas = std::atoi(argv[++i]);
    else if (a == "--nats-outbox" && i + 1 < argc) bad_size |= !parse_size(argv[++i], &nats.outbox_bytes);
    else {
      std::fprintf(is_help_arg(a.c_str()) ? stdout : stderr,
                   "usage: dsvmi daemon [--socket PATH] [--state-dir DIR] [--metrics-file FILE]\n"
                   "                    [--metrics-listen 127.0.0.1:PORT] [--nats URL[,URL...] [--nats-creds FILE]\n"
                   "                    [--nats-stream NAME] [--nats-replicas N] [--nats-outbox BYTES[K|M|G]]]\n"
                   "Manages monitored disks; the CLI (attach, detach, status, policy, watch) talks to it\n"
                   "over PATH (default $DSVMI_SOCKET or ${XDG_RUNTIME_DIR:-/tmp}/dsvmi.sock).\n"
                   "  --state-dir     rings, gates, indexes, engine logs (default /dev/shm/dsvmi-UID)\n"
                   "  --metrics-file  Prometheus textfile rewritten every 5 s (node_exporter textfile collector)\n"
                   "  --metrics-listen  serve the same metrics at http://ADDR/metrics (loopback only)\n"
                   "  --nats          also publish every event to NATS JetStream, stream DSVMI, subjects\n"
                   "                  dsvmi.HOST.VM.DISK.EVENT (docs/stream.md); --nats-outbox bounds what waits\n"
                   "                  in memory while the broker is unreachable (default 64M)\n");
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
  if (bad_size) {
    std::fprintf(stderr, "dsvmi daemon: --nats-outbox takes a byte count with an optional K, M or G suffix\n");
    return 2;
  }
  std::unique_ptr<stream::Publisher> pub;
  std::unique_ptr<PublisherTap> tap;
  if (!nats.urls.empty()) {
    if (Status s = stream::Publisher::start(nats, &pub); !s) {
      std::fprintf(stderr, "dsvmi daemon: %s\n", s.message().c_str());
      return 2;
    }
    tap = std::make_unique<PublisherTap>(pub.get());
    o.tap = tap.get();
  }
  int rc = run_daemon(o);
  if (pub && !pub->flush(5)) {
    stream::PublisherStats st = pub->stats();
    std::fprintf(stderr, "dsvmi daemon: %llu events not acknowledged by NATS at exit (%s)\n",
                 (unsigned long long)st.outbox_events, st.last_error.c_str());
  }
  return rc;
}

}  // namespace dsvmi::cli
