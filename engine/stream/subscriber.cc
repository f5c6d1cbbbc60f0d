// Pull consumer of the event stream (docs/stream.md, "Subscribing").
#include "dsvmi/stream_subscriber.h"

#include <nats/nats.h>

#include "dsvmi/stream_subject.h"
#include "nats_util.h"

namespace dsvmi::stream {

struct Subscriber::Impl {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  natsSubscription* sub = nullptr;
  bool ephemeral = false;
  ~Impl() {
    // Unsubscribe deletes the consumer the library created: only for an
    // ephemeral one; a durable must outlive us (facts: destroy instead).
    if (sub && ephemeral) natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    if (nc) natsConnection_Close(nc);
    natsConnection_Destroy(nc);
  }
};

bool parse_event_record(std::string_view payload, Json* out, std::string* why) {
  if (Status s = Json::parse(payload, out); !s) {
    *why = "not JSON: " + s.message();
    return false;
  }
  if (!out->is_object()) {
    *why = "not a JSON object";
    return false;
  }
  const Json* ev = out->get("event");
  const Json* disk = out->get("disk");
  if (!ev || !ev->is_string() || ev->as_string().empty()) {
    *why = "no \"event\" string";
    return false;
  }
  if (!disk || !disk->is_string()) {
    *why = "no \"disk\" string";
    return false;
  }
  return true;
}

Subscriber::~Subscriber() = default;

Status Subscriber::open(const SubscriberOptions& o, std::unique_ptr<Subscriber>* out) {
  if (o.batch < 1 || o.batch > 4096) return Status::error("nats: batch must be 1..4096");
  if (o.durable.find_first_of(".*> ") != std::string::npos)
    return Status::error("nats: a durable name cannot hold '.', '*', '>' or spaces: '" + o.durable + "'");
  std::unique_ptr<Subscriber> s(new Subscriber());
  s->impl_ = std::make_unique<Impl>();
  Impl& m = *s->impl_;
  ConnectOptions co;
  co.urls = o.urls;
  co.creds_file = o.creds_file;
  co.reconnect = true;  // a subscriber only reads: the library's reconnect is fine
  if (Status st = nats_connect(co, &m.nc); !st) return st;
  natsStatus ns = natsConnection_JetStream(&m.js, m.nc, nullptr);
  if (ns != NATS_OK) return Status::error("nats: JetStream context: " + nats_error_text(ns));
  s->filter_ = filter_subject(o.prefix, o.host_glob, o.vm_glob);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = o.stream.c_str();
  so.Config.AckPolicy = js_AckAll;  // one synchronous ack per batch acknowledges it all
  so.Config.DeliverPolicy = o.from_start ? js_DeliverAll : js_DeliverNew;
  so.Config.MaxAckPending = 65536;
  so.Config.AckWait = 30LL * 1000000000LL;
  m.ephemeral = o.durable.empty();
  jsErrCode jerr = jsErrCode(0);
  if (!m.ephemeral) {
    // An existing durable keeps its position and settings: bind to it
    // (asking for another deliver policy would be refused as a mismatch).
    jsConsumerInfo* ci = nullptr;
    if (js_GetConsumerInfo(&ci, m.js, o.stream.c_str(), o.durable.c_str(), nullptr, &jerr) == NATS_OK) {
      bool same = ci->Config && ci->Config->FilterSubject && s->filter_ == ci->Config->FilterSubject;
      std::string had = ci->Config && ci->Config->FilterSubject ? ci->Config->FilterSubject : "";
      jsConsumerInfo_Destroy(ci);
      if (!same)
        return Status::error("nats: durable '" + o.durable + "' exists with filter '" + had + "', not " + s->filter_ +
                             " (use another --durable name)");
      jsSubOptions_Init(&so);  // bind with no settings of ours: the server's are compared to them
      so.Stream = o.stream.c_str();
      so.Consumer = o.durable.c_str();
    }
  }
  ns = js_PullSubscribe(&m.sub, m.js, s->filter_.c_str(), m.ephemeral ? nullptr : o.durable.c_str(), nullptr, &so,
                        &jerr);
  if (ns != NATS_OK)
    return Status::error("nats: cannot subscribe to " + s->filter_ + " on stream " + o.stream + ": " +
                         nats_error_text(ns));
  s->batch_ = o.batch;
  *out = std::move(s);
  return Status::ok();
}

Status Subscriber::poll(int timeout_ms, int max, const std::function<void(const Json&)>& on_event) {
  natsMsgList list = {};
  jsErrCode jerr = jsErrCode(0);
  int n = max < 1 ? 1 : max > batch_ ? batch_ : max;
  natsStatus ns = natsSubscription_Fetch(&list, impl_->sub, n, timeout_ms, &jerr);
  if (ns == NATS_TIMEOUT) return Status::ok();
  if (ns != NATS_OK) return Status::error("nats: fetch: " + nats_error_text(ns));
  natsMsg* last = nullptr;
  for (int i = 0; i < list.Count; ++i) {
    natsMsg* msg = list.Msgs[i];
    ++stats_.received;
    Json ev;
    std::string why;
    if (!parse_event_record(std::string_view(natsMsg_GetData(msg), size_t(natsMsg_GetDataLength(msg))), &ev, &why)) {
      ++stats_.malformed;
      stats_.last_malformed = std::string(natsMsg_GetSubject(msg)) + ": " + why;
      for (char& ch : stats_.last_malformed)  // it quotes peer bytes: keep the terminal sane
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
      continue;
    }
    ++stats_.delivered;
    on_event(ev);
    last = msg;
  }
  if (!last && list.Count > 0) last = list.Msgs[list.Count - 1];
  Status st;
  if (last) {
    ns = natsMsg_AckSync(last, nullptr, &jerr);  // AckAll: this acknowledges the whole batch
    if (ns != NATS_OK) st = Status::error("nats: acknowledgement: " + nats_error_text(ns));
  }
  natsMsgList_Destroy(&list);
  return st;
}

}  // namespace dsvmi::stream
