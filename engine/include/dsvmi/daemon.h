// dsvmi daemon: one host process managing many monitored disks. Clients (the
// dsvmi CLI) speak a line-delimited JSON protocol in the spirit of QMP over a
// Unix socket (docs/daemon-protocol.md). Each attachment's engine is a child
// process (`dsvmi run`), so one engine crash takes down neither the daemon,
// nor other attachments, nor a VM.
#pragma once
#include <string>

#include "dsvmi/daemon_json.h"
#include "dsvmi/status.h"

namespace dsvmi {

// Sees every event the daemon sends to its watchers, whether or not a
// watcher is connected (docs/stream.md): called on the daemon's loop thread,
// in order per disk, with "disk" already the attachment name. It must return
// at once (queue, never wait on a network).
class EventTap {
 public:
  virtual ~EventTap() = default;
  virtual void on_event(const std::string& disk_name, const Json& event) = 0;
  // For the `stream-status` request and the metrics (docs/daemon-protocol.md).
  virtual Json status() const = 0;
};

struct DaemonOptions {
  std::string socket_path;
  std::string state_dir;     // rings, gates, indexes, engine logs
  std::string self_exe;      // the dsvmi binary whose subcommands do the work
  std::string metrics_file;  // Prometheus textfile, rewritten every few seconds ("" = none)
  std::string metrics_listen;  // "127.0.0.1:PORT": GET /metrics over HTTP from the same loop ("" = none)
  EventTap* tap = nullptr;     // e.g. the NATS publisher of `--nats` (nullptr = none); outlives the daemon
};

// Serves until SIGINT/SIGTERM; detaches everything on the way out.
int run_daemon(const DaemonOptions& options);

// Protocol helpers (shared by daemon and client; unit-tested).
// A request line: {"execute": NAME, "arguments": {...}} (arguments optional).
Status parse_request(std::string_view line, std::string* command, Json* arguments);
Json make_error(const std::string& error_class, const std::string& desc);
Json make_return(Json value);

// Client side: connects, sends one request, reads one reply line.
// On a protocol error reply, returns an error Status with the desc.
Status daemon_call(const std::string& socket_path, const std::string& command, const Json& arguments,
                   Json* result);
// "HOST:PORT" of --metrics-listen; only IPv4 loopback addresses (the endpoint
// has no authentication).
Status parse_listen_address(const std::string& spec, std::string* host, int* port);
// Default socket: $DSVMI_SOCKET, else ${XDG_RUNTIME_DIR:-/tmp}/dsvmi.sock.
std::string default_daemon_socket();

}  // namespace dsvmi
