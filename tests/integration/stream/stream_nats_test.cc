// The event stream against the real nats-server (docs/stream.md). Every
// check reads what the server stored (js_GetMsg by stream sequence, the
// stream's own state), never the publisher's counters alone. Waits are
// bounded only to turn a hang into a failure; nothing asserts a duration.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../../unit/common/free_port.h"
#include "../../unit/common/temp_dir.h"
#include "dsvmi/stream_publisher.h"

using namespace dsvmi;
using namespace dsvmi::stream;
namespace fs = std::filesystem;

namespace {

using dsvmi::testing::free_port;

const char* kServer = "/usr/sbin/nats-server";


bool port_open(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

std::string url(int port) { return "nats://127.0.0.1:" + std::to_string(port); }

// One nats-server process with JetStream and its own store dir.
struct Server {
  int port = free_port(), cluster_port = 0;
  std::string dir, name, conf;  // conf: a configuration file instead of the flags
  std::vector<std::string> routes;
  pid_t pid = -1;
  void start() {
    std::vector<std::string> args = {kServer, "-js", "-a", "127.0.0.1", "-p", std::to_string(port), "-sd", dir};
    if (!conf.empty()) args = {kServer, "-c", conf};
    if (cluster_port) {
      args.insert(args.end(), {"-n", name, "--cluster_name", "dsvmi-test", "--cluster",
                               "nats://127.0.0.1:" + std::to_string(cluster_port)});
      std::string r;
      for (auto& x : routes) r += (r.empty() ? "" : ",") + x;
      args.insert(args.end(), {"--routes", r});
    }
    pid = ::fork();
    if (pid == 0) {
      std::string log = dir + "/server.log";
      std::freopen(log.c_str(), "a", stderr);
      std::freopen("/dev/null", "w", stdout);
      std::vector<char*> av;
      for (auto& a : args) av.push_back(a.data());
      av.push_back(nullptr);
      ::execv(kServer, av.data());
      _exit(127);
    }
    for (int i = 0; i < 300 && !port_open(port); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  void kill9() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    pid = -1;
  }
  ~Server() { kill9(); }
};

struct TempDir : dsvmi::testing::TempDir {
  TempDir() : dsvmi::testing::TempDir("dsvmi-stream") {}
};

// What the server stored: every message of the stream, by stream sequence.
struct Stored {
  std::string subject;
  Json rec;
};

std::vector<Stored> read_stream(const std::string& urls, const std::string& stream = "DSVMI",
                                int64_t* replicas = nullptr) {
  std::vector<Stored> out;
  natsConnection* nc = nullptr;
  natsOptions* o = nullptr;
  natsOptions_Create(&o);
  std::vector<std::string> u;
  std::stringstream ss(urls);
  for (std::string x; std::getline(ss, x, ',');) u.push_back(x);
  std::vector<const char*> p;
  for (auto& x : u) p.push_back(x.c_str());
  natsOptions_SetServers(o, p.data(), int(p.size()));
  natsStatus ns = natsConnection_Connect(&nc, o);
  natsOptions_Destroy(o);
  EXPECT_EQ(ns, NATS_OK) << natsStatus_GetText(ns);
  if (ns != NATS_OK) return out;
  jsCtx* js = nullptr;
  natsConnection_JetStream(&js, nc, nullptr);
  jsStreamInfo* si = nullptr;
  ns = js_GetStreamInfo(&si, js, stream.c_str(), nullptr, nullptr);
  EXPECT_EQ(ns, NATS_OK) << "stream info: " << natsStatus_GetText(ns);
  if (ns == NATS_OK) {
    EXPECT_EQ(si->Config->Storage, js_FileStorage);
    if (replicas) *replicas = si->Config->Replicas;
    for (uint64_t seq = si->State.FirstSeq; seq <= si->State.LastSeq; ++seq) {
      natsMsg* m = nullptr;
      if (js_GetMsg(&m, js, stream.c_str(), seq, nullptr, nullptr) != NATS_OK) continue;
      Stored s;
      s.subject = natsMsg_GetSubject(m);
      EXPECT_TRUE(Json::parse(std::string_view(natsMsg_GetData(m), size_t(natsMsg_GetDataLength(m))), &s.rec))
          << "stored message " << seq;
      out.push_back(std::move(s));
      natsMsg_Destroy(m);
    }
    EXPECT_EQ(out.size(), si->State.Msgs);
    jsStreamInfo_Destroy(si);
  }
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return out;
}

Json event(const std::string& disk, uint64_t i) {
  Json e(Json::Object{});
  e.set("seq", i);
  e.set("event", i % 3 ? "modify" : "create");
  e.set("disk", disk);
  e.set("path", "/d/f" + std::to_string(i));
  e.set("ino", uint64_t(100 + i));
  return e;
}

// Per disk: disk_seq 1..n, each once, in stream order; events (not
// stream_lost) carry the engine's seq in publish order.
std::map<std::string, uint64_t> check_order(const std::vector<Stored>& st) {
  std::map<std::string, uint64_t> last;
  for (const auto& s : st) {
    std::string d = s.rec.get_string("disk");
    uint64_t seq = s.rec.get_uint64("disk_seq");
    EXPECT_EQ(seq, last[d] + 1) << d << " at subject " << s.subject;
    last[d] = seq;
    EXPECT_EQ(s.subject.rfind("dsvmi.", 0), 0u);
  }
  return last;
}

class StreamNats : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kServer, X_OK) != 0) GTEST_SKIP() << "nats-server is not installed (scripts/install-deps.sh)";
  }
};

TEST_F(StreamNats, BrokerDownThenUpLosesNothingAndDuplicatesNothing) {
  TempDir t;
  Server srv;
  srv.dir = t.path();
  PublisherOptions po;
  po.urls = url(srv.port);
  std::unique_ptr<Publisher> pub;
  ASSERT_TRUE(Publisher::start(po, &pub).is_ok());
  for (uint64_t i = 1; i <= 1000; ++i) {
    ASSERT_TRUE(pub->publish("h1:vm1:vda", event("h1:vm1:vda", i)));
    ASSERT_TRUE(pub->publish("h1:vm2:vda", event("h1:vm2:vda", i)));
  }
  EXPECT_EQ(pub->stats().acknowledged, 0u);  // nothing is listening yet
  EXPECT_FALSE(pub->stats().connected);
  srv.start();
  ASSERT_TRUE(pub->flush(120)) << pub->stats().last_error;
  std::vector<Stored> st = read_stream(url(srv.port));
  ASSERT_EQ(st.size(), 2000u);
  auto last = check_order(st);
  EXPECT_EQ(last["h1:vm1:vda"], 1000u);
  EXPECT_EQ(last["h1:vm2:vda"], 1000u);
  EXPECT_EQ(st[0].subject, "dsvmi.h1.vm1.vda.modify");
  EXPECT_EQ(st[0].rec.get_string("host"), "h1");
  EXPECT_EQ(st[0].rec.get_string("path"), "/d/f1");
}

TEST_F(StreamNats, KilledBrokerMidStreamEveryEventOnceInOrder) {
  TempDir t;
  Server srv;
  srv.dir = t.path();
  srv.start();
  PublisherOptions po;
  po.urls = url(srv.port);
  po.window = 512;
  std::unique_ptr<Publisher> pub;
  ASSERT_TRUE(Publisher::start(po, &pub).is_ok());
  const uint64_t n = 20000;
  for (uint64_t i = 1; i <= n; ++i) {
    ASSERT_TRUE(pub->publish("h1:vm1:vda", event("h1:vm1:vda", i)));
    if (i == n / 2) {  // some of it is in flight now
      srv.kill9();
      srv.start();
    }
  }
  ASSERT_TRUE(pub->flush(120)) << pub->stats().last_error;
  std::vector<Stored> st = read_stream(url(srv.port));
  ASSERT_EQ(st.size(), n);
  EXPECT_EQ(check_order(st)["h1:vm1:vda"], n);
  for (size_t i = 0; i < st.size(); ++i) ASSERT_EQ(st[i].rec.get_uint64("seq"), i + 1);
  PublisherStats ps = pub->stats();
  EXPECT_GE(ps.connects, 1u);
  std::printf("connects=%llu resends=%llu duplicates=%llu\n", (unsigned long long)ps.connects,
              (unsigned long long)ps.resends, (unsigned long long)ps.duplicates);
}

TEST_F(StreamNats, FullOutboxCountsAndReportsTheGap) {
  TempDir t;
  Server srv;
  srv.dir = t.path();
  PublisherOptions po;
  po.urls = url(srv.port);
  po.outbox_bytes = 64 << 10;
  std::unique_ptr<Publisher> pub;
  ASSERT_TRUE(Publisher::start(po, &pub).is_ok());
  uint64_t ok = 0, refused = 0;
  for (uint64_t i = 1; i <= 3000; ++i) (pub->publish("h1:vm1:vda", event("h1:vm1:vda", i)) ? ok : refused)++;
  PublisherStats ps = pub->stats();
  EXPECT_GT(refused, 0u);
  EXPECT_EQ(ps.dropped, refused);
  EXPECT_EQ(ps.accepted, ok);
  EXPECT_LE(ps.outbox_bytes, po.outbox_bytes);
  srv.start();
  ASSERT_TRUE(pub->flush(120)) << pub->stats().last_error;
  ASSERT_TRUE(pub->publish("h1:vm1:vda", event("h1:vm1:vda", 3001)));  // room again: the gap record first
  ASSERT_TRUE(pub->flush(120));
  std::vector<Stored> st = read_stream(url(srv.port));
  ASSERT_EQ(st.size(), ok + 2);
  check_order(st);
  const Stored& gap = st[st.size() - 2];
  EXPECT_EQ(gap.rec.get_string("event"), "stream_lost");
  EXPECT_EQ(gap.subject, "dsvmi.h1.vm1.vda.stream_lost");
  EXPECT_EQ(gap.rec.get_uint64("lost_events"), refused);
  EXPECT_EQ(st.back().rec.get_uint64("seq"), 3001u);
}

// `dsvmi watch --nats` as a user runs it: its stdout against what the
// server stored.
std::vector<Json> run_watch(const std::vector<std::string>& args, std::string* err = nullptr) {
  std::string cmd = std::string(DSVMI_CLI_PATH) + " watch";
  for (auto& a : args) cmd += " '" + a + "'";
  // Per process, so two copies of the test cannot read each other's errors.
  const std::string err_path = "/tmp/dsvmi-stream-watch-" + std::to_string(::getpid()) + ".err";
  cmd += " 2>" + err_path;
  std::vector<Json> out;
  FILE* f = ::popen(cmd.c_str(), "r");
  char buf[1 << 16];
  while (f && std::fgets(buf, sizeof buf, f)) {
    Json j;
    EXPECT_TRUE(Json::parse(std::string_view(buf, std::strlen(buf) - 1), &j)) << buf;
    out.push_back(j);
  }
  int rc = f ? ::pclose(f) : -1;
  EXPECT_EQ(rc, 0) << cmd;
  if (err) {
    std::ifstream in(err_path);
    std::stringstream ss;
    ss << in.rdbuf();
    *err = ss.str();
  }
  ::unlink(err_path.c_str());
  return out;
}

TEST_F(StreamNats, DurableWatchResumesAndFilters) {
  TempDir t;
  Server srv;
  srv.dir = t.path();
  srv.start();
  PublisherOptions po;
  po.urls = url(srv.port);
  std::unique_ptr<Publisher> pub;
  ASSERT_TRUE(Publisher::start(po, &pub).is_ok());
  for (uint64_t i = 1; i <= 500; ++i) {
    pub->publish("h1:vm1:vda", event("h1:vm1:vda", i));
    pub->publish("h2:vm1:vda", event("h2:vm1:vda", i));
    pub->publish("h1:web7:vdb", event("h1:web7:vdb", i));
  }
  ASSERT_TRUE(pub->flush(120));
  std::string u = url(srv.port);
  // A durable on h1 only: 300, then (a new process) the next 700.
  auto a = run_watch({"--nats", u, "h1:*:/**", "--durable", "d1", "--from-start", "--max-events", "300"});
  auto b = run_watch({"--nats", u, "h1:*:/**", "--durable", "d1", "--max-events", "700"});
  ASSERT_EQ(a.size(), 300u);
  ASSERT_EQ(b.size(), 700u);
  std::map<std::string, std::vector<uint64_t>> seen;
  for (auto* v : {&a, &b})
    for (auto& j : *v) {
      EXPECT_EQ(j.get_string("host"), "h1");
      seen[j.get_string("disk")].push_back(j.get_uint64("disk_seq"));
    }
  ASSERT_EQ(seen.size(), 2u);
  for (auto& [d, v] : seen) {
    ASSERT_EQ(v.size(), 500u) << d;
    for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i], i + 1) << d;  // once each, in order, across the restart
  }
  // Then one new event: the resumed durable sees it, not a repeat.
  pub->publish("h1:vm1:vda", event("h1:vm1:vda", 501));
  ASSERT_TRUE(pub->flush(60));
  auto c = run_watch({"--nats", u, "h1:*:/**", "--durable", "d1", "--max-events", "1"});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].get_uint64("disk_seq"), 501u);
  // Client-side globs: VM "web*" and a path glob.
  auto w = run_watch({"--nats", u, "*:web*:/d/f1*", "--from-start", "--max-events", "111"});
  ASSERT_EQ(w.size(), 111u);  // f1, f10-f19, f100-f199 of h1:web7
  for (auto& j : w) {
    EXPECT_EQ(j.get_string("vm"), "web7");
    EXPECT_EQ(j.get_string("path").rfind("/d/f1", 0), 0u);
  }
}

TEST_F(StreamNats, MalformedMessagesDoNotStopTheSubscriber) {
  TempDir t;
  Server srv;
  srv.dir = t.path();
  srv.start();
  PublisherOptions po;
  po.urls = url(srv.port);
  std::unique_ptr<Publisher> pub;
  ASSERT_TRUE(Publisher::start(po, &pub).is_ok());
  pub->publish("h1:vm1:vda", event("h1:vm1:vda", 1));  // creates the stream
  ASSERT_TRUE(pub->flush(60));
  // A hostile peer with publish rights writes garbage on the subjects.
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, url(srv.port).c_str()), NATS_OK);
  jsCtx* js = nullptr;
  natsConnection_JetStream(&js, nc, nullptr);
  std::string big(900 << 10, '{');
  std::vector<std::string> bad = {"", "not json", "[1]", "{\"event\":7}", "{\"event\":\"create\"", big,
                                  std::string("\0\1\2", 3), "{\"event\":\"create\",\"disk\":[]}"};
  for (auto& b : bad)
    ASSERT_EQ(js_Publish(nullptr, js, "dsvmi.h1.vm1.vda.create", b.data(), int(b.size()), nullptr, nullptr), NATS_OK);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  pub->publish("h1:vm1:vda", event("h1:vm1:vda", 2));
  ASSERT_TRUE(pub->flush(60));
  std::string err;
  auto got = run_watch({"--nats", url(srv.port), "*:*:/**", "--from-start", "--max-events", "2"}, &err);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].get_uint64("seq"), 1u);
  EXPECT_EQ(got[1].get_uint64("seq"), 2u);
  EXPECT_NE(err.find("malformed"), std::string::npos) << err;
}

TEST_F(StreamNats, AuthenticationRequiredIsAClearError) {
  TempDir t;
  Server srv;
  srv.dir = t.path();
  srv.conf = t.path() + "/server.conf";
  std::ofstream(srv.conf) << "listen: 127.0.0.1:" << srv.port << "\njetstream { store_dir: \"" << t.path()
                          << "\" }\nauthorization { users = [ {user: pub, password: s3cret} ] }\n";
  srv.start();
  PublisherOptions po;
  po.urls = url(srv.port);
  std::unique_ptr<Publisher> pub;
  ASSERT_TRUE(Publisher::start(po, &pub).is_ok());
  pub->publish("h1:vm1:vda", event("h1:vm1:vda", 1));
  for (int i = 0; i < 600 && pub->stats().last_error.empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::string err = pub->stats().last_error;
  EXPECT_NE(err.find("uthorization"), std::string::npos) << err;  // the server's reason, named
  EXPECT_NE(err.find(url(srv.port)), std::string::npos) << err;
  EXPECT_EQ(pub->stats().acknowledged, 0u);
  pub.reset();
  po.urls = "nats://pub:s3cret@127.0.0.1:" + std::to_string(srv.port);
  ASSERT_TRUE(Publisher::start(po, &pub).is_ok());
  pub->publish("h1:vm1:vda", event("h1:vm1:vda", 1));
  ASSERT_TRUE(pub->flush(60)) << pub->stats().last_error;
}

TEST_F(StreamNats, ThreeNodeClusterLosingOneNodeKeepsTheStream) {
  TempDir t;
  Server s[3];
  for (int i = 0; i < 3; ++i) {
    s[i].cluster_port = free_port();
    s[i].name = "n" + std::to_string(i);
    s[i].dir = t.path() + "/" + s[i].name;
    fs::create_directories(s[i].dir);
  }
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      if (i != j) s[i].routes.push_back("nats://127.0.0.1:" + std::to_string(s[j].cluster_port));
  for (auto& x : s) x.start();
  std::string all = url(s[0].port) + "," + url(s[1].port) + "," + url(s[2].port);
  PublisherOptions po;
  po.urls = all;
  std::unique_ptr<Publisher> pub;
  ASSERT_TRUE(Publisher::start(po, &pub).is_ok());
  const uint64_t n = 6000;
  for (uint64_t i = 1; i <= n; ++i) {
    ASSERT_TRUE(pub->publish("h1:vm1:vda", event("h1:vm1:vda", i)));
    if (i == n / 2) {
      ASSERT_TRUE(pub->flush(180)) << pub->stats().last_error;  // the stream exists, R3
      s[0].kill9();  // the node the publisher talks to (servers are tried in order)
    }
  }
  ASSERT_TRUE(pub->flush(180)) << pub->stats().last_error;
  int64_t replicas = 0;
  std::vector<Stored> st = read_stream(url(s[1].port) + "," + url(s[2].port), "DSVMI", &replicas);
  EXPECT_EQ(replicas, 3);  // three URLs given: R3, so one node's loss keeps a quorum
  ASSERT_EQ(st.size(), n);
  EXPECT_EQ(check_order(st)["h1:vm1:vda"], n);
  EXPECT_GE(pub->stats().connects, 2u);  // it moved to a surviving node
}

}  // namespace
