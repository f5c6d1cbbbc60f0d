// `dsvmi capture` and `dsvmi replay` end to end, without QEMU: this test is the
// producer (the ring's C ABI, as QEMU's filter calls it), the CLI is the
// consumer. Oracle: a std::vector<uint8_t> disk model the test updates with
// every request it produces; the replayed image must equal it byte for byte.
// The counters are read from the --json records (docs/cli-json.md).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dsvmi/daemon_json.h"
#include "dsvmi/ring.h"

namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs build/dsvmi with `args`, stderr to `log` and stdout to `log` with
// the extension .jsonl (the --json records); returns the pid.
fs::path records_of(const fs::path& log) { return fs::path(log).replace_extension(".jsonl"); }

pid_t spawn(const std::vector<std::string>& args, const fs::path& log) {
  const fs::path out = records_of(log);
  pid_t pid = fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int ofd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(ofd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    std::string bin = DSVMI_BIN;
    argv.push_back(bin.data());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run(const std::vector<std::string>& args, const fs::path& log) { return wait_exit(spawn(args, log)); }

// The last complete record of `log`'s stdout whose `key` is `value`; a
// null Json when there is none.
dsvmi::Json record(const fs::path& log, const char* key, const char* value) {
  std::istringstream lines(slurp(records_of(log)));
  dsvmi::Json found;
  for (std::string line; std::getline(lines, line);) {
    if (lines.eof()) break;  // no newline yet: still being written
    dsvmi::Json j;
    if (dsvmi::Json::parse(line, &j) && j.get_string(key) == value) found = j;
  }
  return found;
}

uint64_t field(const dsvmi::Json& j, const char* key) {
  const dsvmi::Json* v = j.get(key);
  uint64_t n = 0;
  EXPECT_TRUE(v && v->get_uint64(&n)) << key << " missing or not an integer in " << j.dump();
  return n;
}

class CaptureCliTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kDisk = 4 << 20;
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dsvmi_capture_test_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    model_.assign(kDisk, 0);
    std::ofstream(dir_ / "disk.img", std::ios::binary).write(reinterpret_cast<const char*>(model_.data()), kDisk);
  }
  void TearDown() override {
    if (capture_ > 0) {
      kill(capture_, SIGKILL);
      wait_exit(capture_);
    }
    if (producer_) dsvmi_ring_producer_close(producer_);
    fs::remove_all(dir_);
  }

  void start_capture(const std::string& capacity) {
    capture_ = spawn({"capture", "--json", "--ring", (dir_ / "ring").string(), "--out",
                      (dir_ / "t.trace").string(), "--capacity", capacity},
                     dir_ / "capture.log");
    for (int i = 0; i < 3000 && record(dir_ / "capture.log", "capture", "ready").is_null(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const dsvmi::Json ready = record(dir_ / "capture.log", "capture", "ready");
    ASSERT_TRUE(ready.is_object()) << slurp(dir_ / "capture.log");
    ASSERT_EQ(ready.get_string("ring"), (dir_ / "ring").string());
    char err[256] = "";
    producer_ = dsvmi_ring_producer_open((dir_ / "ring").c_str(), err, sizeof err);
    ASSERT_NE(producer_, nullptr) << err;
  }

  int stop_capture() {
    kill(capture_, SIGCONT);
    kill(capture_, SIGTERM);
    int rc = wait_exit(capture_);
    capture_ = -1;
    return rc;
  }

  // Produces one random request and applies it to the model when enqueued
  // (a dropped one still "reaches the disk" in the model: the guest's write
  // is never failed; the replay then cannot match, which is the point).
  int produce_random(std::mt19937_64& rng, uint64_t max_len = 70000) {
    const int k = static_cast<int>(rng() % 8);
    uint64_t off = rng() % kDisk, len = 1 + rng() % max_len;
    if (off + len > kDisk) len = kDisk - off;
    if (k < 6) {
      std::vector<uint8_t> p(len);
      for (auto& b : p) b = static_cast<uint8_t>(rng());
      std::memcpy(&model_[off], p.data(), len);
      // Two iovecs plus a skip, as a guest's scatter list would.
      std::vector<uint8_t> buf(3 + len);
      std::memcpy(buf.data() + 3, p.data(), len);
      const size_t cut = 3 + len / 2;
      iovec iov[2] = {{buf.data(), cut}, {buf.data() + cut, buf.size() - cut}};
      return dsvmi_ring_produce(producer_, DSVMI_FRAME_WRITE, off, len, iov, 2, 3);
    }
    if (k == 6) {
      std::memset(&model_[off], 0, len);
      return dsvmi_ring_produce(producer_, DSVMI_FRAME_WRITE_ZEROES, off, len, nullptr, 0, 0);
    }
    return dsvmi_ring_produce(producer_, DSVMI_FRAME_FLUSH, 0, 0, nullptr, 0, 0);
  }

  std::vector<uint8_t> image(const fs::path& p) {
    std::string s = slurp(p);
    return std::vector<uint8_t>(s.begin(), s.end());
  }

  fs::path dir_;
  std::vector<uint8_t> model_;
  pid_t capture_ = -1;
  dsvmi_ring_producer_t* producer_ = nullptr;
};

TEST_F(CaptureCliTest, CapturedTraceReplaysToTheModel) {
  start_capture("64M");
  std::mt19937_64 rng(3);
  for (int i = 0; i < 4000; ++i) {
    // At most 4000 x 16 KB < the 64 MiB ring: nothing can be dropped even if
    // the consumer is slow, so the replay must match the model exactly.
    ASSERT_TRUE(produce_random(rng, 16000)) << "dropped request " << i;
  }
  ASSERT_EQ(stop_capture(), 0) << slurp(dir_ / "capture.log");
  const dsvmi::Json stats = record(dir_ / "capture.log", "capture", "stats");
  ASSERT_TRUE(stats.is_object()) << slurp(dir_ / "capture.log");
  EXPECT_EQ(field(stats, "frames"), 4000u) << stats.dump();
  EXPECT_EQ(field(stats, "lost_records"), 0u) << stats.dump();
  EXPECT_EQ(field(stats, "producer_produced_frames"), 4000u) << stats.dump();

  ASSERT_EQ(run({"replay", "--json", (dir_ / "t.trace").string(), (dir_ / "disk.img").string()},
                dir_ / "replay.log"),
            0)
      << slurp(dir_ / "replay.log");
  const dsvmi::Json summary = record(dir_ / "replay.log", "replay", "summary");
  ASSERT_TRUE(summary.is_object()) << slurp(dir_ / "replay.log");
  EXPECT_EQ(field(summary, "frames"), 4000u) << summary.dump();
  EXPECT_TRUE(summary.get("lossless") && summary.get("lossless")->as_bool()) << summary.dump();
  EXPECT_EQ(field(summary, "writes") + field(summary, "write_zeroes") + field(summary, "flushes") +
                field(summary, "discards"),
            4000u)
      << summary.dump();
  ASSERT_EQ(image(dir_ / "disk.img"), model_);
}

TEST_F(CaptureCliTest, PausedConsumerLosesFramesAndTheTraceSaysSo) {
  start_capture("64K");  // the smallest ring: a few frames fill it
  kill(capture_, SIGSTOP);
  std::mt19937_64 rng(4);
  int dropped = 0;
  for (int i = 0; i < 200; ++i) dropped += produce_random(rng, 8000) ? 0 : 1;
  ASSERT_GT(dropped, 0) << "a paused consumer with a 64 KiB ring must make the producer drop";
  kill(capture_, SIGCONT);
  // Once the consumer has drained, the next frame that fits carries the Lost
  // record. (Requests keep being dropped, and counted, until then.)
  int accepted = 0;
  for (int i = 0; i < 100000 && accepted < 5; ++i) {
    if (produce_random(rng, 8000)) {
      ++accepted;
    } else {
      ++dropped;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ASSERT_EQ(accepted, 5) << "the resumed consumer never made room";
  dsvmi_ring_producer_stats ps;
  dsvmi_ring_producer_get_stats(producer_, &ps);
  EXPECT_EQ(ps.dropped_frames, static_cast<uint64_t>(dropped));
  ASSERT_EQ(stop_capture(), 0) << slurp(dir_ / "capture.log");
  const std::string log = slurp(dir_ / "capture.log");
  EXPECT_NE(log.find("WARNING: producer lost"), std::string::npos) << log;
  const dsvmi::Json stats = record(dir_ / "capture.log", "capture", "stats");
  ASSERT_TRUE(stats.is_object()) << log;
  EXPECT_EQ(field(stats, "producer_dropped_frames"), static_cast<uint64_t>(dropped)) << stats.dump();
  EXPECT_GT(field(stats, "lost_records"), 0u) << stats.dump();
  EXPECT_EQ(field(stats, "lost_frames"), static_cast<uint64_t>(dropped)) << stats.dump();

  // Replay refuses a lossy trace unless told, and says why.
  EXPECT_EQ(run({"replay", "--json", (dir_ / "t.trace").string(), (dir_ / "disk.img").string()},
                dir_ / "r1.log"),
            1);
  const std::string r1 = slurp(dir_ / "r1.log");
  // Every drop is reported in band (the last request produced succeeded, so
  // nothing is left pending): the Lost records add up to exactly `dropped`,
  // however the drops were split into records while the consumer caught up.
  const dsvmi::Json summary = record(dir_ / "r1.log", "replay", "summary");
  ASSERT_TRUE(summary.is_object()) << r1;
  EXPECT_EQ(field(summary, "lost_frames"), static_cast<uint64_t>(dropped)) << summary.dump();
  EXPECT_EQ(field(summary, "lost_records"), field(stats, "lost_records")) << summary.dump();
  EXPECT_FALSE(summary.get("lossless")->as_bool()) << summary.dump();
  EXPECT_NE(r1.find("LOST"), std::string::npos) << r1;  // and says so loudly
  EXPECT_NE(r1.find("cannot be a faithful copy"), std::string::npos) << r1;
  EXPECT_EQ(run({"replay", "--allow-lost", (dir_ / "t.trace").string(), (dir_ / "disk.img").string()},
                dir_ / "r2.log"),
            0)
      << slurp(dir_ / "r2.log");
}

TEST_F(CaptureCliTest, TruncatedTraceIsReportedNotReplayedSilently) {
  // 50 requests of at most 70 KB fit a 64 MiB ring whatever the consumer's
  // pace (a 1 MiB ring dropped requests when the machine was loaded).
  start_capture("64M");
  std::mt19937_64 rng(5);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(produce_random(rng)) << "dropped request " << i;
  ASSERT_EQ(stop_capture(), 0);
  const auto size = fs::file_size(dir_ / "t.trace");
  fs::resize_file(dir_ / "t.trace", size - 5);
  EXPECT_EQ(run({"replay", (dir_ / "t.trace").string(), (dir_ / "disk.img").string()}, dir_ / "r.log"), 1);
  const std::string r = slurp(dir_ / "r.log");
  EXPECT_NE(r.find("truncated"), std::string::npos) << r;
  EXPECT_NE(r.find("49 frames before it were applied"), std::string::npos) << r;
}

TEST_F(CaptureCliTest, FramesLimitStopsAfterExactlyNFrames) {
  capture_ = spawn({"capture", "--json", "--ring", (dir_ / "ring").string(), "--out",
                    (dir_ / "t.trace").string(), "--capacity", "1M", "--frames", "7"},
                   dir_ / "capture.log");
  for (int i = 0; i < 3000 && record(dir_ / "capture.log", "capture", "ready").is_null(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  char err[256] = "";
  producer_ = dsvmi_ring_producer_open((dir_ / "ring").c_str(), err, sizeof err);
  ASSERT_NE(producer_, nullptr) << err;
  std::mt19937_64 rng(6);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(produce_random(rng, 1000));
  // It stops by itself (a hang would hit the ctest timeout, not pass).
  const int rc = wait_exit(capture_);
  capture_ = -1;
  ASSERT_EQ(rc, 0) << slurp(dir_ / "capture.log");
  EXPECT_EQ(field(record(dir_ / "capture.log", "capture", "stats"), "frames"), 7u) << slurp(dir_ / "capture.log");
  run({"replay", "--json", (dir_ / "t.trace").string(), (dir_ / "disk.img").string()}, dir_ / "r.log");
  EXPECT_EQ(field(record(dir_ / "r.log", "replay", "summary"), "frames"), 7u) << slurp(dir_ / "r.log");
}

TEST_F(CaptureCliTest, UntilIdleAttachesDrainsEverythingAndStopsByItself) {
  // The ring exists and holds 20 frames before capture starts: capture must
  // attach (not create), deliver all 20, go idle and exit on its own.
  ASSERT_EQ(run({"ring-create", (dir_ / "ring").string(), "--size", "1M"}, dir_ / "create.log"), 0)
      << slurp(dir_ / "create.log");
  char err[256] = "";
  producer_ = dsvmi_ring_producer_open((dir_ / "ring").c_str(), err, sizeof err);
  ASSERT_NE(producer_, nullptr) << err;
  std::mt19937_64 rng(8);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(produce_random(rng, 1000));
  const int rc = run({"capture", "--json", "--ring", (dir_ / "ring").string(), "--out",
                      (dir_ / "t.trace").string(), "--until-idle", "0.3"},
                     dir_ / "capture.log");
  const std::string log = slurp(dir_ / "capture.log");
  ASSERT_EQ(rc, 0) << log;
  const dsvmi::Json ready = record(dir_ / "capture.log", "capture", "ready");
  ASSERT_TRUE(ready.is_object()) << log;
  EXPECT_TRUE(ready.get("attached") && ready.get("attached")->as_bool()) << ready.dump();
  EXPECT_EQ(field(record(dir_ / "capture.log", "capture", "stats"), "frames"), 20u) << log;
  ASSERT_EQ(run({"replay", (dir_ / "t.trace").string(), (dir_ / "disk.img").string()}, dir_ / "r.log"), 0)
      << slurp(dir_ / "r.log");
  ASSERT_EQ(image(dir_ / "disk.img"), model_);
}

TEST_F(CaptureCliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(run({"capture", "--ring", "x"}, dir_ / "u.log"), 2);
  EXPECT_EQ(run({"replay", "only-one-arg"}, dir_ / "u.log"), 2);
  EXPECT_EQ(run({"replay", "--discard", "maybe", "a", "b"}, dir_ / "u.log"), 2);
}

}  // namespace
