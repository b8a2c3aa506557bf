// apartments/wire.h
//
// Arguments that cross a process, serialized by type: the proxy recipe's
// methods (apartments/proxy.h) go over the wire as a byte string plus a list
// of interface pointers, written and read by the rules below. The transport
// (src/remote, docs/out_of_process.md) turns the interface pointers into
// Cap'n Proto capabilities and back; this header knows nothing of it.
//
// What crosses, per parameter type of a method (IDL's direction in brackets):
//   integers, floating point, enums, BOOL, GUID/IID/CLSID, and trivially
//   copyable structs, by value or by const reference    [in]   their bytes
//   const T*  (T one of those)                         [in]   null or *p
//   T*        (T one of those, not const)              [in, out] null or *p
//                                                       both ways
//   const WCHAR* (LPCWSTR, LPCOLESTR)                   [in]   the string
//   WCHAR*    (LPWSTR, BSTR)                            [in]   the string;
//             the callee gets a BSTR (SysAllocString), freed after the call
//   WCHAR**   (BSTR*)                                   [out]  the callee's
//             BSTR; the caller gets its own copy (SysAllocString), which it
//             frees with SysFreeString. *pp starts null on the callee's side
//   I*        (an interface with an IID)                [in]   a capability
//   I**                                                 [out]  a capability
// Anything else (void*, pointers to pointers other than I** and WCHAR**,
// pointers inside structs, arrays) cannot cross: declaring the interface for
// other processes (APARTMENTS_REMOTE_INTERFACE) is a compile-time error that
// names the method's parameter type. A struct's pointer members are not
// detected (C++ cannot see them): such a struct crosses as its bits, which
// mean nothing in the other process; do not declare it for other processes.
// Strings: a BSTR's embedded NULs and its length prefix do not cross (WCHAR*
// and BSTR are one C++ type; the string is read up to its first NUL).
//
// Malformed data (too short, too long, a bad interface index) makes the
// reader fail; the call then fails with RPC_X_BAD_STUB_DATA, never reads out
// of bounds.
#ifndef APARTMENTS_WIRE_H_
#define APARTMENTS_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <cwchar>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "apartments/win32_com.h"

#ifndef RPC_X_BAD_STUB_DATA
#define RPC_X_BAD_STUB_DATA _HRESULT_TYPEDEF_(0x800706F7)
#endif

namespace apartments::internal {

// One interface pointer of a wire message: a reference owned by the message
// (released by its destructor, on the thread that destroys it), and the IID
// it was written as.
struct WireInterface {
  IUnknown* object = nullptr;
  IID iid{};
};

// The arguments of one direction of one call. Move-only; owns the
// references in `interfaces`.
class WireMessage {
 public:
  WireMessage() = default;
  WireMessage(WireMessage&& other) noexcept
      : bytes(std::move(other.bytes)), interfaces(std::move(other.interfaces)) {
    other.interfaces.clear();
  }
  WireMessage& operator=(WireMessage&& other) noexcept {
    if (this != &other) {
      Clear();
      bytes = std::move(other.bytes);
      interfaces = std::move(other.interfaces);
      other.interfaces.clear();
    }
    return *this;
  }
  WireMessage(const WireMessage&) = delete;
  WireMessage& operator=(const WireMessage&) = delete;
  // noexcept(false): releasing a proxy may wait for another apartment.
  ~WireMessage() noexcept(false) { Clear(); }

  // Releases the interfaces and empties the message.
  void Clear() {
    std::vector<WireInterface> owned = std::move(interfaces);
    interfaces.clear();
    bytes.clear();
    for (WireInterface& itf : owned) {
      if (itf.object != nullptr) itf.object->Release();
    }
  }

  std::vector<unsigned char> bytes;
  std::vector<WireInterface> interfaces;
};

class WireWriter {
 public:
  explicit WireWriter(WireMessage& message) noexcept : message_(message) {}

  void Bytes(const void* data, std::size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    message_.bytes.insert(message_.bytes.end(), p, p + size);
  }
  template <typename T>
  void Value(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    Bytes(&value, sizeof value);
  }
  // Null and the empty string differ.
  void String(const WCHAR* text) {
    Value<std::uint8_t>(text != nullptr);
    if (text == nullptr) return;
    const std::uint32_t length = static_cast<std::uint32_t>(std::wcslen(text));
    Value(length);
    Bytes(text, length * sizeof(WCHAR));
  }
  // AddRefs `object` (may be null) into the message.
  void Interface(IUnknown* object, REFIID iid) {
    Value<std::uint8_t>(object != nullptr);
    if (object == nullptr) return;
    Value(static_cast<std::uint32_t>(message_.interfaces.size()));
    object->AddRef();
    message_.interfaces.push_back(WireInterface{object, iid});
  }

 private:
  WireMessage& message_;
};

class WireReader {
 public:
  explicit WireReader(const WireMessage& message) noexcept : message_(message) {}

  [[nodiscard]] bool Bytes(void* data, std::size_t size) noexcept {
    if (!ok_ || message_.bytes.size() - offset_ < size) return ok_ = false;
    if (size != 0) std::memcpy(data, message_.bytes.data() + offset_, size);
    offset_ += size;
    return true;
  }
  template <typename T>
  [[nodiscard]] bool Value(T* value) noexcept {
    static_assert(std::is_trivially_copyable_v<T>);
    return Bytes(value, sizeof *value);
  }
  // A string as String() wrote it: *text is a new BSTR, or null for null.
  [[nodiscard]] bool String(BSTR* text) {
    *text = nullptr;
    std::uint8_t present = 0;
    if (!Value(&present) || present > 1) return ok_ = false;
    if (present == 0) return true;
    std::uint32_t length = 0;
    if (!Value(&length)) return false;
    if ((message_.bytes.size() - offset_) / sizeof(WCHAR) < length) return ok_ = false;
    *text = SysAllocStringLen(nullptr, length);
    if (*text == nullptr) return ok_ = false;
    if (!Bytes(*text, length * sizeof(WCHAR))) {
      SysFreeString(*text);
      *text = nullptr;
      return false;
    }
    // A NUL inside cuts the string, as the reader of a WCHAR* would.
    return true;
  }
  // An interface as Interface() wrote it, queried for `iid`: *ppv is an
  // owned reference, or null for null. Returns the QueryInterface failure
  // (E_NOINTERFACE, or a call failure for a remote object), or
  // RPC_X_BAD_STUB_DATA when the data is malformed.
  [[nodiscard]] HRESULT Interface(REFIID iid, void** ppv) {
    *ppv = nullptr;
    std::uint8_t present = 0;
    if (!Value(&present) || present > 1) {
      ok_ = false;
      return RPC_X_BAD_STUB_DATA;
    }
    if (present == 0) return S_OK;
    std::uint32_t index = 0;
    if (!Value(&index) || index >= message_.interfaces.size() ||
        message_.interfaces[index].object == nullptr) {
      ok_ = false;
      return RPC_X_BAD_STUB_DATA;
    }
    return message_.interfaces[index].object->QueryInterface(iid, ppv);
  }

  bool ok() const noexcept { return ok_; }
  // Whether everything was read (trailing bytes are malformed data).
  bool AtEnd() const noexcept { return ok_ && offset_ == message_.bytes.size(); }

 private:
  const WireMessage& message_;
  std::size_t offset_ = 0;
  bool ok_ = true;
};

// --- How each parameter type crosses ----------------------------------------

template <typename T>
concept WireInterfaceType = ComInterface<T> && std::is_base_of_v<IUnknown, T>;

// Plain data: crosses as its bytes. Not pointers, not interfaces, not
// character types standing for strings.
template <typename T>
concept WirePlain = std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> &&
                    !std::is_member_pointer_v<T> && !std::is_array_v<T> &&
                    !std::is_void_v<T> && !WireInterfaceType<T>;

// The primary template: a type that cannot cross. kSupported is false, so
// APARTMENTS_REMOTE_INTERFACE refuses it at compile time.
template <typename P>
struct WireArg {
  static constexpr bool kSupported = false;
};

// By value, and by const reference (REFIID, const RECT&).
template <typename T>
  requires WirePlain<std::remove_cvref_t<T>> && (!std::is_reference_v<T> || std::is_const_v<std::remove_reference_t<T>>)
struct WireArg<T> {
  using V = std::remove_cvref_t<T>;
  static constexpr bool kSupported = true;
  static void WriteIn(WireWriter& w, const V& value) { w.Value(value); }
  static bool ReadOut(WireReader&, const V&, bool) { return true; }
  class Server {
   public:
    HRESULT Read(WireReader& r) { return r.Value(&value_) ? S_OK : RPC_X_BAD_STUB_DATA; }
    T Value() { return value_; }
    void WriteOut(WireWriter&, bool) {}

   private:
    V value_{};
  };
};

// [in] pointer to plain data.
template <WirePlain T>
struct WireArg<const T*> {
  static constexpr bool kSupported = true;
  static void WriteIn(WireWriter& w, const T* p) {
    w.Value<std::uint8_t>(p != nullptr);
    if (p != nullptr) w.Value(*p);
  }
  static bool ReadOut(WireReader&, const T*, bool) { return true; }
  class Server {
   public:
    HRESULT Read(WireReader& r) {
      std::uint8_t present = 0;
      if (!r.Value(&present) || present > 1) return RPC_X_BAD_STUB_DATA;
      present_ = present != 0;
      if (present_ && !r.Value(&value_)) return RPC_X_BAD_STUB_DATA;
      return S_OK;
    }
    const T* Value() { return present_ ? &value_ : nullptr; }
    void WriteOut(WireWriter&, bool) {}

   private:
    T value_{};
    bool present_ = false;
  };
};

// [in, out] pointer to plain data: *p goes there and comes back (also when
// the call fails: the callee may have written it; COM's [out] data is
// undefined on failure, so either is correct).
template <WirePlain T>
  requires(!std::is_const_v<T>)
struct WireArg<T*> {
  static constexpr bool kSupported = true;
  static void WriteIn(WireWriter& w, T* p) {
    w.Value<std::uint8_t>(p != nullptr);
    if (p != nullptr) w.Value(*p);
  }
  static bool ReadOut(WireReader& r, T* p, bool) {
    if (p == nullptr) return true;
    T value;
    if (!r.Value(&value)) return false;
    *p = value;
    return true;
  }
  class Server {
   public:
    HRESULT Read(WireReader& r) {
      std::uint8_t present = 0;
      if (!r.Value(&present) || present > 1) return RPC_X_BAD_STUB_DATA;
      present_ = present != 0;
      if (present_ && !r.Value(&value_)) return RPC_X_BAD_STUB_DATA;
      return S_OK;
    }
    T* Value() { return present_ ? &value_ : nullptr; }
    void WriteOut(WireWriter& w, bool) {
      if (present_) w.Value(value_);
    }

   private:
    T value_{};
    bool present_ = false;
  };
};

// [in] string (LPCWSTR), and WCHAR* (LPWSTR, BSTR): the callee gets a BSTR.
template <typename S>
struct WireStringIn {
  static constexpr bool kSupported = true;
  static void WriteIn(WireWriter& w, const WCHAR* text) { w.String(text); }
  static bool ReadOut(WireReader&, const WCHAR*, bool) { return true; }
  class Server {
   public:
    Server() = default;
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    ~Server() { SysFreeString(text_); }
    HRESULT Read(WireReader& r) { return r.String(&text_) ? S_OK : RPC_X_BAD_STUB_DATA; }
    S Value() { return text_; }
    void WriteOut(WireWriter&, bool) {}

   private:
    BSTR text_ = nullptr;
  };
};
template <>
struct WireArg<const WCHAR*> : WireStringIn<const WCHAR*> {};
template <>
struct WireArg<WCHAR*> : WireStringIn<WCHAR*> {};

// [out] BSTR.
template <>
struct WireArg<WCHAR**> {
  static constexpr bool kSupported = true;
  static void WriteIn(WireWriter& w, WCHAR** out) {
    if (out != nullptr) *out = nullptr;
    w.Value<std::uint8_t>(out != nullptr);
  }
  static bool ReadOut(WireReader& r, WCHAR** out, bool) {
    if (out == nullptr) return true;
    BSTR text = nullptr;
    if (!r.String(&text)) return false;
    *out = text;
    return true;
  }
  class Server {
   public:
    Server() = default;
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    ~Server() { SysFreeString(text_); }
    HRESULT Read(WireReader& r) {
      std::uint8_t present = 0;
      if (!r.Value(&present) || present > 1) return RPC_X_BAD_STUB_DATA;
      present_ = present != 0;
      return S_OK;
    }
    WCHAR** Value() { return present_ ? &text_ : nullptr; }
    void WriteOut(WireWriter& w, bool) {
      if (present_) w.String(text_);
    }

   private:
    BSTR text_ = nullptr;
    bool present_ = false;
  };
};

// [in] interface pointer.
template <WireInterfaceType T>
struct WireArg<T*> {
  static constexpr bool kSupported = true;
  static void WriteIn(WireWriter& w, T* p) { w.Interface(p, InterfaceId<T>()); }
  static bool ReadOut(WireReader&, T*, bool) { return true; }
  class Server {
   public:
    Server() = default;
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    ~Server() noexcept(false) {
      if (value_ != nullptr) value_->Release();
    }
    HRESULT Read(WireReader& r) {
      return r.Interface(InterfaceId<T>(), reinterpret_cast<void**>(&value_));
    }
    T* Value() { return value_; }
    void WriteOut(WireWriter&, bool) {}

   private:
    T* value_ = nullptr;
  };
};

// [out] interface pointer. The caller's *pp is null unless the call
// succeeded with an object.
template <WireInterfaceType T>
struct WireArg<T**> {
  static constexpr bool kSupported = true;
  static void WriteIn(WireWriter& w, T** out) {
    if (out != nullptr) *out = nullptr;
    w.Value<std::uint8_t>(out != nullptr);
  }
  static bool ReadOut(WireReader& r, T** out, bool) {
    if (out == nullptr) return true;
    return SUCCEEDED(r.Interface(InterfaceId<T>(), reinterpret_cast<void**>(out)));
  }
  class Server {
   public:
    Server() = default;
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    ~Server() noexcept(false) {
      if (value_ != nullptr) value_->Release();
    }
    HRESULT Read(WireReader& r) {
      std::uint8_t present = 0;
      if (!r.Value(&present) || present > 1) return RPC_X_BAD_STUB_DATA;
      present_ = present != 0;
      return S_OK;
    }
    T** Value() { return present_ ? &value_ : nullptr; }
    void WriteOut(WireWriter& w, bool succeeded) {
      if (present_) w.Interface(succeeded ? value_ : nullptr, InterfaceId<T>());
    }

   private:
    T* value_ = nullptr;
    bool present_ = false;
  };
};

// Names the offending type in the compiler's message.
template <typename P>
constexpr bool CheckWireArg() {
  static_assert(WireArg<P>::kSupported,
                "this parameter type cannot cross a process (apartments/wire.h lists what can): "
                "the interface was declared for other processes with APARTMENTS_REMOTE_INTERFACE");
  return WireArg<P>::kSupported;
}

// --- The two ends of one call ------------------------------------------------

// The client's half: writes the [in] parts of `args`.
template <typename... Params, typename... Args>
void WriteInArguments(WireMessage& message, Args&&... args) {
  WireWriter w(message);
  (WireArg<Params>::WriteIn(w, static_cast<Params>(args)), ...);
}

// The client's half: reads the [out] parts back into `args` (the caller's
// pointers). False on malformed data.
template <typename... Params, typename... Args>
bool ReadOutArguments(const WireMessage& message, [[maybe_unused]] bool succeeded,
                      Args&&... args) {
  WireReader r(message);
  bool ok = true;
  ((ok = ok && WireArg<Params>::ReadOut(r, static_cast<Params>(args), succeeded)), ...);
  return ok && r.AtEnd();
}

// The server's half: reads the [in] arguments, calls `method` on `object`,
// writes the [out] arguments into `out`. Returns the method's HRESULT, or
// RPC_X_BAD_STUB_DATA for malformed data (the method is then not called), or
// an [in] interface's QueryInterface failure.
template <typename I, typename C, typename... Params>
HRESULT InvokeFromWire(I* object, HRESULT (STDMETHODCALLTYPE C::*method)(Params...),
                       const WireMessage& in, WireMessage* out) {
  static_assert((CheckWireArg<Params>() && ...));
  static_assert(std::is_base_of_v<C, I>);
  std::tuple<typename WireArg<Params>::Server...> servers;
  WireReader r(in);
  HRESULT hr = std::apply(
      [&](auto&... s) {
        HRESULT read = S_OK;
        ((read = SUCCEEDED(read) ? s.Read(r) : read), ...);
        return read;
      },
      servers);
  if (SUCCEEDED(hr) && !r.AtEnd()) hr = RPC_X_BAD_STUB_DATA;
  if (FAILED(hr)) return hr;
  hr = std::apply([&](auto&... s) { return (object->*method)(s.Value()...); }, servers);
  WireWriter w(*out);
  std::apply([&](auto&... s) { (s.WriteOut(w, SUCCEEDED(hr)), ...); }, servers);
  return hr;
}

// The server's entry for one method: `M` a pointer to a method of I (or of a
// base of I).
template <typename I, auto M>
HRESULT WireStub(void* object, const WireMessage& in, WireMessage* out) {
  return InvokeFromWire(static_cast<I*>(object), M, in, out);
}

using WireStubFunction = HRESULT (*)(void* object, const WireMessage& in, WireMessage* out);

}  // namespace apartments::internal

#endif  // APARTMENTS_WIRE_H_
