// apartments-demo: what the library does when Win32 code goes wrong.
//
// Plays the failure modes one after another: a wait that times out, a double
// CloseHandle detected instead of corrupting anything (and, on a cross-
// apartment call's path, named: which thread closed the handle, and when),
// an abandoned mutex,
// what the runtime records about a blocked thread, an STA stuck in
// WaitForSingleObject whose queue fills so a COM call fails with
// RPC_E_SYS_CALL_FAILED (and says why), a call into an apartment that has
// shut down (RPC_E_DISCONNECTED, and since when), a deadlock between two STAs
// and a mutex (a COM call one way, the mutex the other), reported by the
// detector, on by default with no diagnostic code, the moment it closes, with
// both threads' stacks (and read back from this process's own inspection
// socket, as apartments-wct shows it), and a hang caught by a watchdog.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <atomic>
#include <chrono>
#include <mutex>

#include "apartments/com_object.h"
#include "apartments/diagnostics.h"
#include "apartments/error_info.h"
#include "apartments/errors.h"
#include "apartments/inspect.h"
#include "apartments/win32.h"
#include "apartments/last_error.h"
#include "com/apartment_impl.h"
#include "kernel/kernel.h"

namespace {

int g_failures = 0;

void Expect(bool ok, const char* what) {
  if (!ok) {
    std::printf("   UNEXPECTED: %s\n", what);
    ++g_failures;
  }
}

const char* WaitName(DWORD result) {
  switch (result) {
    case WAIT_OBJECT_0: return "WAIT_OBJECT_0";
    case WAIT_ABANDONED_0: return "WAIT_ABANDONED_0";
    case WAIT_TIMEOUT: return "WAIT_TIMEOUT";
    case WAIT_FAILED: return "WAIT_FAILED";
    case WAIT_IO_COMPLETION: return "WAIT_IO_COMPLETION";
    default: return "WAIT_OBJECT_0 + n";
  }
}

void WaitThatTimesOut() {
  std::printf("1. A wait that times out\n");
  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, L"demo: never signaled");
  ULONGLONG start = GetTickCount64();
  DWORD result = WaitForSingleObject(event, 200);
  std::printf("   WaitForSingleObject(event, 200) = %s after %llu ms\n", WaitName(result),
              GetTickCount64() - start);
  Expect(result == WAIT_TIMEOUT, "the wait should time out");
  CloseHandle(event);
}

// Scene 2's cast: an STA serving an IStream, and a "cleanup" thread that
// closes, twice, a handle it does not own: the one the call waits on.
struct DoubleCloseScene {
  HANDLE ready = nullptr;    // The STA has marshaled its stream.
  IStream* stream = nullptr;
  DWORD sta_tid = 0;
  std::atomic<HANDLE> stray{nullptr};  // The handle the cleanup thread will close.
  HANDLE go = nullptr;       // `stray` is set.
  HANDLE closed = nullptr;   // The cleanup thread has closed it (twice).
  HANDLE finish = nullptr;   // The cleanup thread may exit.
  DWORD cleanup_tid = 0;
};
DoubleCloseScene* g_double_close = nullptr;

DWORD WINAPI DoubleCloseStaMain(LPVOID context) {
  auto* scene = static_cast<DoubleCloseScene*>(context);
  SetThreadDescription(GetCurrentThread(), L"document-sta");
  CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);
  IStream* document = nullptr;
  CreateStreamOnHGlobal(nullptr, TRUE, &document);
  CoMarshalInterThreadInterfaceInStream(IID_IStream, document, &scene->stream);
  SetEvent(scene->ready);
  MSG msg;
  while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
  document->Release();
  CoUninitialize();
  return 0;
}

DWORD WINAPI CleanupThreadMain(LPVOID context) {
  auto* scene = static_cast<DoubleCloseScene*>(context);
  SetThreadDescription(GetCurrentThread(), L"cleanup");
  if (WaitForSingleObject(scene->go, 10000) != WAIT_OBJECT_0) return 1;
  HANDLE h = scene->stray.load();
  // The bug: closing a handle this thread does not own, and closing it twice.
  CloseHandle(h);
  CloseHandle(h);
  SetEvent(scene->closed);
  WaitForSingleObject(scene->finish, 10000);
  return 0;
}

void DoubleClose() {
  std::printf("2. A handle closed twice, by a thread that did not own it, on a call's path\n");
  HANDLE event = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  BOOL first = CloseHandle(event);
  BOOL second = CloseHandle(event);
  DWORD error = GetLastError();
  std::printf("   CloseHandle(%p) = %s, then again = %s: %s\n", event, first ? "TRUE" : "FALSE",
              second ? "TRUE" : "FALSE", apartments::FormatWin32Error(error).c_str());
  std::printf("   why, from LastErrorExplanation():\n     %s\n",
              apartments::LastErrorExplanation().c_str());
  Expect(first && !second && error == ERROR_INVALID_HANDLE,
         "the second close should fail with ERROR_INVALID_HANDLE");

  // Now on the call path: a cross-apartment call's reply event (the handle
  // the caller waits on for the callee's answer) is closed twice by a
  // "cleanup" thread. The channel's test hook hands that thread the handle,
  // standing in for cleanup code holding a copy of a handle it does not own.
  DoubleCloseScene scene;
  scene.ready = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  scene.go = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  scene.closed = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  scene.finish = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  g_double_close = &scene;
  HANDLE sta = CreateThread(nullptr, 0, &DoubleCloseStaMain, &scene, 0, &scene.sta_tid);
  HANDLE cleanup = CreateThread(nullptr, 0, &CleanupThreadMain, &scene, 0, &scene.cleanup_tid);
  WaitForSingleObject(scene.ready, 10000);
  CoInitializeEx(nullptr, COINIT_MULTITHREADED);
  IStream* proxy = nullptr;
  HRESULT hr = CoGetInterfaceAndReleaseStream(scene.stream, IID_IStream,
                                              reinterpret_cast<void**>(&proxy));
  Expect(SUCCEEDED(hr), "unmarshaling the STA's stream should work");
  apartments::internal::SetReplyEventHookForTesting([](HANDLE reply) {
    g_double_close->stray = reply;
    SetEvent(g_double_close->go);
    WaitForSingleObject(g_double_close->closed, 10000);
  });
  ULONG written = 0;
  hr = proxy != nullptr ? proxy->Write("x", 1, &written) : E_POINTER;
  apartments::internal::SetReplyEventHookForTesting(nullptr);
  const std::string why = apartments::LastErrorDescription();
  std::printf("   IStream::Write through the proxy = %s\n", apartments::FormatHResult(hr).c_str());
  std::printf("   why, from the error info:\n     %s\n", why.c_str());
  const std::string cleanup_name = "thread " + std::to_string(scene.cleanup_tid) + " 'cleanup'";
  Expect(hr == RPC_E_SYS_CALL_FAILED && why.find("closed by " + cleanup_name) != std::string::npos &&
             why.find("closed again by " + cleanup_name) != std::string::npos,
         "the call should fail with RPC_E_SYS_CALL_FAILED naming the thread that closed its "
         "handle twice");
  SetEvent(scene.finish);
  if (proxy != nullptr) proxy->Release();
  CoUninitialize();
  PostThreadMessageW(scene.sta_tid, WM_QUIT, 0, 0);
  WaitForSingleObject(sta, 10000);
  WaitForSingleObject(cleanup, 10000);
  g_double_close = nullptr;
  for (HANDLE h : {sta, cleanup, scene.ready, scene.go, scene.closed, scene.finish}) CloseHandle(h);
}

DWORD WINAPI TakeMutexAndExit(LPVOID mutex) {
  SetThreadDescription(GetCurrentThread(), L"mutex-leaker");
  WaitForSingleObject(static_cast<HANDLE>(mutex), INFINITE);
  return 7;  // Exits still owning the mutex.
}

void AbandonedMutex() {
  std::printf("3. A thread exits holding a mutex\n");
  HANDLE mutex = CreateMutexW(nullptr, FALSE, L"demo: shared state");
  DWORD tid = 0;
  HANDLE thread = CreateThread(nullptr, 0, &TakeMutexAndExit, mutex, 0, &tid);
  DWORD joined = WaitForSingleObject(thread, 10000);
  DWORD code = 0;
  GetExitCodeThread(thread, &code);
  std::printf("   thread %u ('mutex-leaker') exited with code %u\n", tid, code);
  DWORD result = WaitForSingleObject(mutex, 1000);
  std::printf("   WaitForSingleObject(mutex) = %s: we own it now, its data may be inconsistent\n",
              WaitName(result));
  Expect(joined == WAIT_OBJECT_0 && code == 7 && result == WAIT_ABANDONED_0,
         "the next owner should see WAIT_ABANDONED_0");
  ReleaseMutex(mutex);
  CloseHandle(thread);
  CloseHandle(mutex);
}

struct BlockedContext {
  HANDLE mutex;
  HANDLE started;
};

DWORD WINAPI WaitOnMutex(LPVOID context) {
  auto* c = static_cast<BlockedContext*>(context);
  SetThreadDescription(GetCurrentThread(), L"worker-3");
  SetEvent(c->started);
  return WaitForSingleObject(c->mutex, 5000);
}

void WhatABlockedThreadWaitsOn() {
  std::printf("4. What a blocked thread is waiting on (the record diagnostics will read)\n");
  BlockedContext context{CreateMutexW(nullptr, TRUE, L"demo: config lock"),
                         CreateEventW(nullptr, FALSE, FALSE, nullptr)};
  DWORD tid = 0;
  HANDLE thread = CreateThread(nullptr, 0, &WaitOnMutex, &context, 0, &tid);
  WaitForSingleObject(context.started, 10000);
  apartments::internal::WaitRecord record;
  for (int i = 0; i < 1000 && record.kind == apartments::internal::BlockKind::kNone; ++i) {
    record = apartments::internal::ReadWaitRecord(tid);
    if (record.kind == apartments::internal::BlockKind::kNone) Sleep(1);
  }
  std::printf("   thread %u is %s", tid, apartments::internal::BlockKindName(record.kind));
  for (const auto& object : record.objects) {
    std::printf(": %s '%s' (handle %p), owned by thread %u (this one, %u)",
                apartments::internal::ObjectKindName(object.kind),
                apartments::internal::WideToUtf8(object.name).c_str(), object.handle,
                object.owner_tid, GetCurrentThreadId());
  }
  std::printf("\n");
  Expect(record.kind == apartments::internal::BlockKind::kKernelWait && record.objects.size() == 1 &&
             record.objects[0].owner_tid == GetCurrentThreadId(),
         "the record should name the mutex and its owner");
  ReleaseMutex(context.mutex);
  WaitForSingleObject(thread, 10000);
  CloseHandle(thread);
  CloseHandle(context.mutex);
  CloseHandle(context.started);
}

// The STA of scenarios 5 and 6: owns a stream, hands it out through a
// marshaled stream, then blocks in WaitForSingleObject without pumping.
struct StuckSta {
  HANDLE marshaled = nullptr;  // Set by the STA: IStream marshaled for another apartment.
  HANDLE ready = nullptr;      // Signaled once `stream` is valid.
  HANDLE config_loaded = nullptr;  // The event the STA waits on (named).
  IStream* stream = nullptr;   // CoMarshalInterThreadInterfaceInStream output.
  DWORD tid = 0;
};

DWORD WINAPI StuckStaMain(LPVOID context) {
  auto* sta = static_cast<StuckSta*>(context);
  SetThreadDescription(GetCurrentThread(), L"ui-thread");
  CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);
  MSG msg;
  PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);  // Make sure the queue exists.
  IStream* document = nullptr;
  CreateStreamOnHGlobal(nullptr, TRUE, &document);
  CoMarshalInterThreadInterfaceInStream(IID_IStream, document, &sta->stream);
  SetEvent(sta->ready);
  // The bug: waiting on an event without pumping messages, in an STA.
  WaitForSingleObject(sta->config_loaded, INFINITE);
  // Drain what piled up, then shut the apartment down.
  while (PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE)) DispatchMessageW(&msg);
  document->Release();
  CoUninitialize();
  return 0;
}

void StuckStaFillsItsQueue() {
  std::printf("5. An STA stuck in WaitForSingleObject while work keeps arriving\n");
  StuckSta sta;
  sta.ready = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  sta.config_loaded = CreateEventW(nullptr, TRUE, FALSE, L"config loaded");
  HANDLE thread = CreateThread(nullptr, 0, &StuckStaMain, &sta, 0, &sta.tid);
  WaitForSingleObject(sta.ready, 10000);
  // Let the STA reach its WaitForSingleObject (read from its wait record).
  for (int i = 0; i < 10000 && apartments::internal::ReadWaitRecord(sta.tid).kind !=
                                   apartments::internal::BlockKind::kKernelWait;
       ++i) {
    Sleep(1);
  }
  CoInitializeEx(nullptr, COINIT_MULTITHREADED);
  IStream* proxy = nullptr;
  HRESULT hr = CoGetInterfaceAndReleaseStream(sta.stream, IID_IStream, reinterpret_cast<void**>(&proxy));
  Expect(SUCCEEDED(hr), "unmarshaling the STA's stream should work");
  // A worker posts progress notifications to the UI thread, as UIs do.
  DWORD posted = 0;
  while (PostThreadMessageW(sta.tid, WM_APP, posted, 0)) ++posted;
  DWORD post_error = GetLastError();
  std::printf("   posted %u progress messages to thread %u, then: %s\n", posted, sta.tid,
              apartments::FormatWin32Error(post_error).c_str());
  ULONG written = 0;
  hr = proxy->Write("x", 1, &written);
  std::printf("   IStream::Write through the proxy = %s\n", apartments::FormatHResult(hr).c_str());
  std::printf("   why, from the error info:\n     %s\n", apartments::LastErrorDescription().c_str());
  Expect(hr == RPC_E_SYS_CALL_FAILED &&
             apartments::LastErrorDescription().find("config loaded") != std::string::npos,
         "the call should fail with RPC_E_SYS_CALL_FAILED naming the event the STA waits on");

  std::printf("6. The same STA, once it is released and has shut down\n");
  SetEvent(sta.config_loaded);
  WaitForSingleObject(thread, 10000);
  hr = proxy->Write("x", 1, &written);
  std::printf("   IStream::Write through the proxy = %s\n", apartments::FormatHResult(hr).c_str());
  std::printf("   why, from the error info:\n     %s\n", apartments::LastErrorDescription().c_str());
  Expect(hr == RPC_E_DISCONNECTED, "a call into an apartment that shut down should be RPC_E_DISCONNECTED");
  proxy->Release();
  CoUninitialize();
  CloseHandle(thread);
  CloseHandle(sta.ready);
  CloseHandle(sta.config_loaded);
}

// Scene 7's cast: a "render" STA serving a sink whose Write takes the
// document lock, and a "document" STA that calls that sink, through a proxy,
// while it holds the lock. The sink's wait is alertable only so that the demo
// can end it with an APC afterwards.
struct StaDeadlockScene {
  HANDLE document_lock = nullptr;   // The named mutex both want.
  HANDLE sink_ready = nullptr;      // The render STA has marshaled its sink.
  IStream* sink_stream = nullptr;   // The sink, marshaled for the document STA.
  DWORD render_tid = 0;
  DWORD render_wait = WAIT_FAILED;  // What the sink's wait returned (render STA).
  HRESULT write_hr = E_FAIL;        // What the call through the proxy returned.
};

class RenderSink final : public apartments::ComObject<RenderSink, ISequentialStream> {
 public:
  explicit RenderSink(StaDeadlockScene* scene) : scene_(scene) {}

  STDMETHODIMP Read(void*, ULONG, ULONG*) override { return E_NOTIMPL; }

  // The bug: a method, called from another apartment, that takes a lock its
  // caller may hold.
  STDMETHODIMP Write(const void*, ULONG cb, ULONG* written) override {
    DWORD r = WaitForSingleObjectEx(scene_->document_lock, INFINITE, TRUE);
    scene_->render_wait = r;
    if (r != WAIT_OBJECT_0) return E_ABORT;
    if (written != nullptr) *written = cb;
    ReleaseMutex(scene_->document_lock);
    return S_OK;
  }

 private:
  StaDeadlockScene* scene_;
};

DWORD WINAPI RenderStaMain(LPVOID context) {
  auto* scene = static_cast<StaDeadlockScene*>(context);
  SetThreadDescription(GetCurrentThread(), L"render-sta");
  CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);
  RenderSink* sink = apartments::MakeComObject<RenderSink>(scene);
  CoMarshalInterThreadInterfaceInStream(IID_ISequentialStream, sink, &scene->sink_stream);
  SetEvent(scene->sink_ready);
  MSG msg;
  while (GetMessageW(&msg, nullptr, 0, 0) > 0) DispatchMessageW(&msg);
  sink->Release();
  CoUninitialize();
  return 0;
}

DWORD WINAPI DocumentStaMain(LPVOID context) {
  auto* scene = static_cast<StaDeadlockScene*>(context);
  SetThreadDescription(GetCurrentThread(), L"document-sta");
  CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED);
  ISequentialStream* sink = nullptr;
  HRESULT hr = CoGetInterfaceAndReleaseStream(scene->sink_stream, IID_ISequentialStream,
                                              reinterpret_cast<void**>(&sink));
  if (SUCCEEDED(hr) && WaitForSingleObject(scene->document_lock, 10000) == WAIT_OBJECT_0) {
    // The bug's other half: calling out of the apartment while holding it.
    ULONG written = 0;
    hr = sink->Write("page", 4, &written);
    ReleaseMutex(scene->document_lock);
  }
  scene->write_hr = hr;
  if (sink != nullptr) sink->Release();
  CoUninitialize();
  return 0;
}

void CALLBACK WakeApc(ULONG_PTR) {}

// This process's own live-inspection answer ("snapshot text"), as
// `apartments-wct <pid>` gets it: served by default, like every process that
// uses queues or COM. "" when it does not answer.
std::string AskOwnInspection() {
  const std::string path = apartments::InspectionSocketPath(getpid());
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string();
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const char request[] = "snapshot text\n";
    [[maybe_unused]] ssize_t sent = send(fd, request, sizeof request - 1, MSG_NOSIGNAL);
    char buffer[4096];
    ssize_t n;
    while ((n = recv(fd, buffer, sizeof buffer, 0)) > 0) answer.append(buffer, n);
  }
  close(fd);
  return answer;
}

// The lines of the recent report that starts with `start`, from an
// inspection answer ("  | " prefixed), or "".
std::string RecentReport(const std::string& answer, const std::string& start) {
  const std::size_t at = answer.find("  | " + start);
  if (at == std::string::npos) return std::string();
  std::string out;
  std::size_t line = at;
  while (line < answer.size() && answer.compare(line, 4, "  | ") == 0) {
    std::size_t end = answer.find('\n', line);
    if (end == std::string::npos) end = answer.size();
    const std::string text = answer.substr(line + 4, end - line - 4);
    if (line != at && (text.rfind("Deadlock", 0) == 0 || text.rfind("Thread ", 0) == 0)) break;
    out += text + "\n";
    line = end + 1;
  }
  return out;
}

void DeadlockDetected() {
  std::printf("7. Two STAs and a mutex deadlock, reported by default (no diagnostic code)\n");
  StaDeadlockScene scene;
  scene.document_lock = CreateMutexW(nullptr, FALSE, L"demo: document lock");
  scene.sink_ready = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  HANDLE render = CreateThread(nullptr, 0, &RenderStaMain, &scene, 0, &scene.render_tid);
  WaitForSingleObject(scene.sink_ready, 10000);
  HANDLE document = CreateThread(nullptr, 0, &DocumentStaMain, &scene, 0, nullptr);
  // Deadlock detection is on by default: the report went to stderr when the
  // cycle closed, and is kept for apartments-wct; this process asks its own
  // inspection socket for it, as `apartments-wct <pid>` would.
  std::string text;
  for (int i = 0; i < 1000 && text.empty(); ++i) {
    text = RecentReport(AskOwnInspection(), "Deadlock: ");
    if (text.empty()) Sleep(10);  // Polling the server, not synchronizing threads.
  }
  const bool detected = !text.empty();
  std::printf("   (also on stderr; here as apartments-wct %d shows it under 'recent reports')\n",
              static_cast<int>(getpid()));
  std::printf("   %s", detected ? text.c_str() : "(no report)\n");
  Expect(detected, "the deadlock should be reported by default");
  Expect(text.find("'document-sta'") != std::string::npos &&
             text.find("'render-sta'") != std::string::npos &&
             text.find("COM call") != std::string::npos &&
             text.find("mutex 'demo: document lock'") != std::string::npos &&
             text.find("What to do next: ") != std::string::npos,
         "the report should name both STAs, the COM call and the mutex, and what to do next");
  // Break the cycle: an APC ends the sink's alertable wait, so Write returns,
  // the document STA's call completes and it releases the lock.
  QueueUserAPC(&WakeApc, render, 0);
  const bool document_done = WaitForSingleObject(document, 10000) == WAIT_OBJECT_0;
  PostThreadMessageW(scene.render_tid, WM_QUIT, 0, 0);
  const bool render_done = WaitForSingleObject(render, 10000) == WAIT_OBJECT_0;
  std::printf("   broken by an APC to 'render-sta': its wait = %s, Write through the proxy = %s\n",
              WaitName(scene.render_wait), apartments::FormatHResult(scene.write_hr).c_str());
  Expect(document_done && render_done && scene.render_wait == WAIT_IO_COMPLETION &&
             scene.write_hr == E_ABORT,
         "the APC should end the wait, the call and both threads");
  for (HANDLE h : {document, render, scene.document_lock, scene.sink_ready}) CloseHandle(h);
}

// A UI thread that stops pumping for a while (it waits for a render that
// takes long) while messages arrive: the hang watchdog reports it with its
// wait chain and stack, and reports it again as transient once it pumps.
struct RenderContext {
  HANDLE rendered;
  HANDLE queue_ready;
  HANDLE done;  // The thread stays (with its queue) until the demo has seen it all.
  DWORD tid;
};

__attribute__((noinline)) DWORD WaitForReportRendered(HANDLE rendered) {
  DWORD r = WaitForSingleObject(rendered, 10000);
  asm volatile("" ::: "memory");  // Keeps this frame (no tail call).
  return r;
}

DWORD WINAPI RenderThread(LPVOID param) {
  auto* c = static_cast<RenderContext*>(param);
  SetThreadDescription(GetCurrentThread(), L"ui-thread");
  MSG msg;
  PeekMessageW(&msg, nullptr, 0, 0, PM_NOREMOVE);
  SetEvent(c->queue_ready);
  WaitForReportRendered(c->rendered);
  while (PeekMessageW(&msg, nullptr, 0, 0, PM_REMOVE)) DispatchMessageW(&msg);
  WaitForSingleObject(c->done, 10000);
  return 0;
}

void WatchdogCatchesHang() {
  std::printf("8. A hang caught by the watchdog (threshold 300 ms), then resolved\n");
  RenderContext c{CreateEventW(nullptr, TRUE, FALSE, L"demo: report rendered"),
                  CreateEventW(nullptr, TRUE, FALSE, nullptr),
                  CreateEventW(nullptr, TRUE, FALSE, nullptr), 0};
  HANDLE hung = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  HANDLE resolved = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  std::mutex mu;
  std::string hung_text;
  std::string resolved_text;
  std::atomic<DWORD> ui_tid{0};
  apartments::HangWatchdogOptions options;
  options.threshold = std::chrono::milliseconds(300);
  options.poll_interval = std::chrono::milliseconds(50);
  options.callback = [&](const apartments::HangReport& report) {
    if (report.tid != ui_tid.load()) return;
    std::lock_guard lock(mu);
    if (report.event == apartments::HangEvent::kHung) {
      hung_text = report.text;
      SetEvent(hung);
    } else if (report.event == apartments::HangEvent::kResolved) {
      resolved_text = report.text;
      SetEvent(resolved);
    }
  };
  HANDLE thread = CreateThread(nullptr, 0, &RenderThread, &c, 0, &c.tid);
  ui_tid = c.tid;
  WaitForSingleObject(c.queue_ready, 10000);
  for (int i = 0; i < 3; ++i) PostThreadMessageW(c.tid, WM_APP, i, 0);
  apartments::HangWatchdog watchdog(options);
  watchdog.Start();
  const bool caught = WaitForSingleObject(hung, 5000) == WAIT_OBJECT_0;
  SetEvent(c.rendered);
  const bool ended = WaitForSingleObject(resolved, 5000) == WAIT_OBJECT_0;
  watchdog.Stop();
  SetEvent(c.done);
  {
    std::lock_guard lock(mu);
    std::printf("   %s", caught ? hung_text.c_str() : "(no report)\n");
    std::printf("   %s", ended ? resolved_text.c_str() : "(no resolution)\n");
    Expect(caught && hung_text.find("demo: report rendered") != std::string::npos,
           "the watchdog should report the hang with the event it waits on");
    Expect(ended, "the watchdog should report the hang as transient once it ends");
  }
  WaitForSingleObject(thread, 10000);
  for (HANDLE h : {thread, c.rendered, c.queue_ready, c.done, hung, resolved}) CloseHandle(h);
}

}  // namespace

int main() {
  std::printf("apartments demo: Win32 failure modes, and what the library says about them\n\n");
  WaitThatTimesOut();
  DoubleClose();
  AbandonedMutex();
  WhatABlockedThreadWaitsOn();
  StuckStaFillsItsQueue();
  DeadlockDetected();
  WatchdogCatchesHang();
  std::printf("\n%s\n", g_failures == 0 ? "All behaved as on Windows, and said why." : "FAILED");
  return g_failures == 0 ? 0 : 1;
}
