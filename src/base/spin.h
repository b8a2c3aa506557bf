// Spin-then-sleep: the one bounded spin every layer uses before it sleeps
// waiting for another thread (the message layer's idle and SendMessageW
// waits, the kernel's waits that name the thread they wait for, so the COM
// channel's reply waits and modal loop).
//
// Why: on virtual machines a cross-CPU futex wake-up costs tens of
// microseconds (the hypervisor's IPI), a spin a few. Why only sometimes: when
// both threads share a CPU, spinning only delays the very thread we wait
// for (a naive spin makes a same-CPU round trip ~13x slower), so a waiter
// spins only when its peer last ran on another CPU (PeerOnOtherCpu), a hint
// each side publishes where it goes idle.
//
// Rules for callers: never spin holding a lock (the peer may need it to make
// the progress we wait for), and re-check the condition under the real
// sleep's rules afterwards (a spin that gives up proves nothing).
#ifndef APARTMENTS_SRC_BASE_SPIN_H_
#define APARTMENTS_SRC_BASE_SPIN_H_

#include <sched.h>

namespace apartments::internal {

// The bound: kSpinPauses pauses, a check every kPausesPerCheck (512 pauses:
// about 2 µs on CPUs with a short pause, about 12 µs where pause is ~25 ns,
// still well under a cross-CPU wake-up on the VMs we measure). Checks are
// close together because the answer comes on average half a check interval
// after it is ready, twice per round trip (request, reply): 8 pauses apart
// cost about 200 ns of a ~800 ns cross-CPU call. A check reads one word the
// peer writes once per hand-off, kept on a cache line of its own rather than
// one where the peer keeps other state (the queue's input sequence), so
// polling more often costs the peer no extra misses.
inline constexpr int kSpinPauses = 512;
inline constexpr int kPausesPerCheck = 2;
// For a consumer waiting on a producer that streams (one-way posts, not a
// round trip): checks 16 pauses apart, so that each check finds a batch
// rather than pulling the producer's line away after every message.
inline constexpr int kStreamingPausesPerCheck = 16;

// Whether spinning for a peer last seen on `peer_cpu` (-1: unknown) can pay:
// only when it runs on another CPU. sched_getcpu() reads the rseq area: no
// system call.
inline bool PeerOnOtherCpu(int peer_cpu) noexcept {
  return peer_cpu >= 0 && peer_cpu != sched_getcpu();
}

// Spins (bounded, see above) until `done()` returns true; returns whether it
// did. `done` should be a load or two: it runs only every few pauses, because
// the word it reads usually sits on the peer's hot cache line and every read
// costs the peer a miss.
// One "I am spinning" hint to the CPU (lets the sibling hyperthread run).
inline void CpuRelax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

template <typename Done>
inline bool SpinUntil(Done done, int pauses_per_check = kPausesPerCheck) noexcept {
  for (int i = 0; i < kSpinPauses; i += pauses_per_check) {
    for (int j = 0; j < pauses_per_check; ++j) CpuRelax();
    if (done()) return true;
  }
  return false;
}

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_BASE_SPIN_H_
