#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

#include <gtest/gtest.h>

#include "common/error.h"
#include "tests/support/temp_dir.h"

namespace baton::store::testing {

using baton::testing::TempDir;

// The code of the baton::Error that `fn` throws; a test failure if it
// throws none.
template <typename Fn>
ErrorCode CodeOf(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "expected a baton::Error";
  return ErrorCode::kInternal;
}

}  // namespace baton::store::testing
