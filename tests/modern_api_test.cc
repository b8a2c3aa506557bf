// Cross-layer tests of the modern API with the Win32 surface: only public headers.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "apartments/apartment.h"
#include "apartments/win32.h"

namespace apartments {
namespace {

TEST(ModernWin32Test, CallFromWin32StaIsReentrant) {
  // Tests that a Win32 STA (CoInitializeEx) calling an Apartment pumps while it waits,
  // so the callee can call back into the caller's apartment (through Current()).
  Apartment worker({.name = "modern-reenter"});
  std::promise<std::pair<DWORD, DWORD>> out;
  std::thread caller([&] {
    if (CoInitializeEx(nullptr, COINIT_APARTMENTTHREADED) != S_OK) std::abort();
    {
      Result<Apartment> me = Apartment::Current();
      if (!me) std::abort();
      Result<DWORD> back = worker.Call([&] {
        return me->Call([] { return GetCurrentThreadId(); }).value_or(0);
      });
      out.set_value({GetCurrentThreadId(), back.value_or(0)});
    }
    CoUninitialize();
  });
  auto future = out.get_future();
  // Bounded: a caller that does not pump would deadlock here.
  ASSERT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto [caller_tid, callback_tid] = future.get();
  EXPECT_EQ(caller_tid, callback_tid);
  caller.join();
}

TEST(ModernWin32Test, PlainThreadCallsThroughImplicitMta) {
  // Tests that a thread that never initialized COM can Call an Apartment (it is in
  // the implicit MTA the Apartment keeps alive).
  Apartment worker({.name = "modern-mta"});
  std::promise<HRESULT> out;
  std::thread caller([&] { out.set_value(worker.Call([] { return 1; }).code()); });
  auto future = out.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(future.get(), S_OK);
  caller.join();
}

}  // namespace
}  // namespace apartments
