// Test-only access to apartments::Apartment's insides, for the library's own
// tests (not part of the API: the public header only names this class as a
// friend).
#ifndef APARTMENTS_SRC_COM_APARTMENT_TEST_PEER_H_
#define APARTMENTS_SRC_COM_APARTMENT_TEST_PEER_H_

#include "apartments/apartment.h"

namespace apartments::internal {

class ApartmentTestPeer {
 public:
  // Whether ~Apartment has asked the apartment's loop to stop (step 1 of its
  // shutdown). Any thread.
  static bool StopRequested(const Apartment& apartment) noexcept {
    return apartment.StopRequestedForTesting();
  }
};

}  // namespace apartments::internal

#endif  // APARTMENTS_SRC_COM_APARTMENT_TEST_PEER_H_
