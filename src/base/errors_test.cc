#include "apartments/errors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>
#include <string_view>

#include "apartments/win32_errors.h"
#include "apartments/win32_types.h"

// The thread's last error lives in src/base with the per-thread state;
// declared here so this test does not need apartments/win32_kernel.h.
extern "C" DWORD WINAPI GetLastError(void);
extern "C" void WINAPI SetLastError(DWORD dwErrCode);

namespace apartments {
namespace {

constexpr DWORD kSystemFlags = FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS;
constexpr DWORD kSentinelError = 0xC0DE;

// --- Values -------------------------------------------------------------------

// Tests that the RPC and call-control HRESULTs have Windows' values
// (winerror.h, "COM Error Codes (STG, RPC)").
TEST(Win32ErrorsTest, RpcHResultsHaveWindowsValues) {
  EXPECT_EQ(RPC_E_CALL_REJECTED, static_cast<HRESULT>(0x80010001));
  EXPECT_EQ(RPC_E_CALL_CANCELED, static_cast<HRESULT>(0x80010002));
  EXPECT_EQ(RPC_E_SERVER_DIED_DNE, static_cast<HRESULT>(0x80010012));
  EXPECT_EQ(RPC_E_SYS_CALL_FAILED, static_cast<HRESULT>(0x80010100));
  EXPECT_EQ(RPC_E_SERVERFAULT, static_cast<HRESULT>(0x80010105));
  EXPECT_EQ(RPC_E_CHANGED_MODE, static_cast<HRESULT>(0x80010106));
  EXPECT_EQ(RPC_E_DISCONNECTED, static_cast<HRESULT>(0x80010108));
  EXPECT_EQ(RPC_E_SERVERCALL_RETRYLATER, static_cast<HRESULT>(0x8001010A));
  EXPECT_EQ(RPC_E_CANTCALLOUT_ININPUTSYNCCALL, static_cast<HRESULT>(0x8001010D));
  EXPECT_EQ(RPC_E_WRONG_THREAD, static_cast<HRESULT>(0x8001010E));
  EXPECT_EQ(RPC_E_THREAD_NOT_INIT, static_cast<HRESULT>(0x8001010F));
  EXPECT_EQ(RPC_E_INVALID_IPID, static_cast<HRESULT>(0x80010113));
  EXPECT_EQ(RPC_E_INVALID_OBJECT, static_cast<HRESULT>(0x80010114));
  EXPECT_EQ(RPC_S_CALLPENDING, static_cast<HRESULT>(0x80010115));
  EXPECT_EQ(RPC_E_TIMEOUT, static_cast<HRESULT>(0x8001011F));
  EXPECT_EQ(RPC_E_NO_SYNC, static_cast<HRESULT>(0x80010120));
  EXPECT_EQ(CO_E_CANCEL_DISABLED, static_cast<HRESULT>(0x80010140));
  EXPECT_EQ(RPC_E_UNEXPECTED, static_cast<HRESULT>(0x8001FFFF));
}

// Tests that the generic and COM HRESULTs have Windows' values (winerror.h,
// "COM Error Codes (Generic)").
TEST(Win32ErrorsTest, GenericAndComHResultsHaveWindowsValues) {
  EXPECT_EQ(S_OK, 0);
  EXPECT_EQ(S_FALSE, 1);
  EXPECT_EQ(E_UNEXPECTED, static_cast<HRESULT>(0x8000FFFF));
  EXPECT_EQ(E_NOTIMPL, static_cast<HRESULT>(0x80004001));
  EXPECT_EQ(E_NOINTERFACE, static_cast<HRESULT>(0x80004002));
  EXPECT_EQ(E_POINTER, static_cast<HRESULT>(0x80004003));
  EXPECT_EQ(E_ABORT, static_cast<HRESULT>(0x80004004));
  EXPECT_EQ(E_FAIL, static_cast<HRESULT>(0x80004005));
  EXPECT_EQ(E_ACCESSDENIED, static_cast<HRESULT>(0x80070005));
  EXPECT_EQ(E_HANDLE, static_cast<HRESULT>(0x80070006));
  EXPECT_EQ(E_OUTOFMEMORY, static_cast<HRESULT>(0x8007000E));
  EXPECT_EQ(E_INVALIDARG, static_cast<HRESULT>(0x80070057));
  EXPECT_EQ(E_PENDING, static_cast<HRESULT>(0x8000000A));
  EXPECT_EQ(E_BOUNDS, static_cast<HRESULT>(0x8000000B));
  EXPECT_EQ(E_ILLEGAL_METHOD_CALL, static_cast<HRESULT>(0x8000000E));
  EXPECT_EQ(CO_E_INIT_ONLY_SINGLE_THREADED, static_cast<HRESULT>(0x80004012));
  EXPECT_EQ(CO_E_NOT_SUPPORTED, static_cast<HRESULT>(0x80004021));
  EXPECT_EQ(CLASS_E_NOAGGREGATION, static_cast<HRESULT>(0x80040110));
  EXPECT_EQ(CLASS_E_CLASSNOTAVAILABLE, static_cast<HRESULT>(0x80040111));
  EXPECT_EQ(REGDB_E_CLASSNOTREG, static_cast<HRESULT>(0x80040154));
  EXPECT_EQ(CO_E_NOTINITIALIZED, static_cast<HRESULT>(0x800401F0));
  EXPECT_EQ(CO_E_ALREADYINITIALIZED, static_cast<HRESULT>(0x800401F1));
  EXPECT_EQ(CO_E_OBJNOTREG, static_cast<HRESULT>(0x800401FB));
  EXPECT_EQ(CO_E_OBJISREG, static_cast<HRESULT>(0x800401FC));
  EXPECT_EQ(CO_E_OBJNOTCONNECTED, static_cast<HRESULT>(0x800401FD));
  EXPECT_EQ(CO_E_RELEASED, static_cast<HRESULT>(0x800401FF));
  EXPECT_EQ(CO_E_SERVER_STOPPING, static_cast<HRESULT>(0x80080008));
  EXPECT_EQ(DISP_E_EXCEPTION, static_cast<HRESULT>(0x80020009));
  EXPECT_EQ(STG_E_INVALIDFUNCTION, static_cast<HRESULT>(0x80030001));
  EXPECT_EQ(STG_E_ACCESSDENIED, static_cast<HRESULT>(0x80030005));
  EXPECT_EQ(STG_E_INVALIDPOINTER, static_cast<HRESULT>(0x80030009));
  EXPECT_EQ(STG_E_INVALIDPARAMETER, static_cast<HRESULT>(0x80030057));
  EXPECT_EQ(STG_E_MEDIUMFULL, static_cast<HRESULT>(0x80030070));
}

// Tests that the Win32 error values match Windows' (winerror.h, "System Error
// Codes").
TEST(Win32ErrorsTest, Win32ErrorsHaveWindowsValues) {
  EXPECT_EQ(ERROR_SUCCESS, 0);
  EXPECT_EQ(NO_ERROR, 0);
  EXPECT_EQ(ERROR_FILE_NOT_FOUND, 2);
  EXPECT_EQ(ERROR_ACCESS_DENIED, 5);
  EXPECT_EQ(ERROR_INVALID_HANDLE, 6);
  EXPECT_EQ(ERROR_NOT_ENOUGH_MEMORY, 8);
  EXPECT_EQ(ERROR_OUTOFMEMORY, 14);
  EXPECT_EQ(ERROR_GEN_FAILURE, 31);
  EXPECT_EQ(ERROR_NOT_SUPPORTED, 50);
  EXPECT_EQ(ERROR_INVALID_PARAMETER, 87);
  EXPECT_EQ(ERROR_CALL_NOT_IMPLEMENTED, 120);
  EXPECT_EQ(ERROR_INSUFFICIENT_BUFFER, 122);
  EXPECT_EQ(ERROR_ALREADY_EXISTS, 183);
  EXPECT_EQ(ERROR_MORE_DATA, 234);
  EXPECT_EQ(ERROR_NO_MORE_ITEMS, 259);
  EXPECT_EQ(ERROR_NOT_OWNER, 288);
  EXPECT_EQ(ERROR_TOO_MANY_POSTS, 298);
  EXPECT_EQ(ERROR_MR_MID_NOT_FOUND, 317);
  EXPECT_EQ(ERROR_THREAD_MODE_ALREADY_BACKGROUND, 400);
  EXPECT_EQ(ERROR_INVALID_ADDRESS, 487);
  EXPECT_EQ(ERROR_ABANDONED_WAIT_0, 735);
  EXPECT_EQ(ERROR_OPERATION_ABORTED, 995);
  EXPECT_EQ(ERROR_IO_PENDING, 997);
  EXPECT_EQ(ERROR_INVALID_MESSAGE, 1002);
  EXPECT_EQ(ERROR_INVALID_FLAGS, 1004);
  EXPECT_EQ(ERROR_POSSIBLE_DEADLOCK, 1131);
  EXPECT_EQ(ERROR_MESSAGE_SYNC_ONLY, 1159);
  EXPECT_EQ(ERROR_NOT_FOUND, 1168);
  EXPECT_EQ(ERROR_INVALID_WINDOW_HANDLE, 1400);
  EXPECT_EQ(ERROR_CANNOT_FIND_WND_CLASS, 1407);
  EXPECT_EQ(ERROR_WINDOW_OF_OTHER_THREAD, 1408);
  EXPECT_EQ(ERROR_CLASS_ALREADY_EXISTS, 1410);
  EXPECT_EQ(ERROR_CLASS_DOES_NOT_EXIST, 1411);
  EXPECT_EQ(ERROR_CLASS_HAS_WINDOWS, 1412);
  EXPECT_EQ(ERROR_INVALID_INDEX, 1413);
  EXPECT_EQ(ERROR_INVALID_THREAD_ID, 1444);
  EXPECT_EQ(ERROR_NO_SYSTEM_RESOURCES, 1450);
  EXPECT_EQ(ERROR_TIMEOUT, 1460);
  EXPECT_EQ(ERROR_RESOURCE_LANG_NOT_FOUND, 1815);
  EXPECT_EQ(ERROR_NOT_ENOUGH_QUOTA, 1816);
}

// Tests that Win32 error constants compare with a DWORD and with a LONG, with
// == and <, directly and through EXPECT_EQ, without sign-compare warnings (this
// file is built with -Wall -Wextra -Werror).
TEST(Win32ErrorsTest, Win32ErrorsCompareWithDwordAndLongWithoutWarnings) {
  const DWORD dword_error = 6;
  const LONG long_error = 6;
  EXPECT_TRUE(dword_error == ERROR_INVALID_HANDLE);
  EXPECT_TRUE(long_error == ERROR_INVALID_HANDLE);
  EXPECT_TRUE(dword_error < ERROR_NOT_ENOUGH_MEMORY);
  EXPECT_TRUE(long_error < ERROR_NOT_ENOUGH_MEMORY);
  EXPECT_EQ(ERROR_INVALID_HANDLE, dword_error);
  EXPECT_EQ(dword_error, ERROR_INVALID_HANDLE);
  EXPECT_EQ(ERROR_INVALID_HANDLE, long_error);
  const DWORD assigned = ERROR_NOT_ENOUGH_QUOTA;
  EXPECT_EQ(assigned, 1816u);
}

// --- HRESULT macros -------------------------------------------------------------

// Tests that SUCCEEDED and FAILED go by the sign bit, so RPC_S_CALLPENDING
// (a failure despite its _S_) fails and S_FALSE succeeds.
TEST(Win32ErrorsTest, SucceededAndFailedFollowTheSeverityBit) {
  EXPECT_TRUE(SUCCEEDED(S_OK));
  EXPECT_TRUE(SUCCEEDED(S_FALSE));
  EXPECT_FALSE(FAILED(S_FALSE));
  EXPECT_TRUE(FAILED(E_FAIL));
  EXPECT_TRUE(FAILED(RPC_E_SYS_CALL_FAILED));
  EXPECT_TRUE(FAILED(RPC_S_CALLPENDING));
  EXPECT_FALSE(SUCCEEDED(RPC_S_CALLPENDING));
  EXPECT_TRUE(IS_ERROR(E_FAIL));
  EXPECT_FALSE(IS_ERROR(S_FALSE));
}

// Tests that HRESULT_CODE, HRESULT_FACILITY and HRESULT_SEVERITY take an
// HRESULT apart and MAKE_HRESULT puts it back together.
TEST(Win32ErrorsTest, FieldMacrosSplitAndBuildHResults) {
  EXPECT_EQ(HRESULT_CODE(RPC_E_WRONG_THREAD), 0x010E);
  EXPECT_EQ(HRESULT_FACILITY(RPC_E_WRONG_THREAD), FACILITY_RPC);
  EXPECT_EQ(HRESULT_SEVERITY(RPC_E_WRONG_THREAD), SEVERITY_ERROR);
  EXPECT_EQ(HRESULT_FACILITY(E_INVALIDARG), FACILITY_WIN32);
  EXPECT_EQ(HRESULT_FACILITY(CO_E_OBJNOTCONNECTED), FACILITY_ITF);
  EXPECT_EQ(HRESULT_FACILITY(DISP_E_EXCEPTION), FACILITY_DISPATCH);
  EXPECT_EQ(HRESULT_FACILITY(STG_E_MEDIUMFULL), FACILITY_STORAGE);
  EXPECT_EQ(HRESULT_FACILITY(CO_E_SERVER_STOPPING), FACILITY_WINDOWS);
  EXPECT_EQ(HRESULT_SEVERITY(S_FALSE), SEVERITY_SUCCESS);
  EXPECT_EQ(MAKE_HRESULT(SEVERITY_ERROR, FACILITY_RPC, 0x0100), RPC_E_SYS_CALL_FAILED);
  EXPECT_EQ(MAKE_HRESULT(SEVERITY_SUCCESS, FACILITY_NULL, 1), S_FALSE);
}

// Tests that HRESULT_FROM_WIN32 maps 0 to S_OK, as Windows does.
TEST(Win32ErrorsTest, HResultFromWin32PassesZeroThrough) {
  EXPECT_EQ(HRESULT_FROM_WIN32(ERROR_SUCCESS), S_OK);
}

// Tests that HRESULT_FROM_WIN32 puts a positive error in FACILITY_WIN32 with
// the error bit, keeping only its low 16 bits.
TEST(Win32ErrorsTest, HResultFromWin32WrapsPositiveErrors) {
  EXPECT_EQ(HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE), static_cast<HRESULT>(0x80070006));
  EXPECT_EQ(HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE), E_HANDLE);
  EXPECT_EQ(HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER), E_INVALIDARG);
  EXPECT_EQ(HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_QUOTA), static_cast<HRESULT>(0x80070718));
  EXPECT_EQ(HRESULT_FROM_WIN32(0x00012345u), static_cast<HRESULT>(0x80072345));
}

// Tests that HRESULT_FROM_WIN32 returns a value that is already a failure
// HRESULT unchanged.
TEST(Win32ErrorsTest, HResultFromWin32PassesNegativeValuesThrough) {
  EXPECT_EQ(HRESULT_FROM_WIN32(static_cast<DWORD>(E_FAIL)), E_FAIL);
  EXPECT_EQ(HRESULT_FROM_WIN32(static_cast<DWORD>(RPC_E_SYS_CALL_FAILED)), RPC_E_SYS_CALL_FAILED);
}

// Tests that HRESULT_FROM_WIN32 works in constant expressions and is also
// visible as a macro name, as code written for Windows expects.
TEST(Win32ErrorsTest, HResultFromWin32IsConstexprAndDefined) {
  static_assert(HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE) == static_cast<HRESULT>(0x80070006));
  constexpr HRESULT kQuota = HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_QUOTA);
  switch (kQuota) {
    case HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_QUOTA):
      break;
    default:
      ADD_FAILURE() << "switch on HRESULT_FROM_WIN32 missed";
  }
#ifndef HRESULT_FROM_WIN32
  ADD_FAILURE() << "HRESULT_FROM_WIN32 is not defined as a macro name";
#endif
}

// --- Tables -------------------------------------------------------------------

// Tests that no HRESULT appears twice in the table (a second entry would never
// be found).
TEST(ErrorsTest, HResultTableValuesAreUnique) {
  std::set<HRESULT> seen;
  for (const internal::HResultEntry& entry : internal::HResultTableForTesting()) {
    EXPECT_TRUE(seen.insert(entry.value).second) << entry.name;
  }
}

// Tests that no Win32 error appears twice in the table.
TEST(ErrorsTest, Win32ErrorTableValuesAreUnique) {
  std::set<DWORD> seen;
  for (const internal::Win32ErrorEntry& entry : internal::Win32ErrorTableForTesting()) {
    EXPECT_TRUE(seen.insert(entry.value).second) << entry.name;
  }
}

// Tests that the tables hold the codes they are meant to: every RPC_E_ of
// winerror.h's 0x8001xxxx range and several dozen Win32 errors.
TEST(ErrorsTest, TablesCoverTheDefinedCodes) {
  int rpc_codes = 0;
  for (const internal::HResultEntry& entry : internal::HResultTableForTesting()) {
    if (std::string_view(entry.name).starts_with("RPC_E_")) ++rpc_codes;
  }
  EXPECT_EQ(rpc_codes, 52);
  EXPECT_GE(internal::Win32ErrorTableForTesting().size(), 60u);
}

// Tests that every entry of both tables has a name and a message, the name
// spelled like a Windows constant, and that a wrapped Win32 error's name says
// so.
TEST(ErrorsTest, EveryEntryHasNameAndMessage) {
  for (const internal::HResultEntry& entry : internal::HResultTableForTesting()) {
    ASSERT_NE(entry.name, nullptr);
    ASSERT_NE(entry.message, nullptr);
    EXPECT_GT(std::strlen(entry.name), 2u);
    EXPECT_GT(std::strlen(entry.message), 0u) << entry.name;
    EXPECT_EQ(
        std::string_view(entry.name).find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"),
        std::string_view::npos)
        << entry.name;
  }
  for (const internal::Win32ErrorEntry& entry : internal::Win32ErrorTableForTesting()) {
    ASSERT_NE(entry.name, nullptr);
    ASSERT_NE(entry.hresult_name, nullptr);
    ASSERT_NE(entry.message, nullptr);
    EXPECT_TRUE(std::string_view(entry.name).starts_with("ERROR_")) << entry.name;
    EXPECT_EQ(std::string(entry.hresult_name),
              "HRESULT_FROM_WIN32(" + std::string(entry.name) + ")");
    EXPECT_GT(std::strlen(entry.message), 0u) << entry.name;
  }
}

// Tests that every message is one line of printable ASCII without insert
// sequences, which FormatMessage relies on (it neither converts nor expands).
TEST(ErrorsTest, MessagesArePrintableAsciiWithoutInserts) {
  auto check = [](const char* name, const char* message) {
    for (const char* c = message; *c != '\0'; ++c) {
      EXPECT_TRUE(*c >= 0x20 && *c < 0x7F) << name;
      EXPECT_NE(*c, '%') << name;
    }
  };
  for (const internal::HResultEntry& entry : internal::HResultTableForTesting()) {
    check(entry.name, entry.message);
  }
  for (const internal::Win32ErrorEntry& entry : internal::Win32ErrorTableForTesting()) {
    check(entry.name, entry.message);
  }
}

// --- Describe -------------------------------------------------------------------

// Tests that DescribeHResult finds every entry of the table under its own name.
TEST(ErrorsTest, DescribeHResultRoundTripsEveryEntry) {
  for (const internal::HResultEntry& entry : internal::HResultTableForTesting()) {
    const ErrorDescription description = DescribeHResult(entry.value);
    EXPECT_EQ(description.name, entry.name);
    EXPECT_EQ(description.message, entry.message);
  }
}

// Tests that DescribeWin32Error finds every entry of the table under its own
// name.
TEST(ErrorsTest, DescribeWin32ErrorRoundTripsEveryEntry) {
  for (const internal::Win32ErrorEntry& entry : internal::Win32ErrorTableForTesting()) {
    const ErrorDescription description = DescribeWin32Error(entry.value);
    EXPECT_EQ(description.name, entry.name);
    EXPECT_EQ(description.message, entry.message);
  }
}

// Tests that a constant's description carries the constant's own spelling.
TEST(ErrorsTest, DescribeNamesTheConstant) {
  EXPECT_STREQ(DescribeHResult(RPC_E_SYS_CALL_FAILED).name, "RPC_E_SYS_CALL_FAILED");
  EXPECT_STREQ(DescribeHResult(RPC_E_SYS_CALL_FAILED).message, "System call failed.");
  EXPECT_STREQ(DescribeHResult(CO_E_OBJNOTCONNECTED).name, "CO_E_OBJNOTCONNECTED");
  EXPECT_STREQ(DescribeHResult(S_OK).name, "S_OK");
  EXPECT_STREQ(DescribeWin32Error(ERROR_NOT_OWNER).name, "ERROR_NOT_OWNER");
  EXPECT_STREQ(DescribeWin32Error(ERROR_NOT_OWNER).message,
               "Attempt to release mutex not owned by caller.");
  EXPECT_STREQ(DescribeWin32Error(NO_ERROR).name, "ERROR_SUCCESS");
}

// Tests that an HRESULT with a name of its own keeps it even when it is also
// an HRESULT_FROM_WIN32 value.
TEST(ErrorsTest, DescribeHResultPrefersTheHResultsOwnName) {
  EXPECT_STREQ(DescribeHResult(E_INVALIDARG).name, "E_INVALIDARG");
  EXPECT_STREQ(DescribeHResult(E_INVALIDARG).message, "One or more arguments are invalid");
  EXPECT_STREQ(DescribeHResult(HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE)).name, "E_HANDLE");
}

// Tests that HRESULT_FROM_WIN32 of a known Win32 error is described as such,
// with the Win32 error's message.
TEST(ErrorsTest, DescribeHResultNamesWrappedWin32Errors) {
  const ErrorDescription description = DescribeHResult(HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_QUOTA));
  EXPECT_STREQ(description.name, "HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_QUOTA)");
  EXPECT_STREQ(description.message, "Not enough quota is available to process this command.");
}

// Tests that unknown HRESULTs, including 0x80070000 (which HRESULT_FROM_WIN32
// never produces) and wrapped unknown Win32 errors, describe as two nulls.
TEST(ErrorsTest, DescribeHResultReturnsNullsForUnknownValues) {
  for (DWORD bits : {0x8001FFFEu, 0x80070000u, 0x8007FFFFu, 0x00070006u, 0x12345678u}) {
    const ErrorDescription description = DescribeHResult(static_cast<HRESULT>(bits));
    EXPECT_EQ(description.name, nullptr) << std::hex << bits;
    EXPECT_EQ(description.message, nullptr) << std::hex << bits;
  }
}

// Tests that unknown Win32 errors describe as two nulls.
TEST(ErrorsTest, DescribeWin32ErrorReturnsNullsForUnknownValues) {
  for (DWORD code : {7u, 65535u, 0x80070006u}) {
    const ErrorDescription description = DescribeWin32Error(code);
    EXPECT_EQ(description.name, nullptr) << code;
    EXPECT_EQ(description.message, nullptr) << code;
  }
}

// --- Format ---------------------------------------------------------------------

// Tests that FormatHResult gives "NAME (0xXXXXXXXX): message".
TEST(ErrorsTest, FormatHResultGivesNameHexAndMessage) {
  EXPECT_EQ(FormatHResult(RPC_E_SYS_CALL_FAILED),
            "RPC_E_SYS_CALL_FAILED (0x80010100): System call failed.");
  EXPECT_EQ(FormatHResult(S_OK), "S_OK (0x00000000): The operation completed successfully.");
  EXPECT_EQ(FormatHResult(HRESULT_FROM_WIN32(ERROR_TOO_MANY_POSTS)),
            "HRESULT_FROM_WIN32(ERROR_TOO_MANY_POSTS) (0x8007012A): Too many posts were made "
            "to a semaphore.");
}

// Tests that FormatHResult gives the hex value for an unknown HRESULT.
TEST(ErrorsTest, FormatHResultMarksUnknownValues) {
  EXPECT_EQ(FormatHResult(static_cast<HRESULT>(0x8001FFFE)), "0x8001FFFE (unknown HRESULT)");
}

// Tests that FormatWin32Error gives "NAME (decimal): message", or the number
// and "unknown" for an unknown value.
TEST(ErrorsTest, FormatWin32ErrorGivesNameNumberAndMessage) {
  EXPECT_EQ(FormatWin32Error(ERROR_INVALID_HANDLE),
            "ERROR_INVALID_HANDLE (6): The handle is invalid.");
  EXPECT_EQ(FormatWin32Error(ERROR_NOT_ENOUGH_QUOTA),
            "ERROR_NOT_ENOUGH_QUOTA (1816): Not enough quota is available to process this "
            "command.");
  EXPECT_EQ(FormatWin32Error(12345), "12345 (unknown Win32 error)");
}

// --- FormatMessage --------------------------------------------------------------

// Tests that FormatMessageA writes a Win32 error's message ending in "\r\n" and
// returns its length without the NUL.
TEST(FormatMessageTest, WritesWin32MessageWithCrLf) {
  char buffer[256];
  const DWORD length = FormatMessageA(kSystemFlags, nullptr, ERROR_INVALID_HANDLE, 0, buffer,
                                      sizeof(buffer), nullptr);
  EXPECT_STREQ(buffer, "The handle is invalid.\r\n");
  EXPECT_EQ(length, std::strlen("The handle is invalid.\r\n"));
}

// Tests that FormatMessageA writes an HRESULT's message.
TEST(FormatMessageTest, WritesHResultMessage) {
  char buffer[256];
  ASSERT_NE(
      FormatMessageA(kSystemFlags, nullptr, static_cast<DWORD>(RPC_E_WRONG_THREAD),
                     MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), buffer, sizeof(buffer), nullptr),
      0u);
  EXPECT_STREQ(buffer,
               "The application called an interface that was marshalled for a different "
               "thread.\r\n");
}

// Tests that an HRESULT_FROM_WIN32 value gets its Win32 error's message, as on
// Windows (E_INVALIDARG reads "The parameter is incorrect.").
TEST(FormatMessageTest, LooksUpWin32HResultsByTheirLowWord) {
  char buffer[256];
  ASSERT_NE(FormatMessageA(kSystemFlags, nullptr, static_cast<DWORD>(E_INVALIDARG), 0, buffer,
                           sizeof(buffer), nullptr),
            0u);
  EXPECT_STREQ(buffer, "The parameter is incorrect.\r\n");
  ASSERT_NE(FormatMessageA(kSystemFlags, nullptr,
                           static_cast<DWORD>(HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_QUOTA)), 0,
                           buffer, sizeof(buffer), nullptr),
            0u);
  EXPECT_STREQ(buffer, "Not enough quota is available to process this command.\r\n");
}

// Tests that FORMAT_MESSAGE_ALLOCATE_BUFFER hands back a buffer the caller
// frees with LocalFree, which returns NULL.
TEST(FormatMessageTest, AllocatesBufferFreedWithLocalFree) {
  LPSTR message = nullptr;
  const DWORD length =
      FormatMessageA(kSystemFlags | FORMAT_MESSAGE_ALLOCATE_BUFFER, nullptr, ERROR_NOT_OWNER, 0,
                     reinterpret_cast<LPSTR>(&message), 0, nullptr);
  ASSERT_NE(message, nullptr);
  EXPECT_STREQ(message, "Attempt to release mutex not owned by caller.\r\n");
  EXPECT_EQ(length, std::strlen(message));
  EXPECT_EQ(LocalFree(message), nullptr);
}

// Tests that FormatMessageW writes the same text as wide characters.
TEST(FormatMessageTest, WideWritesWideText) {
  wchar_t buffer[256];
  const DWORD length = FormatMessageW(kSystemFlags, nullptr, ERROR_TIMEOUT, 0, buffer,
                                      sizeof(buffer) / sizeof(buffer[0]), nullptr);
  EXPECT_EQ(std::wstring(buffer),
            L"This operation returned because the timeout period expired.\r\n");
  EXPECT_EQ(length, std::wstring(buffer).size());
}

// Tests that FormatMessageW with FORMAT_MESSAGE_ALLOCATE_BUFFER allocates at
// least nSize characters and that LocalFree frees them.
TEST(FormatMessageTest, WideAllocatesAtLeastTheRequestedSize) {
  LPWSTR message = nullptr;
  const DWORD length = FormatMessageW(kSystemFlags | FORMAT_MESSAGE_ALLOCATE_BUFFER, nullptr,
                                      static_cast<DWORD>(RPC_E_SYS_CALL_FAILED), 0,
                                      reinterpret_cast<LPWSTR>(&message), 1024, nullptr);
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(std::wstring(message), L"System call failed.\r\n");
  EXPECT_EQ(length, 21u);
  message[1023] = L'\0';  // Within the 1024 characters asked for (ASan checks).
  EXPECT_EQ(LocalFree(message), nullptr);
}

// Tests that FORMAT_MESSAGE_MAX_WIDTH_MASK turns the line break into a space,
// as on Windows.
TEST(FormatMessageTest, MaxWidthMaskReplacesLineBreakWithSpace) {
  char buffer[256];
  FormatMessageA(kSystemFlags | FORMAT_MESSAGE_MAX_WIDTH_MASK, nullptr, ERROR_INVALID_HANDLE, 0,
                 buffer, sizeof(buffer), nullptr);
  EXPECT_STREQ(buffer, "The handle is invalid. ");
}

// Tests that an unknown id fails with ERROR_MR_MID_NOT_FOUND, as on Windows.
TEST(FormatMessageTest, UnknownIdFailsWithMrMidNotFound) {
  char buffer[256];
  SetLastError(kSentinelError);
  EXPECT_EQ(FormatMessageA(kSystemFlags, nullptr, 0x8001FFFEu, 0, buffer, sizeof(buffer), nullptr),
            0u);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_MR_MID_NOT_FOUND));
}

// Tests that an unknown id with FORMAT_MESSAGE_ALLOCATE_BUFFER fails the same
// way and leaves the out pointer NULL.
TEST(FormatMessageTest, UnknownIdWithAllocateBufferGivesNullBuffer) {
  wchar_t not_null = 0;
  LPWSTR message = &not_null;
  EXPECT_EQ(FormatMessageW(kSystemFlags | FORMAT_MESSAGE_ALLOCATE_BUFFER, nullptr, 7, 0,
                           reinterpret_cast<LPWSTR>(&message), 0, nullptr),
            0u);
  EXPECT_EQ(message, nullptr);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_MR_MID_NOT_FOUND));
}

// Tests that a caller buffer too small for the message and its NUL fails with
// ERROR_INSUFFICIENT_BUFFER.
TEST(FormatMessageTest, SmallBufferFailsWithInsufficientBuffer) {
  const char expected[] = "The handle is invalid.\r\n";
  char buffer[sizeof(expected) - 1];  // One short: no room for the NUL.
  EXPECT_EQ(FormatMessageA(kSystemFlags, nullptr, ERROR_INVALID_HANDLE, 0, buffer, sizeof(buffer),
                           nullptr),
            0u);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INSUFFICIENT_BUFFER));
}

// Tests that calls without FORMAT_MESSAGE_FROM_SYSTEM, with
// FORMAT_MESSAGE_FROM_STRING, or with a null buffer fail with
// ERROR_INVALID_PARAMETER.
TEST(FormatMessageTest, UnsupportedSourcesFailWithInvalidParameter) {
  char buffer[256];
  EXPECT_EQ(FormatMessageA(FORMAT_MESSAGE_IGNORE_INSERTS, nullptr, ERROR_INVALID_HANDLE, 0, buffer,
                           sizeof(buffer), nullptr),
            0u);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
  SetLastError(kSentinelError);
  EXPECT_EQ(FormatMessageA(kSystemFlags | FORMAT_MESSAGE_FROM_STRING, "text", 0, 0, buffer,
                           sizeof(buffer), nullptr),
            0u);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
  SetLastError(kSentinelError);
  EXPECT_EQ(FormatMessageA(kSystemFlags, nullptr, ERROR_INVALID_HANDLE, 0, nullptr, 256, nullptr),
            0u);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_INVALID_PARAMETER));
}

// Tests that a language with no text here (German) fails with
// ERROR_RESOURCE_LANG_NOT_FOUND while US English succeeds.
TEST(FormatMessageTest, OnlyNeutralAndEnglishLanguagesHaveText) {
  char buffer[256];
  constexpr DWORD kLangGerman = 0x07;
  EXPECT_EQ(
      FormatMessageA(kSystemFlags, nullptr, ERROR_INVALID_HANDLE,
                     MAKELANGID(kLangGerman, SUBLANG_DEFAULT), buffer, sizeof(buffer), nullptr),
      0u);
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_RESOURCE_LANG_NOT_FOUND));
  EXPECT_NE(
      FormatMessageA(kSystemFlags, nullptr, ERROR_INVALID_HANDLE,
                     MAKELANGID(LANG_ENGLISH, SUBLANG_ENGLISH_US), buffer, sizeof(buffer), nullptr),
      0u);
}

// Tests that a successful FormatMessage leaves the last error alone.
TEST(FormatMessageTest, SuccessLeavesLastErrorUnchanged) {
  char buffer[256];
  SetLastError(kSentinelError);
  ASSERT_NE(
      FormatMessageA(kSystemFlags, nullptr, ERROR_SUCCESS, 0, buffer, sizeof(buffer), nullptr), 0u);
  EXPECT_STREQ(buffer, "The operation completed successfully.\r\n");
  EXPECT_EQ(GetLastError(), kSentinelError);
}

// Tests that LocalFree(NULL) does nothing and returns NULL.
TEST(FormatMessageTest, LocalFreeOfNullReturnsNull) { EXPECT_EQ(LocalFree(nullptr), nullptr); }

}  // namespace
}  // namespace apartments
