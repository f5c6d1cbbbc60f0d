// The publisher's outbox and sending thread (docs/stream.md, "Delivery").
//
// Why the library's own reconnect is off: while reconnecting, nats.c keeps
// what is published in a reconnect buffer and sends it after the new
// connection's handshake, while whatever was in the dead socket is lost. A
// window re-sent after that would land behind later entries of the same
// window and a disk's events would be stored out of order. With one
// connection at a time and no reconnect buffer, what reaches the server of
// a window is a prefix of it, the re-send of the whole window stores only
// the rest (the prefix is a duplicate), and the order holds.
#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "dsvmi/latency.h"
#include "dsvmi/stream_publisher.h"
#include "dsvmi/stream_subject.h"
#include "nats_util.h"

namespace dsvmi::stream {

namespace {

uint64_t steady_ns() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch()).count());
}

struct Entry {
  std::string subject, msg_id, data;
  uint64_t enqueued_ns = 0;
  size_t bytes() const { return subject.size() + msg_id.size() + data.size(); }
};

struct DiskSeq {
  uint64_t next = 1;
  uint64_t lost = 0;  // dropped since the last stream_lost record
};

}  // namespace

struct Publisher::Impl {
  PublisherOptions opt;
  std::string run;  // this publisher's run id: distinguishes message ids across daemon restarts

  // The daemon thread only.
  std::map<std::string, DiskSeq, std::less<>> disks;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<Entry> outbox;  // references stay valid across push_back/pop_front
  size_t outbox_bytes = 0;
  bool stop = false;
  PublisherStats st;
  LatencyHistogram ack_latency;

  // The sending thread only (and the ack handler it waits for).
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  std::atomic<uint64_t> window_errors{0}, window_dups{0};
  std::string window_error;  // written by the ack handler, read after the window completed
  std::mutex err_mu;
  std::thread thread;

  void note_error(const std::string& e) {
    std::lock_guard<std::mutex> l(mu);
    st.last_error = e;
  }
  void disconnect();
  Status connect();
  Status ensure_stream();
  bool send_window();
  void loop();
  bool wait_stop(double seconds) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, std::chrono::duration<double>(seconds), [&] { return stop; });
  }
};

namespace {

void on_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* impl = static_cast<Publisher::Impl*>(closure);
  if (pa && pa->Duplicate) impl->window_dups++;
  if (!pa) {
    impl->window_errors++;
    std::lock_guard<std::mutex> l(impl->err_mu);
    impl->window_error = pae && pae->ErrText ? pae->ErrText : "publish not acknowledged";
  }
  natsMsg_Destroy(msg);
}

}  // namespace

void Publisher::Impl::disconnect() {
  jsCtx_Destroy(js);
  js = nullptr;
  if (nc) natsConnection_Close(nc);
  natsConnection_Destroy(nc);
  nc = nullptr;
  std::lock_guard<std::mutex> l(mu);
  st.connected = false;
  st.in_flight = 0;
}

Status Publisher::Impl::connect() {
  ConnectOptions co;
  co.urls = opt.urls;
  co.creds_file = opt.creds_file;
  co.reconnect = false;  // see the top of this file
  if (Status s = nats_connect(co, &nc); !s) return s;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = int64_t(opt.window);
  jo.PublishAsync.AckHandler = on_ack;
  jo.PublishAsync.AckHandlerClosure = this;
  jo.Wait = int64_t(opt.ack_wait_s * 1000);
  if (natsStatus ns = natsConnection_JetStream(&js, nc, &jo); ns != NATS_OK) {
    disconnect();
    return Status::error(std::string("nats: JetStream context: ") + natsStatus_GetText(ns));
  }
  if (Status s = ensure_stream(); !s) {
    disconnect();
    return s;
  }
  std::lock_guard<std::mutex> l(mu);
  st.connected = true;
  st.connects++;
  st.last_error.clear();
  return Status::ok();
}

// The stream exists with our subjects and file storage, or is created so.
Status Publisher::Impl::ensure_stream() {
  std::string subjects = opt.prefix + ".>";
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = jsErrCode(0);
  natsStatus ns = js_GetStreamInfo(&si, js, opt.stream.c_str(), nullptr, &jerr);
  if (ns == NATS_OK) {
    bool covers = false;
    for (int i = 0; i < si->Config->SubjectsLen; ++i) covers |= subjects == si->Config->Subjects[i];
    bool file = si->Config->Storage == js_FileStorage;
    jsStreamInfo_Destroy(si);
    if (!covers) return Status::error("nats: stream " + opt.stream + " exists but does not take " + subjects);
    if (!file) return Status::error("nats: stream " + opt.stream + " exists with memory storage (not durable)");
    return Status::ok();
  }
  if (ns != NATS_NOT_FOUND)
    return Status::error("nats: stream info of " + opt.stream + ": " + nats_error_text(ns));
  int replicas = opt.replicas;
  if (replicas <= 0) {
    char** servers = nullptr;
    int n = 0;
    if (natsConnection_GetServers(nc, &servers, &n) == NATS_OK) {
      for (int i = 0; i < n; ++i) free(servers[i]);
      free(servers);
    }
    replicas = n >= 3 ? 3 : 1;  // a JetStream cluster has 3 or more nodes; R2 would halt on one node's loss
  }
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subj[] = {subjects.c_str()};
  cfg.Name = opt.stream.c_str();
  cfg.Subjects = subj;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = replicas;
  cfg.MaxAge = opt.max_age_s * 1000000000LL;
  cfg.MaxBytes = opt.max_bytes;
  cfg.Duplicates = opt.duplicate_window_s * 1000000000LL;
  cfg.Retention = js_LimitsPolicy;
  cfg.Discard = js_DiscardOld;
  ns = js_AddStream(&si, js, &cfg, nullptr, &jerr);
  if (ns != NATS_OK)
    return Status::error("nats: cannot create stream " + opt.stream + " (" + std::to_string(replicas) +
                         " replicas): " + nats_error_text(ns));
  jsStreamInfo_Destroy(si);
  return Status::ok();
}

// Sends the first `window` entries of the outbox and waits for their
// acknowledgements; on success they leave the outbox. false: not all were
// acknowledged (they stay and are sent again).
bool Publisher::Impl::send_window() {
  std::vector<Entry*> win;
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait_for(l, std::chrono::milliseconds(200), [&] { return stop || !outbox.empty(); });
    if (stop || outbox.empty()) return true;
    for (size_t i = 0; i < outbox.size() && i < opt.window; ++i) win.push_back(&outbox[i]);
    st.in_flight = win.size();
  }
  window_errors = 0;
  window_dups = 0;
  {
    std::lock_guard<std::mutex> l(err_mu);
    window_error.clear();
  }
  jsPubOptions po;
  std::string fail;
  for (Entry* e : win) {
    jsPubOptions_Init(&po);
    po.MsgId = e->msg_id.c_str();
    natsStatus ns = js_PublishAsync(js, e->subject.c_str(), e->data.data(), int(e->data.size()), &po);
    if (ns != NATS_OK) {
      fail = "nats: publish: " + nats_error_text(ns);
      break;
    }
  }
  // Wait in short steps: a connection that broke is noticed at once, not
  // after the whole acknowledgement wait.
  natsStatus ns = NATS_TIMEOUT;
  for (double waited = 0; waited < opt.ack_wait_s && ns == NATS_TIMEOUT; waited += 0.1) {
    jsPubOptions_Init(&po);
    po.MaxWait = 100;
    ns = js_PublishAsyncComplete(js, &po);
    if (ns == NATS_TIMEOUT && natsConnection_Status(nc) != NATS_CONN_STATUS_CONNECTED) break;
  }
  if (fail.empty() && ns != NATS_OK) fail = "nats: acknowledgements: " + nats_error_text(ns);
  if (fail.empty() && window_errors > 0) {
    std::lock_guard<std::mutex> l(err_mu);
    fail = "nats: publish refused: " + window_error;
  }
  if (!fail.empty()) {
    natsMsgList pending;
    if (js_PublishAsyncGetPendingList(&pending, js) == NATS_OK) natsMsgList_Destroy(&pending);
    std::lock_guard<std::mutex> l(mu);
    st.resends++;
    st.in_flight = 0;
    st.last_error = fail;
    return false;
  }
  uint64_t now = steady_ns();
  std::lock_guard<std::mutex> l(mu);
  for (size_t i = 0; i < win.size(); ++i) {
    ack_latency.record((now - outbox.front().enqueued_ns) / 1000);
    outbox_bytes -= outbox.front().bytes();
    outbox.pop_front();
  }
  st.acknowledged += win.size();
  st.duplicates += window_dups;
  st.in_flight = 0;
  cv.notify_all();  // flush() waits for an empty outbox
  return true;
}

void Publisher::Impl::loop() {
  double backoff = 0.1;
  while (true) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (stop) break;
    }
    if (!nc) {
      if (Status s = connect(); !s) {
        note_error(s.message());
        if (wait_stop(backoff)) break;
        backoff = backoff * 2 > 2 ? 2 : backoff * 2;
        continue;
      }
      backoff = 0.1;
    }
    if (!send_window()) {
      if (natsConnection_Status(nc) != NATS_CONN_STATUS_CONNECTED) disconnect();
      if (wait_stop(0.1)) break;
    }
  }
  disconnect();
}

Publisher::Publisher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Publisher::~Publisher() {
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

Status Publisher::start(const PublisherOptions& o, std::unique_ptr<Publisher>* out) {
  if (o.urls.empty()) return Status::error("nats: no server URL");
  if (o.window == 0 || o.window > 65536) return Status::error("nats: the in-flight window must be 1..65536");
  if (o.outbox_bytes < 4096) return Status::error("nats: the outbox must hold at least 4096 bytes");
  if (o.stream.empty() || o.stream.find_first_of(".*> ") != std::string::npos)
    return Status::error("nats: bad stream name '" + o.stream + "'");
  auto impl = std::make_unique<Impl>();
  impl->opt = o;
  auto wall = std::chrono::system_clock::now().time_since_epoch();
  impl->run = std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(wall).count());
  Impl* p = impl.get();
  out->reset(new Publisher(std::move(impl)));
  p->thread = std::thread([p] { p->loop(); });
  return Status::ok();
}

bool Publisher::publish(std::string_view disk_name, Json event) {
  Impl& m = *impl_;
  auto it = m.disks.find(disk_name);
  if (it == m.disks.end()) it = m.disks.emplace(std::string(disk_name), DiskSeq{}).first;
  DiskSeq& ds = it->second;
  DiskName dn = split_disk_name(disk_name);
  std::string id_base = m.run + "/" + std::string(disk_name) + "/";
  Entry lost;
  uint64_t seq = ds.next;
  if (ds.lost) {  // the gap first, in order with the events
    Json rec(Json::Object{});
    rec.set("event", "stream_lost");
    rec.set("disk", std::string(disk_name));
    rec.set("host", dn.host);
    rec.set("vm", dn.vm);
    rec.set("disk_seq", seq);
    rec.set("run", m.run);
    rec.set("lost_events", ds.lost);
    lost.subject = event_subject(m.opt.prefix, dn, "stream_lost");
    lost.msg_id = id_base + std::to_string(seq);
    lost.data = rec.dump();
    ++seq;
  }
  std::string kind = event.get_string("event", "unknown");
  event.set("host", dn.host);
  event.set("vm", dn.vm);
  event.set("disk_seq", seq);
  event.set("run", m.run);
  Entry e;
  e.subject = event_subject(m.opt.prefix, dn, kind);
  e.msg_id = id_base + std::to_string(seq);
  e.data = event.dump();
  e.enqueued_ns = lost.enqueued_ns = steady_ns();
  size_t need = e.bytes() + lost.bytes();
  {
    std::lock_guard<std::mutex> l(m.mu);
    if (m.outbox_bytes + need > m.opt.outbox_bytes) {
      ++ds.lost;
      ++m.st.dropped;
      return false;
    }
    if (ds.lost) {
      m.outbox_bytes += lost.bytes();
      m.outbox.push_back(std::move(lost));
      ++m.st.lost_records;
      ds.lost = 0;
    }
    m.outbox_bytes += e.bytes();
    m.outbox.push_back(std::move(e));
    ++m.st.accepted;
  }
  ds.next = seq + 1;
  m.cv.notify_all();
  return true;
}

bool Publisher::flush(double seconds) {
  std::unique_lock<std::mutex> l(impl_->mu);
  return impl_->cv.wait_for(l, std::chrono::duration<double>(seconds), [&] { return impl_->outbox.empty(); });
}

PublisherStats Publisher::stats() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  PublisherStats s = impl_->st;
  s.outbox_events = impl_->outbox.size();
  s.outbox_bytes = impl_->outbox_bytes;
  s.ack_latency_us_p50 = impl_->ack_latency.percentile(0.5);
  s.ack_latency_us_p99 = impl_->ack_latency.percentile(0.99);
  s.ack_latency_count = impl_->ack_latency.count();
  return s;
}

Json PublisherStats::to_json() const {
  Json j(Json::Object{});
  j.set("connected", connected);
  j.set("accepted", accepted);
  j.set("acknowledged", acknowledged);
  j.set("duplicates", duplicates);
  j.set("in_flight", in_flight);
  j.set("outbox_events", outbox_events);
  j.set("outbox_bytes", outbox_bytes);
  j.set("dropped", dropped);
  j.set("lost_records", lost_records);
  j.set("resends", resends);
  j.set("connects", connects);
  Json lat(Json::Object{});
  lat.set("p50", ack_latency_us_p50);
  lat.set("p99", ack_latency_us_p99);
  lat.set("count", ack_latency_count);
  j.set("ack_latency_us", lat);
  j.set("last_error", last_error);
  return j;
}

}  // namespace dsvmi::stream
