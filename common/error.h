#pragma once

#include <stdexcept>
#include <string>
#include <vector>

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
  kUnauthenticated,  // credentials are missing or wrong
  kPermissionDenied,  // the caller may not do or reach this (e.g. files outside the data roots)
  kResourceExhausted,  // the store's disk or quota is full; free space, then retry (or `baton resume RUN`)
  kAborted,          // the caller's work was superseded (e.g. a task attempt whose lease expired); drop it
};

const char* ErrorCodeName(ErrorCode code);

// One problem inside a document: where (JSON pointer) and what.
struct ErrorDetail {
  std::string pointer;
  std::string message;
};

// The one error type used across Baton. `pointer` is a JSON pointer into the
// user's input (e.g. "/stages/tune/budget") when the error is about a document.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message, std::string pointer = "")
      : std::runtime_error(message), code_(code), pointer_(std::move(pointer)) {}

  // An error that lists every problem found (e.g. all of a pipeline's
  // validation failures); what() summarises them.
  Error(ErrorCode code, const std::string& message,
        std::vector<ErrorDetail> details)
      : std::runtime_error(message), code_(code), details_(std::move(details)) {}

  ErrorCode code() const { return code_; }
  const std::string& pointer() const { return pointer_; }
  const std::vector<ErrorDetail>& details() const { return details_; }

 private:
  ErrorCode code_;
  std::string pointer_;
  std::vector<ErrorDetail> details_;
};

}  // namespace baton
