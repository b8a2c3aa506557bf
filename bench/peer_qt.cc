// Peer: Qt 6. The partner thread runs a QEventLoop owning a QObject; a call is
// QMetaObject::invokeMethod(object, functor, Qt::BlockingQueuedConnection,
// &result), which queues the functor to that thread and blocks until it has
// run. Throughput: invokeMethod with Qt::QueuedConnection. One
// QCoreApplication per process, created by main() on the measuring thread.
#include <memory>
#include <string>

#include "harness.h"
#include "workloads.h"

#if PEER_AVAILABLE
#include <QCoreApplication>
#include <QEventLoop>
#include <QMetaObject>
#include <QObject>

#include <atomic>
#include <functional>

namespace bench {
namespace {

void QtBlockingCall(Runner& r, Placement p) {
  QObject* target = nullptr;   // Lives in, and is destroyed on, the partner thread.
  QEventLoop* loop = nullptr;  // Likewise.
  RoundTrip(
      r, p,
      [&](Signal& ready) {
        QEventLoop event_loop;
        QObject object;
        loop = &event_loop;
        target = &object;
        ready.Notify();
        event_loop.exec();
      },
      [&](long long v) {
        long long result = 0;
        QMetaObject::invokeMethod(
            target, [v] { return v + 1; }, Qt::BlockingQueuedConnection, &result);
        return result;
      },
      [&] { QMetaObject::invokeMethod(target, [&] { loop->quit(); }, Qt::QueuedConnection); });
}

class QtQueuedPosts {
 public:
  template <typename OnMarker>
  void Consume(Signal& ready, OnMarker on_marker) {
    QEventLoop event_loop;
    QObject object;
    on_marker_ = on_marker;
    loop_ = &event_loop;
    target_.store(&object, std::memory_order_release);
    ready.Notify();
    event_loop.exec();
  }
  void Post(std::int64_t i) {
    QMetaObject::invokeMethod(Target(), [this, i] { sink_ += i; }, Qt::QueuedConnection);
  }
  void PostMarker() {
    QMetaObject::invokeMethod(Target(), [this] { on_marker_(); }, Qt::QueuedConnection);
  }
  void PostStop() {
    QMetaObject::invokeMethod(Target(), [this] { loop_->quit(); }, Qt::QueuedConnection);
  }

 private:
  QObject* Target() { return target_.load(std::memory_order_acquire); }
  std::atomic<QObject*> target_{nullptr};
  QEventLoop* loop_ = nullptr;
  std::function<void()> on_marker_;
  std::int64_t sink_ = 0;  // Consumer thread only.
};

}  // namespace
}  // namespace bench
#endif  // PEER_AVAILABLE

int main(int argc, char** argv) {
  using namespace bench;
  const char* kCall = "peer:Qt invokeMethod BlockingQueued";
  const char* kPost = "peer:Qt invokeMethod Queued";
#if PEER_AVAILABLE
  int qt_argc = 1;
  char* qt_argv[] = {argv[0], nullptr};
  QCoreApplication app(qt_argc, qt_argv);
  RegisterAllPlacements("roundtrip", kCall, QtBlockingCall);
  RegisterPosting(kPost, [] { return std::make_unique<QtQueuedPosts>(); });
#else
  for (const char* group : {"roundtrip", "post1", "post2"}) {
    RegisterSkipped(group, group == std::string("roundtrip") ? kCall : kPost,
                    {Placement::kSameCpu, Placement::kCrossCpu, Placement::kUnpinned},
                    "skipped: not installed (qt6-base-dev)");
  }
#endif
  return RunCases(argc, argv);
}
