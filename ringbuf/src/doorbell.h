// The consumer's doorbell: a futex on the shared `consumer_sleeping` word.
//
// A non-private futex on a MAP_SHARED page works across processes keyed by the
// page's backing (file, offset), so no eventfd has to be passed between the
// consumer and QEMU, and nothing can be left dangling when either side dies.
#pragma once

#include <atomic>
#include <cstdint>

namespace dsvmi::ring {

// Sleeps while *word == expected, at most timeout_ns (< 0: no limit). Returns
// on a wake, a timeout, a signal or if *word != expected already.
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns);

// Wakes every sleeper on *word.
void FutexWakeAll(std::atomic<uint32_t>* word);

}  // namespace dsvmi::ring
