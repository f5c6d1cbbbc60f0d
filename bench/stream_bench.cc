// stream_bench: the NATS JetStream event stream (docs/stream.md) against the
// daemon's local socket watch, in one run, as ratios (docs/benchmarks.md).
//   socket: the daemon's watcher path: one '{"event":"FILE","data":...}' line
//           per event written to a Unix socket, a reader parsing each line.
//   nats:   Publisher::publish per event into a real nats-server started here
//           (JetStream, file storage, temp dir), until every event is
//           acknowledged; then a Subscriber reading them all back.
// Reports events/s, the cost of the call on the daemon's thread, and
// latency (socket: write -> parsed by the reader; nats: outbox -> ack).
// usage: stream_bench [EVENTS] [NATS_SERVER]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "../tests/unit/common/free_port.h"
#include "dsvmi/latency.h"
#include "dsvmi/stream_publisher.h"
#include "dsvmi/stream_subscriber.h"

using namespace dsvmi;
using Clock = std::chrono::steady_clock;
using dsvmi::testing::free_port;

namespace {

uint64_t now_ns() { return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count()); }

Json make_event(uint64_t i) {  // shaped like a daemon event (docs/events.md)
  Json a(Json::Object{});
  a.set("type", "file");
  a.set("mode", uint64_t(420));
  a.set("uid", uint64_t(0));
  a.set("gid", uint64_t(0));
  a.set("size", uint64_t(4096 * (i % 64)));
  a.set("links", uint64_t(1));
  a.set("mtime_ns", uint64_t(1700000000000000000ULL + i));
  Json e(Json::Object{});
  e.set("seq", i);
  e.set("event", "modify");
  e.set("time_ns", uint64_t(1000000000 + i));
  e.set("frame_seq", i * 3);
  e.set("disk", "h1:vm1:vda");
  e.set("partition", uint64_t(0));
  e.set("fs", "5f0c0b54-8d3f-4c1e-9a0e-2b1d0c7e6f00");
  e.set("ino", uint64_t(28 + i % 100));
  e.set("path", "/var/log/app" + std::to_string(i % 100) + ".log");
  e.set("offset", uint64_t(4096 * (i % 64)));
  e.set("length", uint64_t(4096));
  e.set("latency_us", uint64_t(412));
  e.set("attrs", a);
  return e;
}


struct Result {
  double seconds = 0, call_ns = 0;
  uint64_t p50_us = 0, p99_us = 0;
};

// rate 0: as fast as possible; else events per second (paced: latency
// without queueing behind a burst).
void pace(uint64_t t0, uint64_t i, double rate) {
  if (rate <= 0) return;
  uint64_t due = t0 + uint64_t(double(i) * 1e9 / rate);
  while (now_ns() < due) std::this_thread::sleep_for(std::chrono::microseconds(50));
}

Result bench_socket(uint64_t n, double rate) {
  int sv[2];
  ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  LatencyHistogram lat;
  std::thread reader([&] {
    std::string buf;
    char tmp[1 << 16];
    uint64_t got = 0;
    while (got < n) {
      ssize_t r = ::read(sv[1], tmp, sizeof tmp);
      if (r <= 0) break;
      buf.append(tmp, size_t(r));
      size_t start = 0, nl;
      while ((nl = buf.find('\n', start)) != std::string::npos) {
        Json msg;
        if (Json::parse(std::string_view(buf).substr(start, nl - start), &msg) && msg.get("data")) {
          lat.record((now_ns() - msg.get("data")->get_uint64("sent_ns")) / 1000);
          ++got;
        }
        start = nl + 1;
      }
      buf.erase(0, start);
    }
  });
  uint64_t t0 = now_ns(), in_call = 0;
  for (uint64_t i = 1; i <= n; ++i) {
    pace(t0, i, rate);
    Json ev = make_event(i);
    uint64_t c0 = now_ns();
    ev.set("sent_ns", c0);
    Json out(Json::Object{});
    out.set("event", "FILE");
    out.set("data", ev);
    std::string msg = out.dump() + "\n";
    size_t off = 0;
    while (off < msg.size()) {
      ssize_t w = ::write(sv[0], msg.data() + off, msg.size() - off);
      if (w <= 0) break;
      off += size_t(w);
    }
    in_call += now_ns() - c0;
  }
  reader.join();
  Result r;
  r.seconds = double(now_ns() - t0) / 1e9;
  r.call_ns = double(in_call) / double(n);
  r.p50_us = lat.percentile(0.5);
  r.p99_us = lat.percentile(0.99);
  ::close(sv[0]);
  ::close(sv[1]);
  return r;
}

Result bench_nats(const std::string& url, uint64_t n, double rate, const char* disk, stream::PublisherStats* st) {
  stream::PublisherOptions po;
  po.urls = url;
  po.outbox_bytes = size_t(1) << 30;
  std::unique_ptr<stream::Publisher> pub;
  Result res;
  res.seconds = -1;
  if (Status s = stream::Publisher::start(po, &pub); !s) {
    std::fprintf(stderr, "stream_bench: %s\n", s.message().c_str());
    return res;
  }
  // Warm: the stream exists and the connection is up before timing.
  pub->publish("h0:warm:vda", make_event(0));
  if (!pub->flush(60)) {
    std::fprintf(stderr, "stream_bench: nats-server never acknowledged: %s\n", pub->stats().last_error.c_str());
    return res;
  }
  uint64_t t0 = now_ns(), in_call = 0;
  for (uint64_t i = 1; i <= n; ++i) {
    pace(t0, i, rate);
    Json ev = make_event(i);
    uint64_t c0 = now_ns();
    pub->publish(disk, std::move(ev));
    in_call += now_ns() - c0;
  }
  if (!pub->flush(600)) return res;
  res.seconds = double(now_ns() - t0) / 1e9;
  res.call_ns = double(in_call) / double(n);
  *st = pub->stats();  // (the one warm-up event is within the histogram: 1 of n)
  res.p50_us = st->ack_latency_us_p50;
  res.p99_us = st->ack_latency_us_p99;
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200000;
  std::string server = argc > 2 ? argv[2] : "/usr/sbin/nats-server";
  if (::access(server.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "stream_bench: %s not found (scripts/install-deps.sh installs nats-server)\n", server.c_str());
    return 77;
  }
  char tmpl[] = "/tmp/dsvmi-stream-bench-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  int port = free_port();
  pid_t pid = ::fork();
  if (pid == 0) {
    std::freopen("/dev/null", "w", stdout);
    std::freopen((dir + "/server.log").c_str(), "w", stderr);
    std::string p = std::to_string(port);
    ::execl(server.c_str(), server.c_str(), "-js", "-a", "127.0.0.1", "-p", p.c_str(), "-sd", dir.c_str(), nullptr);
    _exit(127);
  }
  std::string url = "nats://127.0.0.1:" + std::to_string(port);

  Result sock = bench_socket(n, 0);
  stream::PublisherStats st;

  Result nats = bench_nats(url, n, 0, "h1:vm1:vda", &st);
  if (nats.seconds < 0) return 1;
  uint64_t paced_n = n / 10;
  Result sock_paced = bench_socket(paced_n, 5000);
  stream::PublisherStats st_paced;
  Result nats_paced = bench_nats(url, paced_n, 5000, "h2:vm1:vda", &st_paced);
  bool drained = nats.seconds >= 0 && nats_paced.seconds >= 0;
  stream::SubscriberOptions so;
  so.urls = url;
  so.host_glob = "h1";
  so.from_start = true;
  so.batch = 4096;
  std::unique_ptr<stream::Subscriber> sub;
  uint64_t got = 0;
  double read_s = 0;
  if (Status s = stream::Subscriber::open(so, &sub); s) {
    uint64_t r0 = now_ns();
    while (got < n) {
      if (!sub->poll(2000, 4096, [&](const Json&) { ++got; })) break;
      if (now_ns() - r0 > 600e9) break;
    }
    read_s = double(now_ns() - r0) / 1e9;
  }
  sub.reset();
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  std::filesystem::remove_all(dir);

  std::printf("events=%llu drained=%d dropped=%llu resends=%llu read_back=%llu\n", (unsigned long long)n, drained,
              (unsigned long long)st.dropped, (unsigned long long)st.resends, (unsigned long long)got);
  std::printf("%-34s %12s %12s %10s %10s\n", "path", "events/s", "call ns/ev", "p50 us", "p99 us");
  std::printf("%-34s %12.0f %12.0f %10llu %10llu\n", "socket watch (write -> parsed)", double(n) / sock.seconds,
              sock.call_ns, (unsigned long long)sock.p50_us, (unsigned long long)sock.p99_us);
  std::printf("%-34s %12.0f %12.0f %10llu %10llu\n", "nats publish (outbox -> ack)", double(n) / nats.seconds,
              nats.call_ns, (unsigned long long)nats.p50_us, (unsigned long long)nats.p99_us);
  std::printf("%-34s %12.0f %12.0f %10llu %10llu\n", "socket watch, paced 5000/s", double(paced_n) / sock_paced.seconds,
              sock_paced.call_ns, (unsigned long long)sock_paced.p50_us, (unsigned long long)sock_paced.p99_us);
  std::printf("%-34s %12.0f %12.0f %10llu %10llu\n", "nats publish, paced 5000/s", double(paced_n) / nats_paced.seconds,
              nats_paced.call_ns, (unsigned long long)nats_paced.p50_us, (unsigned long long)nats_paced.p99_us);
  std::printf("%-34s %12.0f\n", "nats subscriber read-back", read_s > 0 ? double(got) / read_s : 0.0);
  std::printf("ratios nats/socket: throughput %.2fx, call cost %.2fx, read-back throughput %.2fx, "
              "paced p50 latency %.2fx, paced p99 latency %.2fx\n",
              sock.seconds / nats.seconds, nats.call_ns / sock.call_ns,
              read_s > 0 ? (double(got) / read_s) / (double(n) / sock.seconds) : 0.0,
              double(nats_paced.p50_us) / double(std::max<uint64_t>(1, sock_paced.p50_us)),
              double(nats_paced.p99_us) / double(std::max<uint64_t>(1, sock_paced.p99_us)));
  return drained && got == n ? 0 : 1;
}
