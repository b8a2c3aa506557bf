// The sample in-process server: two classes with different threading models,
// exported with apartments/inproc_server.h. Built as a shared library that
// does not link the apartments runtime (the loading process has it).
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

#include "apartments/inproc_server.h"
#include "sample_interfaces.h"

namespace sample {
namespace {

// One implementation, two classes (a class's threading model is its
// registration's, not its code's; the code must be safe for it).
template <int kTag>
class Where final : public apartments::InprocObject<Where<kTag>, IWhere> {
 public:
  STDMETHODIMP WhereAmI(DWORD* thread_id, ULONGLONG* object_address) override {
    if (thread_id == nullptr || object_address == nullptr) return E_POINTER;
    // The runtime's thread ids are Linux tids; the server calls no runtime
    // function (it does not link the runtime).
    *thread_id = static_cast<DWORD>(::syscall(SYS_gettid));
    *object_address = reinterpret_cast<std::uintptr_t>(static_cast<IWhere*>(this));
    return S_OK;
  }
  STDMETHODIMP Add(int a, int b, int* sum) override {
    if (sum == nullptr) return E_POINTER;
    *sum = a + b;
    return S_OK;
  }
};

using ApartmentWhere = Where<1>;
using FreeWhere = Where<2>;

}  // namespace
}  // namespace sample

APARTMENTS_INPROC_SERVER_BEGIN
  APARTMENTS_INPROC_CLASS(sample::CLSID_SampleApartment, sample::ApartmentWhere, "Apartment")
  APARTMENTS_INPROC_CLASS(sample::CLSID_SampleFree, sample::FreeWhere, "Free")
APARTMENTS_INPROC_SERVER_END
