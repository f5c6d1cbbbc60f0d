// One producer and one consumer per ring, enforced with open-file-description
// locks on two different bytes of the ring file. The kernel drops a lock when
// its holder dies, so a crashed consumer can be replaced (consumer restart)
// without any cleanup, while a second live consumer is refused.
#pragma once

#include <string>

namespace dsvmi::ring {

enum class Role { kConsumer = 0, kProducer = 1 };

// Takes the role's lock on fd (held until fd is closed). False + message
// ("ring already has a consumer") if another open file holds it.
bool TryLockRole(int fd, Role role, std::string* err);

}  // namespace dsvmi::ring
