// SetErrorInfo/GetErrorInfo/CreateErrorInfo, the error object, and the C++
// accessors of apartments/error_info.h.
#include "com/error_info.h"

#include <mutex>
#include <new>
#include <string>
#include <utility>

#include "apartments/com_object.h"
#include "apartments/error_info.h"
#include "base/thread_state.h"
#include "com/com_thread.h"

namespace apartments::internal {
namespace {

// The generic error object. Its fields may be set and read from different
// threads (it can be handed around), so they are guarded by a mutex.
class ErrorInfo final : public ComObject<ErrorInfo, IErrorInfo, ICreateErrorInfo> {
 public:
  ErrorInfo() = default;
  ErrorInfo(HRESULT hr, std::wstring description, std::wstring source)
      : hr_(hr), description_(std::move(description)), source_(std::move(source)) {}

  // IErrorInfo
  STDMETHODIMP GetGUID(GUID* pGUID) override {
    if (pGUID == nullptr) return E_INVALIDARG;
    std::lock_guard lock(mu_);
    *pGUID = guid_;
    return S_OK;
  }
  STDMETHODIMP GetSource(BSTR* pBstrSource) override { return GetString(source_, pBstrSource); }
  STDMETHODIMP GetDescription(BSTR* pBstrDescription) override {
    return GetString(description_, pBstrDescription);
  }
  STDMETHODIMP GetHelpFile(BSTR* pBstrHelpFile) override {
    return GetString(help_file_, pBstrHelpFile);
  }
  STDMETHODIMP GetHelpContext(DWORD* pdwHelpContext) override {
    if (pdwHelpContext == nullptr) return E_INVALIDARG;
    std::lock_guard lock(mu_);
    *pdwHelpContext = help_context_;
    return S_OK;
  }

  // ICreateErrorInfo
  STDMETHODIMP SetGUID(REFGUID rguid) override {
    std::lock_guard lock(mu_);
    guid_ = rguid;
    return S_OK;
  }
  STDMETHODIMP SetSource(LPOLESTR szSource) override { return SetString(source_, szSource); }
  STDMETHODIMP SetDescription(LPOLESTR szDescription) override {
    return SetString(description_, szDescription);
  }
  STDMETHODIMP SetHelpFile(LPOLESTR szHelpFile) override {
    return SetString(help_file_, szHelpFile);
  }
  STDMETHODIMP SetHelpContext(DWORD dwHelpContext) override {
    std::lock_guard lock(mu_);
    help_context_ = dwHelpContext;
    return S_OK;
  }

  HRESULT hr() const {
    std::lock_guard lock(mu_);
    return hr_;
  }

 private:
  ~ErrorInfo() override = default;

  // A null string reads back as a null BSTR (an empty string), as Windows.
  HRESULT GetString(const std::wstring& field, BSTR* out) {
    if (out == nullptr) return E_INVALIDARG;
    std::lock_guard lock(mu_);
    if (field.empty()) {
      *out = nullptr;
      return S_OK;
    }
    *out = SysAllocStringLen(field.data(), static_cast<UINT>(field.size()));
    return *out == nullptr ? E_OUTOFMEMORY : S_OK;
  }

  HRESULT SetString(std::wstring& field, LPOLESTR value) {
    std::wstring copy = value == nullptr ? std::wstring() : std::wstring(value);
    std::lock_guard lock(mu_);
    field = std::move(copy);
    return S_OK;
  }

  mutable std::mutex mu_;
  HRESULT hr_ = S_OK;  // Set only by the runtime (SetCallErrorInfo).
  GUID guid_ = GUID_NULL;
  std::wstring description_;
  std::wstring source_;
  std::wstring help_file_;
  DWORD help_context_ = 0;
};

// Installs `info` (taking its reference) and releases the previous object
// after the slot is consistent again, since that Release may re-enter.
void InstallErrorInfo(IErrorInfo* info) {
  if (IErrorInfo* old = ExchangeThreadErrorInfo(info)) old->Release();
}

// Reads a BSTR field of the calling thread's error info without clearing it.
template <typename Getter>
std::string ReadThreadErrorString(Getter getter) {
  ComThreadData* data = ComThreadDataIfAny();
  if (data == nullptr || data->error_info == nullptr) return std::string();
  // Hold a reference while calling out: the getter is user code for a
  // user-supplied object and might replace the slot.
  IErrorInfo* info = data->error_info;
  info->AddRef();
  BSTR text = nullptr;
  std::string result;
  if (SUCCEEDED((info->*getter)(&text)) && text != nullptr) {
    result = WideToUtf8(std::wstring(text, SysStringLen(text)));
  }
  SysFreeString(text);
  info->Release();
  return result;
}

}  // namespace

void SetCallErrorInfo(HRESULT hr, std::string_view description, std::string_view source) {
  ErrorInfo* info = MakeComObject<ErrorInfo>(hr, Utf8ToWide(std::string(description)),
                                             Utf8ToWide(std::string(source)));
  InstallErrorInfo(info);  // Null when out of memory: clears the slot.
}

void ClearCallErrorInfo() { InstallErrorInfo(nullptr); }

}  // namespace apartments::internal

namespace apartments {

std::string LastErrorDescription() {
  return internal::ReadThreadErrorString(&IErrorInfo::GetDescription);
}

std::string LastErrorSource() { return internal::ReadThreadErrorString(&IErrorInfo::GetSource); }

HRESULT LastErrorHResult() {
  internal::ComThreadData* data = internal::ComThreadDataIfAny();
  if (data == nullptr || data->error_info == nullptr) return S_OK;
  // Only the runtime's own objects carry an HRESULT.
  auto* ours = dynamic_cast<internal::ErrorInfo*>(data->error_info);
  return ours == nullptr ? S_OK : ours->hr();
}

}  // namespace apartments

extern "C" {

HRESULT WINAPI SetErrorInfo(DWORD dwReserved, IErrorInfo* perrinfo) {
  if (dwReserved != 0) return E_INVALIDARG;
  if (perrinfo != nullptr) perrinfo->AddRef();
  apartments::internal::InstallErrorInfo(perrinfo);
  return S_OK;
}

HRESULT WINAPI GetErrorInfo(DWORD dwReserved, IErrorInfo** pperrinfo) {
  if (dwReserved != 0 || pperrinfo == nullptr) return E_INVALIDARG;
  // The slot's reference moves to the caller.
  *pperrinfo = apartments::internal::ExchangeThreadErrorInfo(nullptr);
  return *pperrinfo == nullptr ? S_FALSE : S_OK;
}

HRESULT WINAPI CreateErrorInfo(ICreateErrorInfo** pperrinfo) {
  if (pperrinfo == nullptr) return E_INVALIDARG;
  auto* info = apartments::MakeComObject<apartments::internal::ErrorInfo>();
  *pperrinfo = info;
  return info == nullptr ? E_OUTOFMEMORY : S_OK;
}

}  // extern "C"
