// The I/O thread and the couriers (io_thread.h).
#include "remote/io_thread.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>

#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/debug.h>

#include "apartments/win32_apartment.h"
#include "apartments/win32_kernel.h"
#include "base/check.h"

namespace apartments::internal {

IoThread& IoThread::Get() {
  static IoThread* thread = new IoThread();
  return *thread;
}

IoThread::IoThread() {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  APARTMENTS_CHECK(wake_fd_ >= 0);
  thread_ = std::thread([this] { Run(); });
  std::unique_lock lock(mu_);
  started_.wait(lock, [this] { return running_; });
}

bool IoThread::IsCurrent() const noexcept { return std::this_thread::get_id() == id_; }

void IoThread::Post(std::function<void()> work) {
  {
    std::lock_guard lock(mu_);
    inbox_.push_back(std::move(work));
  }
  // The eventfd's counter only grows until the I/O thread reads it, so a
  // write after the I/O thread drained the inbox always wakes it (edge
  // triggered: the write makes a new edge). EAGAIN (counter at its maximum)
  // means a wake is already pending.
  const std::uint64_t one = 1;
  while (write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void IoThread::Run() {
  SetThreadDescription(GetCurrentThread(), L"apartments I/O");
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::UnixEventPort::FdObserver observer(io.unixEventPort, wake_fd_,
                                         kj::UnixEventPort::FdObserver::OBSERVE_READ);
  {
    std::lock_guard lock(mu_);
    id_ = std::this_thread::get_id();
    provider_ = io.lowLevelProvider.get();
    event_port_ = &io.unixEventPort;
    running_ = true;
  }
  started_.notify_all();
  for (;;) {
    // Reset the counter first, then drain: a Post() after the read leaves
    // the counter non-zero, which the wait below sees as readable.
    std::uint64_t count = 0;
    while (read(wake_fd_, &count, sizeof count) < 0 && errno == EINTR) {
    }
    for (;;) {
      std::function<void()> work;
      {
        std::lock_guard lock(mu_);
        if (inbox_.empty()) break;
        work = std::move(inbox_.front());
        inbox_.pop_front();
      }
      // Work posted here must not throw; a KJ exception escaping it would
      // end the event loop of every connection.
      KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] { work(); })) {
        std::fprintf(stderr, "apartments: I/O thread work failed: %s\n",
                     e->getDescription().cStr());
      }
    }
    // Runs the event loop (every connection's I/O) until the eventfd is
    // readable again. No other wait happens on this thread.
    observer.whenBecomesReadable().wait(io.waitScope);
  }
}

Couriers& Couriers::Get() {
  static Couriers* couriers = new Couriers();
  return *couriers;
}

void Couriers::Post(std::function<void()> work) {
  bool start_one = false;
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(work));
    // Every courier may be blocked in a call (one that calls back into this
    // process needs another courier to serve the callback): start one more
    // whenever the waiting couriers cannot take every queued job. A courier
    // counts as waiting until it has woken up, so two posts never count on
    // the same sleeper.
    start_one = jobs_.size() > static_cast<std::size_t>(waiting_);
  }
  if (start_one) {
    std::thread([this] { Run(); }).detach();
  } else {
    wake_.notify_one();
  }
}

void Couriers::Run() {
  SetThreadDescription(GetCurrentThread(), L"apartments courier");
  // In the MTA: a call into an STA goes through its queue, one into the MTA
  // runs here.
  (void)CoInitializeEx(nullptr, COINIT_MULTITHREADED);
  std::unique_lock lock(mu_);
  for (;;) {
    if (!jobs_.empty()) {
      std::function<void()> work = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      work();
      work = nullptr;  // Destroyed here, outside the lock.
      lock.lock();
      continue;
    }
    ++waiting_;
    wake_.wait(lock);
    --waiting_;
  }
}

}  // namespace apartments::internal
