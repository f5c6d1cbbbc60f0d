// Publisher: every event the daemon emits, onto a NATS JetStream stream
// (docs/stream.md). publish() never touches the network: it appends to a
// bounded in-memory outbox and returns; one thread of the publisher's own
// sends the outbox in order, asynchronously, a window at a time, and drops
// an entry only once JetStream acknowledged it. Every entry carries a
// message id (Nats-Msg-Id) fixed when it entered the outbox, so a re-send
// after a lost acknowledgement or a reconnect is discarded by the server's
// duplicate window instead of stored twice. While the broker is
// unreachable the outbox fills; past its bound new events of a disk are
// counted (never blocking the caller) and, once there is room again, one
// "stream_lost" record on that disk's subject says how many.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "dsvmi/daemon_json.h"
#include "dsvmi/status.h"

namespace dsvmi::stream {

struct PublisherOptions {
  std::string urls;  // "nats://h:p[,nats://h2:p2...]"
  std::string creds_file;  // NATS credentials file (JWT + nkey seed; "" = none)
  std::string stream = "DSVMI";
  std::string prefix = "dsvmi";  // subjects prefix.<host>.<vm>.<disk>.<event>; the stream takes prefix.>
  int replicas = 0;              // 0: min(3, servers the connection knows of)
  int64_t max_age_s = 7 * 24 * 3600;
  int64_t max_bytes = int64_t(1) << 30;
  int64_t duplicate_window_s = 600;  // a re-send later than this after the first send can be stored twice
  size_t outbox_bytes = size_t(64) << 20;  // bound of the outbox: payload + subject + id bytes
  size_t window = 256;                     // messages in flight (sent, not yet acknowledged)
  double ack_wait_s = 5;                   // a window not acknowledged by then is sent again
};

// Counters since start; a snapshot (cheap: one short lock).
struct PublisherStats {
  bool connected = false;
  uint64_t accepted = 0;        // events that entered the outbox
  uint64_t acknowledged = 0;    // stored by JetStream (duplicates of a re-send counted once)
  uint64_t duplicates = 0;      // acknowledgements saying "duplicate" (a re-send the server had)
  uint64_t in_flight = 0;       // sent, not yet acknowledged
  uint64_t outbox_events = 0, outbox_bytes = 0;
  uint64_t dropped = 0;         // events refused because the outbox was full
  uint64_t lost_records = 0;    // stream_lost records queued for them
  uint64_t resends = 0;         // windows sent again
  uint64_t connects = 0;        // connections made (1 = no reconnect so far)
  uint64_t ack_latency_us_p50 = 0, ack_latency_us_p99 = 0, ack_latency_count = 0;  // outbox entry -> ack
  std::string last_error;       // the last connection/publish problem ("" = none)
  Json to_json() const;
};

class Publisher {
 public:
  // Checks the options and starts the sending thread; never waits for the
  // broker (an unreachable broker is retried in the background, and
  // reported in stats()).
  static Status start(const PublisherOptions& options, std::unique_ptr<Publisher>* out);
  ~Publisher();  // stops the thread; what the outbox still holds is not sent
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // `event` is a daemon event record (docs/events.md, with "disk" the
  // attachment name "HOST:VM:DISK"). Adds "host", "vm", "disk_seq" (per
  // disk, from 1, no gaps, in this publisher's run) and "run"; false = the
  // outbox was full and the event was counted as dropped. Caller: one
  // thread (the daemon loop).
  bool publish(std::string_view disk_name, Json event);

  // Waits up to `seconds` for the outbox to be empty (shutdown, tests).
  bool flush(double seconds);

  PublisherStats stats() const;

  struct Impl;

 private:
  explicit Publisher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsvmi::stream
