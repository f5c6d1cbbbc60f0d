// One producer and one consumer per ring, enforced with open-file-description
// locks on two different bytes of the ring file. The kernel drops a lock when
// its holder dies, so a crashed consumer can be replaced (consumer restart)
// without any cleanup, while a second live consumer is refused.
//
// A third byte carries a capability rather than a role: a producer that
// wakes an idle consumer at once (doorbell word kDoorbellIdle, docs/ring.md)
// holds a read lock on it. Producers built before the idle state do not, and
// the consumer then never goes idle (it naps in 1 ms ticks as before). A
// lock, not a header field: the header layout stays the same, and the
// capability dies with the producer process exactly like its role lock.
#pragma once

#include <string>

namespace dsvmi::ring {

enum class Role { kConsumer = 0, kProducer = 1 };
inline constexpr int kIdleWakeLockByte = 2;

// Takes the role's lock on fd (held until fd is closed). False + message
// ("ring already has a consumer") if another open file holds it.
bool TryLockRole(int fd, Role role, std::string* err);

// Producer: advertises "wakes an idle consumer" on fd (held until fd is
// closed). Best effort: without it the consumer only naps.
void AdvertiseIdleWake(int fd);

// Consumer: true unless a producer is attached that does not advertise the
// idle wake (an older libdsvmi-producer.so). With no producer attached the
// answer is true: a producer that attaches later is seen at the next check.
// Two fcntl(F_OFD_GETLK) calls at most.
bool ProducerWakesIdle(int fd);

}  // namespace dsvmi::ring
