#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace baton {

using Json = nlohmann::json;

// The canonical text of a JSON value: keys sorted (nlohmann keeps objects
// sorted), no insignificant white space, numbers in shortest round-trip form.
// Equal values give equal text, so its digest identifies the value.
std::string CanonicalJson(const Json& value);

// SHA-256 hex of CanonicalJson(value).
std::string JsonDigest(const Json& value);

// Parses `text`; on failure throws Error(kInvalidArgument) naming `what`
// (e.g. a file name) and the byte offset. Also refused, with the same error:
// nesting deeper than kMaxJsonDepth (checked before parsing, so deep input
// cannot exhaust the stack), a key twice in one object (the pointer names
// it), NaN/Infinity and numbers beyond a double's range.
Json ParseJson(const std::string& text, const std::string& what);

// Appends one reference token to a JSON pointer, escaping '~' and '/'.
std::string PointerAppend(const std::string& pointer, const std::string& token);

}  // namespace baton
