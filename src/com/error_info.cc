// SetErrorInfo/GetErrorInfo/CreateErrorInfo, the error object, and the C++
// accessors of apartments/error_info.h.
#include "com/error_info.h"

#include <mutex>
#include <new>
#include <string>
#include <utility>

#include "apartments/com_object.h"
#include "apartments/error_info.h"
#include "base/guarded.h"
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
      : fields_(Fields{.hr = hr,
                       .description = std::move(description),
                       .source = std::move(source)}) {}

  // IErrorInfo
  STDMETHODIMP GetGUID(GUID* pGUID) override {
    if (pGUID == nullptr) return E_INVALIDARG;
    *pGUID = fields_.Lock()->guid;
    return S_OK;
  }
  STDMETHODIMP GetSource(BSTR* pBstrSource) override {
    return GetString(&Fields::source, pBstrSource);
  }
  STDMETHODIMP GetDescription(BSTR* pBstrDescription) override {
    return GetString(&Fields::description, pBstrDescription);
  }
  STDMETHODIMP GetHelpFile(BSTR* pBstrHelpFile) override {
    return GetString(&Fields::help_file, pBstrHelpFile);
  }
  STDMETHODIMP GetHelpContext(DWORD* pdwHelpContext) override {
    if (pdwHelpContext == nullptr) return E_INVALIDARG;
    *pdwHelpContext = fields_.Lock()->help_context;
    return S_OK;
  }

  // ICreateErrorInfo
  STDMETHODIMP SetGUID(REFGUID rguid) override {
    fields_.Lock()->guid = rguid;
    return S_OK;
  }
  STDMETHODIMP SetSource(LPOLESTR szSource) override {
    return SetString(&Fields::source, szSource);
  }
  STDMETHODIMP SetDescription(LPOLESTR szDescription) override {
    return SetString(&Fields::description, szDescription);
  }
  STDMETHODIMP SetHelpFile(LPOLESTR szHelpFile) override {
    return SetString(&Fields::help_file, szHelpFile);
  }
  STDMETHODIMP SetHelpContext(DWORD dwHelpContext) override {
    fields_.Lock()->help_context = dwHelpContext;
    return S_OK;
  }

  HRESULT hr() { return fields_.Lock()->hr; }

 private:
  struct Fields {
    HRESULT hr = S_OK;  // Set only by the runtime (SetCallErrorInfo).
    GUID guid = GUID_NULL;
    std::wstring description{};
    std::wstring source{};
    std::wstring help_file{};
    DWORD help_context = 0;
  };

  ~ErrorInfo() override = default;

  // A null string reads back as a null BSTR (an empty string), as Windows.
  HRESULT GetString(std::wstring Fields::*field, BSTR* out) {
    if (out == nullptr) return E_INVALIDARG;
    auto fields = fields_.Lock();
    const std::wstring& text = (*fields).*field;
    if (text.empty()) {
      *out = nullptr;
      return S_OK;
    }
    *out = SysAllocStringLen(text.data(), static_cast<UINT>(text.size()));
    return *out == nullptr ? E_OUTOFMEMORY : S_OK;
  }

  HRESULT SetString(std::wstring Fields::*field, LPOLESTR value) {
    std::wstring copy = value == nullptr ? std::wstring() : std::wstring(value);
    (*fields_.Lock()).*field = std::move(copy);
    return S_OK;
  }

  Guarded<Fields> fields_;
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
