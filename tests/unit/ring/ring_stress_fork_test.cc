// Cross-process stress: the producer runs in a forked child (as QEMU would),
// the consumer in the test process checks every frame bit-exact against the
// reference model and accounts for every sequence number.
// DSVMI_RING_STRESS_FRAMES=N changes the frame count (default: 20 M, fewer
// under sanitizers).
#include <sys/wait.h>
#include <unistd.h>

#include "ring_stress.h"

namespace dsvmi {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr uint64_t kDefaultFrames = 1'000'000;
#else
constexpr uint64_t kDefaultFrames = 20'000'000;
#endif

TEST(RingStress, ForkedProducerEveryFrameBitExactAndAccounted) {
  const uint64_t frames = test::StressFrames(kDefaultFrames);
  test::TempRingPath path;
  std::string err;
  auto c = RingConsumer::Create(path.path(), test::kStressCapacity, &err);
  ASSERT_TRUE(c) << err;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    dsvmi_ring_producer_stats ps{};
    std::string why;
    const bool ok = test::RunStressProducer(path.path(), frames, &ps, &why);
    if (!ok) std::fprintf(stderr, "producer: %s\n", why.c_str());
    if (write(fds[1], &ps, sizeof ps) != sizeof ps) _exit(3);
    _exit(ok ? 0 : 2);
  }
  close(fds[1]);
  test::StressChecker check;
  std::vector<FrameView> views(64);
  bool child_done = false;
  int status = 0;
  for (;;) {
    const uint64_t before = check.next_seq();
    size_t n = c->Dequeue(views.data(), views.size());
    for (size_t i = 0; i < n; i++) {
      check.OnFrame(views[i]);
      if (testing::Test::HasFatalFailure()) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        return;
      }
    }
    if (n) {
      c->ReleaseAll();
      test::MaybeStall(*c, before, check.next_seq());
      continue;
    }
    if (child_done) break;  // drained after the producer exited
    if (waitpid(child, &status, WNOHANG) == child) {
      child_done = true;
      continue;
    }
    c->Wait(1'000'000);
  }
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "producer child failed";
  dsvmi_ring_producer_stats ps{};
  ASSERT_EQ(read(fds[0], &ps, sizeof ps), static_cast<ssize_t>(sizeof ps));
  close(fds[0]);
  check.Finish(*c, ps, frames);
}

}  // namespace
}  // namespace dsvmi
