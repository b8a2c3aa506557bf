#include <cstdio>

#include "apartments/errors.h"
#include "apartments/win32.h"

int main() {
  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  bool ok = WaitForSingleObject(event, 10) == WAIT_TIMEOUT && SetEvent(event) &&
            WaitForSingleObject(event, 0) == WAIT_OBJECT_0 && CloseHandle(event) &&
            !CloseHandle(event) && GetLastError() == ERROR_INVALID_HANDLE;
  std::printf("consumer: %s (%s)\n", ok ? "ok" : "FAILED",
              apartments::FormatWin32Error(GetLastError()).c_str());
  return ok ? 0 : 1;
}
