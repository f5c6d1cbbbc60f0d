// The daemon's protocol layer: JSON parsing (RFC 8259's own examples as the
// oracle, hostile input bounded), request parsing, policy files, and the
// daemon's attach error paths against a scripted fake QMP server (what
// QEMU 7.2 answers: greeting, capabilities, node lists, the exact
// "Invalid parameter 'dsvmi'" an unpatched binary gives).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

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
      daemon_internal::write_all(c, R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}})"
                                    "\n");
      std::string buf, line;
      while (daemon_internal::read_line(c, &buf, &line, 5000)) {
        std::string cmd;
        Json args;
        if (!parse_request(line, &cmd, &args)) break;
        commands.push_back(cmd);
        std::string reply = cmd == "qmp_capabilities" ? R"({"return": {}})" : handler_(cmd, args);
        for (char& ch : reply) ch = ch == '\n' ? ' ' : ch;  // QMP replies are one line each
        daemon_internal::write_all(c, R"({"event": "NOISE", "data": {}})" "\n" + reply + "\n");
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
    socket_ = dir_ + "/d.sock";
    pid_ = ::fork();
    if (pid_ == 0) {
      DaemonOptions o;
      o.socket_path = socket_;
      o.state_dir = dir_ + "/state";
      o.self_exe = self_exe_;
      ::_exit(run_daemon(o));
    }
    for (int i = 0; i < 200; ++i) {
      Json r;
      if (daemon_call(socket_, "ping", Json(Json::Object{}), &r)) return;
      ::usleep(10000);
    }
    FAIL() << "daemon did not come up";
  }
  void TearDown() override {
    ::kill(pid_, SIGTERM);
    int st;
    ::waitpid(pid_, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    std::system(("rm -rf " + dir_).c_str());
  }
  Status attach(const std::string& qmp, const std::string& node) {
    Json args(Json::Object{}), r;
    args.set("qmp", qmp);
    args.set("node", node);
    return daemon_call(socket_, "attach", args, &r);
  }
  std::string dir_, socket_;
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
  s = attach(dir_ + "/qmp.sock", "q-fmt");
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("qcow2"), std::string::npos) << s.message();
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
#endif

}  // namespace
}  // namespace dsvmi
