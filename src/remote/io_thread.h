// The remote layer's two kinds of threads (docs/out_of_process.md):
//
// - IoThread: the process's one kj::EventLoop thread. Every Cap'n Proto
//   object (connections, capabilities, promises) lives on it and is touched
//   only there, because KJ's reference counts are not thread-safe. It never
//   blocks on anything but its event loop, and never calls into an
//   apartment. Other threads hand it work with Post().
// - Couriers: threads in the MTA that carry work from the I/O thread into
//   apartments (an incoming call is made on the object through the channel,
//   so an STA object is called through its queue, with its quota, message
//   filter and explanations) and release references there. They may block.
//
// Why our own inbox rather than kj::Executor: executeAsync() needs an event
// loop on the calling thread (apartment threads have none), and
// executeSync() blocks the caller until the I/O thread has run the work,
// which an STA must never do while it should pump. Post() only queues and
// writes an eventfd.
#ifndef APARTMENTS_SRC_REMOTE_IO_THREAD_H_
#define APARTMENTS_SRC_REMOTE_IO_THREAD_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace kj {
class LowLevelAsyncIoProvider;
class UnixEventPort;
}

namespace apartments::internal {

class IoThread {
 public:
  // The process's I/O thread, started on first use. Leaked at exit (it may
  // still hold connections while the process ends).
  static IoThread& Get();

  // Queues `work` to run on the I/O thread, in order, and returns at once.
  // Any thread, including the I/O thread itself (the work then runs after
  // the current event). Memory ordering: writes before Post() are visible to
  // `work`.
  void Post(std::function<void()> work);

  // Whether the calling thread is the I/O thread.
  bool IsCurrent() const noexcept;

  // The I/O thread's provider, for wrapping sockets. I/O thread only.
  kj::LowLevelAsyncIoProvider& provider() noexcept { return *provider_; }
  // The I/O thread's event port, for watching file descriptors. I/O thread
  // only.
  kj::UnixEventPort& event_port() noexcept { return *event_port_; }

 private:
  IoThread();
  void Run();

  std::mutex mu_;
  std::condition_variable started_;
  std::deque<std::function<void()>> inbox_;  // Guarded by mu_.
  int wake_fd_ = -1;                         // An eventfd; written after each Post.
  bool running_ = false;                     // Guarded by mu_.
  std::thread::id id_{};
  kj::LowLevelAsyncIoProvider* provider_ = nullptr;  // I/O thread only.
  kj::UnixEventPort* event_port_ = nullptr;           // I/O thread only.
  std::thread thread_;
};

class Couriers {
 public:
  // The process's couriers, started on first use, one more whenever every
  // courier is busy (a call that calls back needs another). Leaked at exit.
  static Couriers& Get();

  // Queues `work` for a courier thread (in the MTA) and returns at once. Any
  // thread. Memory ordering: writes before Post() are visible to `work`.
  void Post(std::function<void()> work);

 private:
  Couriers() = default;
  void Run();

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;  // Guarded by mu_.
  int waiting_ = 0;                         // Guarded by mu_.
};

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_REMOTE_IO_THREAD_H_
