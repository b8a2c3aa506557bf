// The small text pieces the marshaling parts' explanations share (the
// address of an object, the calling thread; how long ago something happened
// is base/explain.h's Ago, as in every report), and PreserveErrorInfo, which
// keeps a thread's error info across the runtime's own work.
#ifndef APARTMENTS_SRC_COM_MARSHAL_TEXT_H_
#define APARTMENTS_SRC_COM_MARSHAL_TEXT_H_

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

#include "apartments/clock.h"
#include "apartments/error_info.h"
#include "apartments/win32_kernel.h"
#include "base/explain.h"
#include "com/apartment.h"
#include "com/com_thread.h"
#include "com/error_info.h"

namespace apartments::internal {

// The source the marshaling parts' error info names.
constexpr std::string_view kSource = "apartments marshaling";

inline std::string Hex(const void* p) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%p", p);
  return buffer;
}

inline std::string DescribeCurrentThread() {
  ApartmentRef current = CurrentApartment();
  std::string where = current ? current->Describe() : "no apartment";
  return "thread " + std::to_string(GetCurrentThreadId()) + " (in " + where + ")";
}

// Keeps the calling thread's error info across internal calls that may set
// it (releases through the channel), so a Release never changes it.
class PreserveErrorInfo {
 public:
  PreserveErrorInfo() : saved_(ExchangeThreadErrorInfo(nullptr)) {}
  ~PreserveErrorInfo() {
    IErrorInfo* replaced = ExchangeThreadErrorInfo(saved_);
    if (replaced != nullptr) replaced->Release();
  }
  PreserveErrorInfo(const PreserveErrorInfo&) = delete;
  PreserveErrorInfo& operator=(const PreserveErrorInfo&) = delete;

 private:
  IErrorInfo* saved_;
};

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_MARSHAL_TEXT_H_
