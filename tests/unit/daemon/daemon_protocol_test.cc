// The daemon's protocol layer: JSON parsing (RFC 8259's own examples as the
// oracle, hostile input bounded), request parsing, policy files, and the
// daemon's attach error paths against a scripted fake QMP server (what
// QEMU 7.2 answers: greeting, capabilities, node lists, the exact
// "Invalid parameter 'dsvmi'" an unpatched binary gives).
#include <gtest/gtest.h>
#include <signal.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <algorithm>
#include <memory>

#include "dsvmi/daemon.h"
#include "dsvmi/daemon_json.h"
#include "line_socket.h"
#include "policy_file.h"

namespace dsvmi {
namespace {

TEST(Json, ParsesRfc8259Examples) {
  // RFC 8259 section 13, first example (abridged only in whitespace).
  const char* text = R"({"Image": {"Width": 800, "Height": 600, "Title": "View from 15th Floor",
      "Thumbnail": {"Url": "http://www.example.com/image/481989943", "Height": 125, "Width": 100},
      "Animated" : false, "IDs": [116, 943, 234, 38793]}})";
  Json j;
  ASSERT_TRUE(Json::parse(text, &j)) << "parse";
  const Json* img = j.get("Image");
  ASSERT_NE(img, nullptr);
  EXPECT_EQ(img->get_number("Width"), 800);
  EXPECT_EQ(img->get_string("Title"), "View from 15th Floor");
  EXPECT_EQ(img->get("Thumbnail")->get_string("Url"), "http://www.example.com/image/481989943");
  EXPECT_FALSE(img->get("Animated")->as_bool());
  ASSERT_EQ(img->get("IDs")->as_array().size(), 4u);
  EXPECT_EQ(img->get("IDs")->as_array()[3].as_number(), 38793);
  // Second example: an array of objects with fractional numbers.
  ASSERT_TRUE(Json::parse(R"([{"Latitude": 37.7668, "Longitude": -122.3959}, {"Latitude": 37.371991}])", &j));
  EXPECT_DOUBLE_EQ(j.as_array()[0].get_number("Longitude"), -122.3959);
  // Round trip: dump then parse gives the same dump.
  Json again;
  ASSERT_TRUE(Json::parse(j.dump(), &again));
  EXPECT_EQ(again.dump(), j.dump());
}

TEST(Json, EscapesAndUnicode) {
  Json j;
  ASSERT_TRUE(Json::parse(R"("a\"b\\c\n\u00e9\ud83d\ude00")", &j));
  EXPECT_EQ(j.as_string(), "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(j.dump(), "\"a\\\"b\\\\c\\n\xc3\xa9\xf0\x9f\x98\x80\"");
  EXPECT_EQ(Json(std::string("\x01")).dump(), "\"\\u0001\"");
}

TEST(Json, RejectsBadInputWithOffsets) {
  Json j;
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "\"abc", "01x", "tru", "[1] 2", "{\"a\":1,}", "\"\x01\"",
                          "-", "1.", "1e", "\"\\q\"", "\"\\u12\""}) {
    Status s = Json::parse(bad, &j);
    EXPECT_FALSE(s) << bad;
    EXPECT_NE(s.message().find("offset"), std::string::npos) << s.message();
  }
  // Depth bound: 100k nested arrays fail cleanly instead of overflowing the stack.
  std::string deep(100000, '[');
  Status s = Json::parse(deep, &j);
  EXPECT_FALSE(s);
  EXPECT_NE(s.message().find("nesting"), std::string::npos);
  std::string ok64 = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(Json::parse(ok64, &j));
}

// Counters and ring indices are 64-bit: they survive a round trip exactly
// (a double would turn 2^64-1 into 2^64 and 2^53+1 into 2^53).
TEST(Json, IntegersAreExact) {
  Json j;
  ASSERT_TRUE(Json::parse("[18446744073709551615, 9007199254740993, -9223372036854775808, 1.5, 1e3, 18446744073709551616]", &j));
  const auto& a = j.as_array();
  uint64_t u = 0;
  int64_t i = 0;
  ASSERT_TRUE(a[0].get_uint64(&u));
  EXPECT_EQ(u, UINT64_MAX);
  EXPECT_FALSE(a[0].get_int64(&i));
  ASSERT_TRUE(a[1].get_uint64(&u));
  EXPECT_EQ(u, 9007199254740993ull);
  ASSERT_TRUE(a[2].get_int64(&i));
  EXPECT_EQ(i, INT64_MIN);
  EXPECT_FALSE(a[2].get_uint64(&u));
  EXPECT_FALSE(a[3].get_uint64(&u));
  EXPECT_DOUBLE_EQ(a[3].as_number(), 1.5);
  ASSERT_TRUE(a[4].get_uint64(&u));  // an integral double is still an integer
  EXPECT_EQ(u, 1000u);
  EXPECT_FALSE(a[5].get_uint64(&u));  // beyond 64 bits: a double, not an integer (its shortest text has no exponent)
  EXPECT_EQ(j.dump(), "[18446744073709551615,9007199254740993,-9223372036854775808,1.5,1000,18446744073709551616]");
  EXPECT_EQ(Json(uint64_t(UINT64_MAX)).dump(), "18446744073709551615");
  EXPECT_EQ(Json(int64_t(-5)).dump(), "-5");
  Json o(Json::Object{});
  o.set("n", uint64_t(1) << 63);
  EXPECT_EQ(o.get_uint64("n"), uint64_t(1) << 63);
  EXPECT_EQ(o.get_uint64("missing", 7), 7u);
}

TEST(Json, CopiesDoNotAlias) {
  Json a(Json::Object{});
  a.set("x", 1);
  Json b = a;
  b.set("x", 2);
  EXPECT_EQ(a.get_number("x"), 1);
  EXPECT_EQ(b.get_number("x"), 2);
}

TEST(Protocol, ParseRequest) {
  std::string cmd;
  Json args;
  ASSERT_TRUE(parse_request(R"({"execute":"detach","arguments":{"name":"h:v:d"}})", &cmd, &args));
  EXPECT_EQ(cmd, "detach");
  EXPECT_EQ(args.get_string("name"), "h:v:d");
  ASSERT_TRUE(parse_request(R"({"execute":"status"})", &cmd, &args));
  EXPECT_TRUE(args.is_object());
  EXPECT_FALSE(parse_request(R"({"arguments":{}})", &cmd, &args));
  EXPECT_FALSE(parse_request(R"({"execute":3})", &cmd, &args));
  EXPECT_FALSE(parse_request(R"({"execute":"x","arguments":[]})", &cmd, &args));
  EXPECT_FALSE(parse_request("[]", &cmd, &args));
  EXPECT_EQ(make_error("NodeNotFound", "n").dump(), R"({"error":{"class":"NodeNotFound","desc":"n"}})");
}

TEST(Policy, KeyValueAndJson) {
  Json p;
  ASSERT_TRUE(cli::parse_policy_text("# watch logs\nmode = low-overhead\nglob = /var/log/**\nglob = /etc/*.conf\n"
                                     "pending_ttl = 30\n",
                                     &p));
  EXPECT_EQ(p.get_string("mode"), "low-overhead");
  ASSERT_EQ(p.get("globs")->as_array().size(), 2u);
  EXPECT_EQ(p.get("globs")->as_array()[1].as_string(), "/etc/*.conf");
  ASSERT_TRUE(cli::parse_policy_text(R"({"mode":"full","globs":["/home/**"]})", &p));
  EXPECT_EQ(p.get_string("mode"), "full");
  Status s = cli::parse_policy_text("mdoe = full\n", &p);
  EXPECT_FALSE(s);
  EXPECT_NE(s.message().find("unknown key 'mdoe'"), std::string::npos) << s.message();
  EXPECT_FALSE(cli::parse_policy_text("mode = fast\n", &p));
  EXPECT_TRUE(cli::parse_policy_text("pending_ttl = 30\npending_max = 64M\nring_size = 128M\nresync = engine\n", &p));
  EXPECT_FALSE(cli::parse_policy_text("pending_ttl = 30s\n", &p));
  EXPECT_FALSE(cli::parse_policy_text("pending_max = lots\n", &p));
  EXPECT_FALSE(cli::parse_policy_text("resync = never\n", &p));
  EXPECT_TRUE(cli::parse_policy_text(R"({"pending_ttl": 10, "pending_max": "1G"})", &p));
  EXPECT_FALSE(cli::parse_policy_text("just words\n", &p));
  EXPECT_FALSE(cli::parse_policy_text(R"({"globs":"/x"})", &p));
}

// A scripted QMP server: answers each "execute" with handler(cmd, args).
class FakeQmp {
 public:
  FakeQmp(std::string path, std::function<std::string(const std::string&, const Json&)> handler)
      : path_(std::move(path)), handler_(std::move(handler)) {
    ::unlink(path_.c_str());
    lfd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a = {};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
    EXPECT_EQ(::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::listen(lfd_, 4);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeQmp() {
    ::shutdown(lfd_, SHUT_RDWR);
    ::close(lfd_);
    thread_.join();
    ::unlink(path_.c_str());
  }
  std::vector<std::string> commands;

 private:
  void serve() {
    while (true) {
      int c = ::accept(lfd_, nullptr, nullptr);
      if (c < 0) return;
      // A daemon that hung up fails its own read: the fake has nothing to add.
      (void)daemon_internal::write_all(
          c, R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}})"
             "\n");
      std::string buf, line;
      while (daemon_internal::read_line(c, &buf, &line, 5000)) {
        std::string cmd;
        Json args;
        if (!parse_request(line, &cmd, &args)) break;
        commands.push_back(cmd);
        std::string reply = cmd == "qmp_capabilities" ? R"({"return": {}})" : handler_(cmd, args);
        for (char& ch : reply) ch = ch == '\n' ? ' ' : ch;  // QMP replies are one line each
        if (!daemon_internal::write_all(c, R"({"event": "NOISE", "data": {}})" "\n" + reply + "\n")) break;
      }
      ::close(c);
    }
  }
  std::string path_;
  std::function<std::string(const std::string&, const Json&)> handler_;
  int lfd_;
  std::thread thread_;
};

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dsvmi-daemon-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    for (const auto& [k, v] : env_) ::setenv(k.c_str(), v.c_str(), 1);
    socket_ = dir_ + "/d.sock";
    pid_ = ::fork();
    if (pid_ == 0) {
      DaemonOptions o;
      o.socket_path = socket_;
      o.state_dir = dir_ + "/state";
      o.self_exe = self_exe_;
      o.metrics_listen = metrics_listen_;
      ::_exit(run_daemon(o));
    }
    for (int i = 0; i < 200; ++i) {
      Json r;
      if (daemon_call(socket_, "ping", Json(Json::Object{}), &r)) return;
      ::usleep(10000);
    }
    FAIL() << "daemon did not come up";
  }
  std::map<std::string, std::string> env_;  // the daemon's (and so its children's) environment
  void TearDown() override {
    ::kill(pid_, SIGTERM);
    int st;
    ::waitpid(pid_, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    std::system(("rm -rf " + dir_).c_str());
    for (const auto& [k, v] : env_) ::unsetenv(k.c_str());
  }
  Status attach(const std::string& qmp, const std::string& node) {
    Json args(Json::Object{}), r;
    args.set("qmp", qmp);
    args.set("node", node);
    return daemon_call(socket_, "attach", args, &r);
  }
  std::string dir_, socket_;
  std::string metrics_listen_;
  std::string self_exe_ = "/bin/false";  // subcommands fail unless a test sets the real CLI
  pid_t pid_ = -1;
};


TEST_F(DaemonTest, StatusEmptyAndUnknownCommand) {
  Json r;
  ASSERT_TRUE(daemon_call(socket_, "status", Json(Json::Object{}), &r));
  EXPECT_TRUE(r.is_array());
  EXPECT_TRUE(r.as_array().empty());
  Status s = daemon_call(socket_, "frobnicate", Json(Json::Object{}), &r);
  EXPECT_NE(s.message().find("unknown command 'frobnicate'"), std::string::npos);
  Json args(Json::Object{});
  args.set("name", "h:v:d");
  s = daemon_call(socket_, "detach", args, &r);
  EXPECT_NE(s.message().find("no attachment named 'h:v:d'"), std::string::npos) << s.message();
}

// Without --nats there is no publisher: the request says how to get one.
TEST_F(DaemonTest, StreamStatusWithoutNatsIsNotConfigured) {
  Json r;
  Status s = daemon_call(socket_, "stream-status", Json(Json::Object{}), &r);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("--nats URL"), std::string::npos) << s.message();
}

TEST_F(DaemonTest, AttachWrongQmpSocket) {
  Status s = attach(dir_ + "/nowhere.sock", "disk-fmt");
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("-qmp unix:"), std::string::npos) << s.message();
}

const char* kNodes = R"({"return": [
  {"node-name": "disk-fmt", "drv": "raw", "file": "/img/disk.img", "image": {"virtual-size": 67108864}},
  {"node-name": "disk-file", "drv": "file", "file": "/img/disk.img", "image": {"virtual-size": 67108864}},
  {"node-name": "q-fmt", "drv": "qcow2", "file": "/img/q.qcow2", "image": {"virtual-size": 67108864}}]})";
const char* kBlock = R"({"return": [{"device": "", "qdev": "/machine/peripheral/vdisk0/virtio-backend",
  "inserted": {"node-name": "disk-fmt"}}]})";

TEST_F(DaemonTest, AttachNodeNotFoundAndUnsupportedFormat) {
  FakeQmp q(dir_ + "/qmp.sock", [](const std::string& cmd, const Json&) {
    return std::string(cmd == "query-named-block-nodes" ? kNodes : kBlock);
  });
  Status s = attach(dir_ + "/qmp.sock", "nosuch");
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("node 'nosuch' not found"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("disk-fmt, disk-file, q-fmt"), std::string::npos) << s.message();
  s = attach(dir_ + "/qmp.sock", "disk-file");  // no device's drive points at it
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("no device's drive is node 'disk-file'"), std::string::npos) << s.message();
}

TEST_F(DaemonTest, AttachFailingRingCreationChangesNothingInQemu) {
  FakeQmp q(dir_ + "/qmp.sock", [](const std::string& cmd, const Json&) {
    if (cmd == "query-named-block-nodes") return std::string(kNodes);
    if (cmd == "query-block") return std::string(kBlock);
    return std::string(R"({"error": {"class": "GenericError", "desc": "unexpected"}})");
  });
  // self_exe is /bin/false: ring-create fails, so no blockdev-add may follow.
  Status s = attach(dir_ + "/qmp.sock", "disk-fmt");
  ASSERT_FALSE(s);
  for (const auto& c : q.commands) EXPECT_NE(c, "blockdev-add");
  Json r;
  ASSERT_TRUE(daemon_call(socket_, "status", Json(Json::Object{}), &r));
  EXPECT_TRUE(r.as_array().empty());
}

// A qcow2 node is read through QEMU's own NBD server: the daemon starts one
// (Unix socket in its state dir) and exports the node read-only; when the
// export fails, the server it started is stopped again and nothing else runs.
const char* kBlockQ = R"({"return": [{"device": "", "qdev": "/machine/peripheral/vdisk1/virtio-backend",
  "inserted": {"node-name": "q-fmt"}}]})";

TEST_F(DaemonTest, Qcow2IsExportedOverNbdAndRolledBack) {
  Json exp_args;
  FakeQmp q(dir_ + "/qmp.sock", [&](const std::string& cmd, const Json& args) {
    if (cmd == "query-named-block-nodes") return std::string(kNodes);
    if (cmd == "query-block") return std::string(kBlockQ);
    if (cmd == "block-export-add") {
      exp_args = args;
      return std::string(R"({"error": {"class": "GenericError", "desc": "Permission conflict on node 'q-fmt'"}})");
    }
    return std::string(R"({"return": {}})");
  });
  Status s = attach(dir_ + "/qmp.sock", "q-fmt");
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("block-export-add of node 'q-fmt'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("qcow2"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("Permission conflict"), std::string::npos) << s.message();
  EXPECT_EQ(exp_args.get_string("node-name"), "q-fmt");
  EXPECT_EQ(exp_args.get_string("type"), "nbd");
  ASSERT_TRUE(exp_args.get("writable"));
  EXPECT_FALSE(exp_args.get("writable")->as_bool());
  std::vector<std::string> want = {"qmp_capabilities", "query-named-block-nodes", "query-block", "nbd-server-start",
                                   "block-export-add", "nbd-server-stop"};
  EXPECT_EQ(q.commands, want);
}

TEST_F(DaemonTest, ForeignNbdServerIsNamed) {
  FakeQmp q(dir_ + "/qmp.sock", [&](const std::string& cmd, const Json&) {
    if (cmd == "query-named-block-nodes") return std::string(kNodes);
    if (cmd == "query-block") return std::string(kBlockQ);
    if (cmd == "nbd-server-start")
      return std::string(R"({"error": {"class": "GenericError", "desc": "NBD server already running"}})");
    return std::string(R"({"return": {}})");
  });
  Status s = attach(dir_ + "/qmp.sock", "q-fmt");
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("did not start"), std::string::npos) << s.message();
  for (const auto& c : q.commands) EXPECT_TRUE(c != "block-export-add" && c != "blockdev-add") << c;
}

TEST(Metrics, ListenAddress) {
  std::string h;
  int port = 0;
  EXPECT_TRUE(parse_listen_address("127.0.0.1:9717", &h, &port));
  EXPECT_EQ(h, "127.0.0.1");
  EXPECT_EQ(port, 9717);
  EXPECT_TRUE(parse_listen_address("localhost:80", &h, &port));
  EXPECT_FALSE(parse_listen_address("0.0.0.0:9717", &h, &port));
  EXPECT_FALSE(parse_listen_address("10.1.2.3:9717", &h, &port));
  EXPECT_FALSE(parse_listen_address("127.0.0.1", &h, &port));
  EXPECT_FALSE(parse_listen_address("127.0.0.1:0", &h, &port));
  EXPECT_FALSE(parse_listen_address("127.0.0.1:99999", &h, &port));
  EXPECT_FALSE(parse_listen_address("127.0.0.1:12x", &h, &port));
}

class DaemonHttpTest : public DaemonTest {
 protected:
  void SetUp() override {
    port_ = 20000 + ::getpid() % 30000;
    metrics_listen_ = "127.0.0.1:" + std::to_string(port_);
    DaemonTest::SetUp();
  }
  int connect_http() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa = {};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(uint16_t(port_));
    ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    return fd;
  }
  // Sends raw bytes, returns everything the server sends until it closes.
  std::string http(const std::string& request) {
    int fd = connect_http();
    EXPECT_TRUE(daemon_internal::write_all(fd, request).is_ok());
    std::string out;
    char buf[4096];
    pollfd p = {fd, POLLIN, 0};
    while (::poll(&p, 1, 10000) > 0) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, size_t(n));
    }
    ::close(fd);
    return out;
  }
  int port_ = 0;
};

TEST_F(DaemonHttpTest, ServesMetricsAndRefusesTheRest) {
  // A client that connects and says nothing must not hold the loop.
  int idle = connect_http();
  Json r;
  ASSERT_TRUE(daemon_call(socket_, "ping", Json(Json::Object{}), &r));
  std::string ok = http("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << ok;
  EXPECT_NE(ok.find("\r\n\r\n# HELP "), std::string::npos) << ok;
  EXPECT_NE(ok.find("\ndsvmi_attachments 0\n"), std::string::npos) << ok;
  size_t body = ok.find("\r\n\r\n") + 4;
  size_t len = ok.find("Content-Length: ");
  ASSERT_NE(len, std::string::npos);
  EXPECT_EQ(std::stoul(ok.substr(len + 16)), ok.size() - body);
  EXPECT_EQ(http("GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 ", 0), 0u);
  std::string post = http("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(post.rfind("HTTP/1.1 405 ", 0), 0u) << post;
  EXPECT_NE(post.find("Allow: GET, HEAD"), std::string::npos) << post;
  std::string head = http("HEAD /metrics HTTP/1.0\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200 ", 0), 0u);
  EXPECT_EQ(head.find("# HELP"), std::string::npos);
  EXPECT_EQ(http("garbage\r\n\r\n").rfind("HTTP/1.1 400 ", 0), 0u);
  EXPECT_EQ(http("GET /metrics HTTP/1.1\r\nX: " + std::string(10000, 'a')).rfind("HTTP/1.1 431 ", 0), 0u);
  ASSERT_TRUE(daemon_call(socket_, "ping", Json(Json::Object{}), &r));
  ::close(idle);
}

#ifdef DSVMI_FAKE_CLI
// The daemon's state machine against tests/unit/daemon/fake_dsvmi.py standing
// in for the subcommands (a crawl of a chosen length, an engine with ready,
// policy and stats records) and FakeQmp for QEMU.
class DaemonFakeTest : public DaemonTest {
 protected:
  void SetUp() override {
    self_exe_ = DSVMI_FAKE_CLI;
    env_["FAKE_LOG"] = "/tmp/dsvmi-fake-" + std::to_string(::getpid()) + ".log";
    ::unlink(env_["FAKE_LOG"].c_str());
    configure();
    DaemonTest::SetUp();
    image_ = dir_ + "/disk.img";
    std::ofstream(image_) << "x";
    std::string nodes = R"({"return": [{"node-name": "disk-fmt", "drv": "raw", "file": ")" + image_ +
                        R"(", "image": {"virtual-size": 67108864}}]})";
    qmp_ = std::make_unique<FakeQmp>(dir_ + "/qmp.sock", [nodes](const std::string& cmd, const Json&) {
      if (cmd == "query-named-block-nodes") return nodes;
      if (cmd == "query-block") return std::string(kBlock);
      return std::string(R"({"return": {}})");
    });
  }
  void TearDown() override {
    DaemonTest::TearDown();
    qmp_.reset();
    ::unlink(env_["FAKE_LOG"].c_str());
  }
  virtual void configure() {}
  Json args(const std::string& name = "h:v:d") {
    Json a(Json::Object{});
    a.set("qmp", dir_ + "/qmp.sock");
    a.set("node", "disk-fmt");
    a.set("name", name);
    return a;
  }
  Json status_of(const std::string& name) {
    Json r;
    EXPECT_TRUE(daemon_call(socket_, "status", Json(Json::Object{}), &r));
    for (const auto& a : r.as_array())
      if (a.get_string("name") == name) return a;
    return Json();
  }
  std::string fake_log() {
    std::ifstream in(env_["FAKE_LOG"]);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string state_files() {
    std::string left;
    FILE* ls = ::popen(("ls " + dir_ + "/state | grep -v '^engine-' ").c_str(), "r");
    char buf[256];
    while (ls && std::fgets(buf, sizeof buf, ls)) left += buf;
    if (ls) ::pclose(ls);
    return left;
  }
  std::string image_;
  std::unique_ptr<FakeQmp> qmp_;
};

class DaemonSlowCrawlTest : public DaemonFakeTest {
  void configure() override {
    env_["FAKE_CRAWL_SECONDS"] = "1";
    env_["FAKE_CRAWL_HOLD"] = release_;
    ::unlink(release_.c_str());
  }
  void TearDown() override {
    DaemonFakeTest::TearDown();
    ::unlink(release_.c_str());
  }

 protected:
  void release_crawl() { std::ofstream(release_) << "go"; }
  const std::string release_ = "/tmp/dsvmi-fake-" + std::to_string(::getpid()) + ".release";
};

// While one disk crawls, the daemon answers everybody else, shows the crawl's
// progress, refuses a second attach of the name, and keeps one connection's
// replies in order (the attach reply before the ping sent after it). The fake
// crawl holds half way until the test releases it, so no step depends on how
// fast a loaded machine runs.
TEST_F(DaemonSlowCrawlTest, AttachCrawlsWithoutBlockingTheLoop) {
  int fd;
  ASSERT_TRUE(daemon_internal::connect_unix(socket_, &fd));
  Json req(Json::Object{});
  req.set("execute", "attach");
  req.set("arguments", args());
  ASSERT_TRUE(daemon_internal::write_all(fd, req.dump() + "\n{\"execute\": \"ping\"}\n"));
  double fraction = -1;
  int answered = 0;
  for (int i = 0; i < 6000 && fraction <= 0; ++i) {
    Json st = status_of("h:v:d");
    ++answered;
    if (st.is_object() && st.get_string("state") == "crawling" && st.get("crawl"))
      fraction = st.get("crawl")->get_number("fraction");
    ::usleep(10000);
  }
  EXPECT_GT(fraction, 0) << "status never showed the crawl's progress";
  EXPECT_LT(fraction, 1);
  Json r;
  Status s = daemon_call(socket_, "attach", args(), &r);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("already attached (its crawl is running)"), std::string::npos) << s.message();
  release_crawl();
  std::string buf, line;
  ASSERT_TRUE(daemon_internal::read_line(fd, &buf, &line, 30000));
  Json reply;
  ASSERT_TRUE(Json::parse(line, &reply));
  ASSERT_TRUE(reply.get("return")) << line;
  EXPECT_EQ(reply.get("return")->get_string("name"), "h:v:d");
  EXPECT_GT(reply.get("return")->get_number("crawl_seconds"), 0.5);
  ASSERT_TRUE(daemon_internal::read_line(fd, &buf, &line, 10000));
  EXPECT_EQ(line, R"({"return":{}})");
  ::close(fd);
  Json st = status_of("h:v:d");
  for (int i = 0; i < 1000 && st.get_number("events") < 2; ++i) {  // the engine's first lines reach the daemon
    ::usleep(10000);
    st = status_of("h:v:d");
  }
  EXPECT_EQ(st.get_string("state"), "running");
  EXPECT_GE(st.get_number("suppressed_events"), 1);  // the replayed one, before the engine said "live"
  std::printf("status answered %d times before the crawl showed progress\n", answered);
}

class DaemonPolicyOkTest : public DaemonFakeTest {
  void configure() override { env_["FAKE_POLICY"] = "ok"; }
};

TEST_F(DaemonPolicyOkTest, PolicySetIsLiveAndDetachDrains) {
  Json r;
  ASSERT_TRUE(daemon_call(socket_, "attach", args(), &r));
  int64_t pid = int64_t(r.get_number("engine_pid"));
  // A watcher sees the event the engine emits while draining on SIGTERM.
  int w;
  ASSERT_TRUE(daemon_internal::connect_unix(socket_, &w));
  ASSERT_TRUE(daemon_internal::write_all(w, R"({"execute": "watch", "arguments": {"pattern": "h:v:/drained"}})" "\n"));
  std::string wbuf, wline;
  ASSERT_TRUE(daemon_internal::read_line(w, &wbuf, &wline, 10000));
  Json p(Json::Object{});
  p.set("name", "h:v:d");
  p.set("globs", Json(Json::Array{Json("/data/**")}));
  p.set("pending_max", "64M");
  ASSERT_TRUE(daemon_call(socket_, "policy-set", p, &r)) << "policy-set";
  EXPECT_EQ(r.get_number("generation"), 2);
  ASSERT_EQ(r.get("globs")->as_array().size(), 1u);
  EXPECT_EQ(r.get("globs")->as_array()[0].as_string(), "/data/**");
  Json st = status_of("h:v:d");
  EXPECT_EQ(int64_t(st.get_number("engine_pid")), pid) << "the engine was restarted";
  EXPECT_EQ(st.get_number("policy_changes"), 1);
  EXPECT_NE(fake_log().find("hup"), std::string::npos);
  // Detach: filter out first, then the engine drains; the reply comes when it is gone.
  size_t before = qmp_->commands.size();
  Json d(Json::Object{});
  d.set("name", "h:v:d");
  ASSERT_TRUE(daemon_call(socket_, "detach", d, &r));
  EXPECT_TRUE(r.get("problems")->as_array().empty()) << r.dump();
  std::vector<std::string> after(qmp_->commands.begin() + long(before), qmp_->commands.end());
  std::vector<std::string> want = {"qmp_capabilities", "qom-set", "blockdev-del"};
  EXPECT_EQ(after, want);
  EXPECT_NE(fake_log().find("term"), std::string::npos);
  ASSERT_TRUE(daemon_internal::read_line(w, &wbuf, &wline, 10000));
  EXPECT_NE(wline.find("\"/drained\""), std::string::npos) << wline;
  ::close(w);
  EXPECT_EQ(state_files(), "");
  std::printf("detach took %.3f s\n", r.get_number("seconds"));
}

class DaemonPolicyRefusedTest : public DaemonFakeTest {
  void configure() override { env_["FAKE_POLICY"] = "refuse"; }
};

TEST_F(DaemonPolicyRefusedTest, RefusedPolicyKeepsTheOldOne) {
  Json r, a = args();
  a.set("globs", Json(Json::Array{Json("/var/log/**")}));
  ASSERT_TRUE(daemon_call(socket_, "attach", a, &r));
  Json p(Json::Object{});
  p.set("name", "h:v:d");
  p.set("globs", Json(Json::Array{Json("/data/**")}));
  Status s = daemon_call(socket_, "policy-set", p, &r);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("refused by the fake engine"), std::string::npos) << s.message();
  Json st = status_of("h:v:d");
  ASSERT_EQ(st.get("globs")->as_array().size(), 1u);
  EXPECT_EQ(st.get("globs")->as_array()[0].as_string(), "/var/log/**");
  // The file the engine re-reads holds the policy in force again.
  FILE* f = ::popen(("cat " + dir_ + "/state/policy-*.json").c_str(), "r");
  char buf[512] = {};
  size_t n = f ? std::fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) ::pclose(f);
  EXPECT_NE(std::string(buf, n).find("/var/log/**"), std::string::npos) << buf;
  EXPECT_EQ(std::string(buf, n).find("/data/**"), std::string::npos) << buf;
}

TEST_F(DaemonSlowCrawlTest, DetachDuringTheCrawlRollsBack) {
  Json attach_reply;
  Status attach_status;
  std::thread t([&] { attach_status = daemon_call(socket_, "attach", args(), &attach_reply); });
  for (int i = 0; i < 300 && status_of("h:v:d").get_string("state") != "crawling"; ++i) ::usleep(10000);
  Json d(Json::Object{}), r;
  d.set("name", "h:v:d");
  ASSERT_TRUE(daemon_call(socket_, "detach", d, &r));
  t.join();
  ASSERT_FALSE(attach_status);
  EXPECT_NE(attach_status.message().find("detached before its attach completed"), std::string::npos)
      << attach_status.message();
  EXPECT_EQ(std::count(qmp_->commands.begin(), qmp_->commands.end(), "blockdev-del"), 1);
  EXPECT_EQ(std::count(qmp_->commands.begin(), qmp_->commands.end(), "qom-set"), 2);  // in and back
  EXPECT_EQ(fake_log().find("run "), std::string::npos) << "an engine started after the detach";
  ASSERT_TRUE(daemon_call(socket_, "status", Json(Json::Object{}), &r));
  EXPECT_TRUE(r.as_array().empty());
  EXPECT_EQ(state_files(), "");
}

class DaemonFloodTest : public DaemonFakeTest {
  void configure() override { env_["FAKE_EVENT_INTERVAL"] = "0.0005"; }
};

// A watcher that never reads must not stall the loop: its socket fills, the
// daemon keeps its backlog and goes on serving requests and other watchers.
TEST_F(DaemonFloodTest, StalledWatcherDoesNotBlockTheLoop) {
  Json r;
  ASSERT_TRUE(daemon_call(socket_, "attach", args(), &r));
  int stalled;
  ASSERT_TRUE(daemon_internal::connect_unix(socket_, &stalled));
  int small = 4096;
  ::setsockopt(stalled, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  ASSERT_TRUE(daemon_internal::write_all(stalled, R"({"execute": "watch"})" "\n"));
  int reader;
  ASSERT_TRUE(daemon_internal::connect_unix(socket_, &reader));
  ASSERT_TRUE(daemon_internal::write_all(reader, R"({"execute": "watch"})" "\n"));
  std::string rbuf, line;
  double before = status_of("h:v:d").get_number("events");
  for (int i = 0; i < 30; ++i) {  // ~3 s of events at ~2000/s: far more than the stalled socket holds
    ::usleep(100000);
    while (true) {  // the reading watcher keeps up
      pollfd p = {reader, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
      char buf[65536];
      if (::read(reader, buf, sizeof buf) <= 0) break;
    }
  }
  int fd;
  ASSERT_TRUE(daemon_internal::connect_unix(socket_, &fd));
  ASSERT_TRUE(daemon_internal::write_all(fd, R"({"execute": "ping"})" "\n"));
  std::string buf;
  ASSERT_TRUE(daemon_internal::read_line(fd, &buf, &line, 10000)) << "the loop is stuck behind a stalled watcher";
  EXPECT_EQ(line, R"({"return":{}})");
  ::close(fd);
  double after = status_of("h:v:d").get_number("events");
  EXPECT_GT(after, before + 100) << "events stopped flowing";
  std::printf("%.0f events passed while one watcher read nothing\n", after - before);
  ::close(stalled);
  ::close(reader);
}

class DaemonStaleIndexTest : public DaemonFakeTest {
  void configure() override {
    env_["FAKE_RUN_FAIL"] = "index: file system UUID differs from the disk's (stale index)";
  }
};

TEST_F(DaemonStaleIndexTest, EngineFailingAtStartRollsBack) {
  Json r;
  Status s = daemon_call(socket_, "attach", args(), &r);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("the engine exited at start (status 1)"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("stale index"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
  EXPECT_EQ(std::count(qmp_->commands.begin(), qmp_->commands.end(), "blockdev-del"), 1);
  ASSERT_TRUE(daemon_call(socket_, "status", Json(Json::Object{}), &r));
  EXPECT_TRUE(r.as_array().empty());
  EXPECT_EQ(state_files(), "");
}

// An engine the sandbox killed (docs/security.md): the daemon names the
// cause, takes the filter out again, and quits nothing (the VM runs on).
class DaemonEngineKilledBySandboxTest : public DaemonFakeTest {
  void configure() override { env_["FAKE_RUN_SIGSYS"] = "1"; }
};

TEST_F(DaemonEngineKilledBySandboxTest, SigsysIsNamedAndRolledBack) {
  Json r;
  Status s = daemon_call(socket_, "attach", args(), &r);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("the engine exited at start (signal 31 (SIGSYS: a system call outside the sandbox's allow-list)"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(std::count(qmp_->commands.begin(), qmp_->commands.end(), "blockdev-del"), 1);
  EXPECT_EQ(std::count(qmp_->commands.begin(), qmp_->commands.end(), "quit"), 0);
  ASSERT_TRUE(daemon_call(socket_, "status", Json(Json::Object{}), &r));
  EXPECT_TRUE(r.as_array().empty());
  EXPECT_EQ(state_files(), "");
}

class DaemonCrawlFailsTest : public DaemonFakeTest {
  void configure() override { env_["FAKE_CRAWL_FAIL"] = "bad superblock magic"; }
};

TEST_F(DaemonCrawlFailsTest, CrawlFailureRollsBack) {
  Json r;
  Status s = daemon_call(socket_, "attach", args(), &r);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("bad superblock magic"), std::string::npos) << s.message();
  EXPECT_EQ(std::count(qmp_->commands.begin(), qmp_->commands.end(), "blockdev-del"), 1);
  EXPECT_EQ(state_files(), "");
}
#endif

#ifdef DSVMI_CLI_PATH
class DaemonWithCliTest : public DaemonTest {
 protected:
  void SetUp() override {
    self_exe_ = DSVMI_CLI_PATH;
    DaemonTest::SetUp();
  }
};

// QEMU 7.2 without the patch rejects the driver name in blockdev-add's enum
// ("Parameter 'driver' does not accept value 'dsvmi'", qapi-visit-core.c).
TEST_F(DaemonWithCliTest, UnpatchedQemuIsNamedAndRolledBack) {
  FakeQmp q(dir_ + "/qmp.sock", [](const std::string& cmd, const Json&) {
    if (cmd == "query-named-block-nodes") return std::string(kNodes);
    if (cmd == "query-block") return std::string(kBlock);
    if (cmd == "blockdev-add")
      return std::string(R"({"error": {"class": "GenericError", "desc": "Parameter 'driver' does not accept value 'dsvmi'"}})");
    return std::string(R"({"return": {}})");
  });
  Status s = attach(dir_ + "/qmp.sock", "disk-fmt");
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("no dsvmi filter driver"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("qemu-patches/build.sh"), std::string::npos) << s.message();
  for (const auto& c : q.commands) EXPECT_NE(c, "qom-set");
  // The ring and gate it created first are gone again.
  std::string left;
  FILE* ls = ::popen(("ls " + dir_ + "/state").c_str(), "r");
  char buf[256];
  while (ls && std::fgets(buf, sizeof buf, ls)) left += buf;
  if (ls) ::pclose(ls);
  EXPECT_EQ(left, "") << "left behind in the state dir";
}

// The daemon against the real subcommands (crawl --json, ring-create,
// gate-create, run) on a real ext4 image (mkfs.ext4 is the oracle of what is
// on it): attach reaches running, status carries the crawl's gate record
// and the ring and gate headers as read in process (their geometry is what
// attach asked for), a live policy change is confirmed by the real engine,
// detach drains and cleans up. FakeQmp stands in for QEMU only.
class DaemonRealCliTest : public DaemonWithCliTest {
 protected:
  void SetUp() override {
    DaemonWithCliTest::SetUp();
    image_ = dir_ + "/disk.img";
    ASSERT_EQ(std::system(("truncate -s 64M " + image_ + " && mkfs.ext4 -q -F -b 4096 " + image_).c_str()), 0);
  }
  std::unique_ptr<FakeQmp> qmp(const std::string& image) {
    std::string nodes = R"({"return": [{"node-name": "disk-fmt", "drv": "raw", "file": ")" + image +
                        R"(", "image": {"virtual-size": 67108864}}]})";
    return std::make_unique<FakeQmp>(dir_ + "/qmp.sock", [nodes](const std::string& cmd, const Json&) {
      if (cmd == "query-named-block-nodes") return nodes;
      if (cmd == "query-block") return std::string(kBlock);
      return std::string(R"({"return": {}})");
    });
  }
  Json args() {
    Json a(Json::Object{});
    a.set("qmp", dir_ + "/qmp.sock");
    a.set("node", "disk-fmt");
    a.set("name", "h:v:d");
    a.set("ring_size", "1M");
    return a;
  }
  std::string image_;
};

TEST_F(DaemonRealCliTest, AttachPolicySetDetachWithTheRealEngine) {
  auto q = qmp(image_);
  Json r;
  ASSERT_TRUE(daemon_call(socket_, "attach", args(), &r)) << "attach";
  Json st;
  ASSERT_TRUE(daemon_call(socket_, "status", Json(Json::Object{}), &st));
  ASSERT_EQ(st.as_array().size(), 1u);
  const Json& a = st.as_array()[0];
  EXPECT_EQ(a.get_string("state"), "running") << a.dump();
  const Json* ring = a.get("ring");
  ASSERT_TRUE(ring && ring->is_object()) << a.dump();
  EXPECT_TRUE(ring->get("valid")->as_bool()) << ring->dump();
  EXPECT_EQ(ring->get_uint64("capacity"), 1u << 20) << ring->dump();
  const Json* gate = a.get("gate");
  ASSERT_TRUE(gate && gate->is_object()) << a.dump();
  EXPECT_EQ(gate->get_uint64("disk_size"), 67108864u) << gate->dump();
  EXPECT_EQ(gate->get_string("mode"), "set") << gate->dump();  // the crawl replaced pass-all
  const Json* why = a.get("gate_at_crawl");
  ASSERT_TRUE(why && why->is_object()) << a.dump();
  EXPECT_EQ(why->get_string("policy"), "metadata");
  EXPECT_GT(why->get_uint64("metadata_blocks"), 0u);
  EXPECT_GT(gate->get_uint64("set_grains"), 0u);
  ASSERT_TRUE(a.get("ring_counters")->get("lag_bytes")) << a.dump();

  Json p(Json::Object{});
  p.set("name", "h:v:d");
  p.set("globs", Json(Json::Array{Json("/data/**")}));
  ASSERT_TRUE(daemon_call(socket_, "policy-set", p, &r)) << "policy-set";
  EXPECT_EQ(r.get_number("generation"), 2);
  ASSERT_EQ(r.get("globs")->as_array().size(), 1u);

  Json d(Json::Object{});
  d.set("name", "h:v:d");
  ASSERT_TRUE(daemon_call(socket_, "detach", d, &r)) << "detach";
  EXPECT_TRUE(r.get("problems")->as_array().empty()) << r.dump();
  EXPECT_EQ(r.get_string("engine_exit"), "status 0") << r.dump();
}

// A disk without a supported file system: the crawl's summary record says
// so (no file systems, what it skipped), the attach is refused and undone.
TEST_F(DaemonRealCliTest, NoFileSystemIsNamedAndRolledBack) {
  std::string blank = dir_ + "/blank.img";
  ASSERT_EQ(std::system(("truncate -s 64M " + blank).c_str()), 0);
  auto q = qmp(blank);
  Json r;
  Status s = daemon_call(socket_, "attach", args(), &r);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("no supported file system"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("skipped partition 0"), std::string::npos) << s.message();
  EXPECT_EQ(std::count(q->commands.begin(), q->commands.end(), "blockdev-del"), 1);
  ASSERT_TRUE(daemon_call(socket_, "status", Json(Json::Object{}), &r));
  EXPECT_TRUE(r.as_array().empty());
}

// A crawl that cannot read the disk (here an NBD export whose server is a
// fake that listens nowhere): its error record is the attach's error.
TEST_F(DaemonRealCliTest, CrawlErrorRecordIsTheAttachError) {
  auto q = qmp(dir_ + "/no-such-image.qcow2");  // not a plain file: read over NBD
  Json r;
  Status s = daemon_call(socket_, "attach", args(), &r);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("crawl of nbd+unix:///"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(" failed: "), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("exited with status"), std::string::npos) << "no error record: " << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
  EXPECT_EQ(std::count(q->commands.begin(), q->commands.end(), "block-export-del"), 1);
}
#endif

}  // namespace
}  // namespace dsvmi
