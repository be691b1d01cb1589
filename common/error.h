#pragma once

#include <stdexcept>
#include <string>

namespace baton {

// What kind of failure an Error is. Each maps to one HTTP status and one exit
// code, in exactly one place each (api/).
enum class ErrorCode {
  kInvalidArgument,  // the caller's input is wrong; fix it and retry
  kNotFound,         // the named object does not exist
  kConflict,         // the object exists in a state that forbids the call
  kUnavailable,      // a resource is busy or unreachable; retrying may help
  kCorrupt,          // stored bytes do not match their digest or format
  kInternal,         // a bug or an unexpected library failure
};

const char* ErrorCodeName(ErrorCode code);

// The one error type used across Baton. `pointer` is a JSON pointer into the
// user's input (e.g. "/stages/tune/budget") when the error is about a document.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message, std::string pointer = "")
      : std::runtime_error(message), code_(code), pointer_(std::move(pointer)) {}

  ErrorCode code() const { return code_; }
  const std::string& pointer() const { return pointer_; }

 private:
  ErrorCode code_;
  std::string pointer_;
};

}  // namespace baton
