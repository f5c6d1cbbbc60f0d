// Subscriber: the events of the JetStream stream the publisher writes
// (docs/stream.md, "Subscribing"), through a pull consumer. With a durable
// name the consumer lives on the server: a restarted subscriber resumes
// after the last event it acknowledged. Every message is untrusted (any
// client allowed to publish on the subjects can write one): a payload that
// is not an event record of docs/events.md is counted, terminated (the
// server will not deliver it again) and skipped.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dsvmi/daemon_json.h"
#include "dsvmi/status.h"

namespace dsvmi::stream {

struct SubscriberOptions {
  std::string urls, creds_file;
  std::string stream = "DSVMI";
  std::string prefix = "dsvmi";
  std::string host_glob = "*", vm_glob = "*";  // the part NATS wildcards can express is the consumer's filter
  std::string durable;   // "" = an ephemeral consumer, gone when the subscriber goes
  bool from_start = false;  // a new consumer starts at the stream's first event (else at the next new one)
  int batch = 256;
};

struct SubscriberStats {
  uint64_t received = 0;   // messages fetched
  uint64_t delivered = 0;  // handed to the callback
  uint64_t malformed = 0;  // not an event record: terminated and skipped
  std::string last_malformed;  // why the last one was refused
};

class Subscriber {
 public:
  static Status open(const SubscriberOptions& options, std::unique_ptr<Subscriber>* out);
  ~Subscriber();  // a durable consumer stays on the server
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Fetches up to min(max, batch) messages (waiting up to timeout_ms for the first),
  // calls on_event for each valid event record in stream order, then
  // acknowledges the batch (synchronously: once poll returns ok, a
  // restarted durable subscriber does not see these again). A timeout with
  // nothing to fetch is ok.
  Status poll(int timeout_ms, int max, const std::function<void(const Json&)>& on_event);

  const SubscriberStats& stats() const { return stats_; }

  // The consumer's filter subject (for messages and tests).
  const std::string& filter() const { return filter_; }

  struct Impl;

 private:
  Subscriber() = default;
  std::unique_ptr<Impl> impl_;
  SubscriberStats stats_;
  std::string filter_;
  int batch_ = 256;
};

// Checks one message payload: a JSON object with string "event" and
// "disk"; false with *why set otherwise.
bool parse_event_record(std::string_view payload, Json* out, std::string* why);

}  // namespace dsvmi::stream
