#pragma once

#include <string>
#include <string_view>

namespace baton {

// The deepest nesting of arrays and objects Baton accepts in a JSON document
// it is handed (pipelines, request bodies). Real documents stay below ~10;
// the limit keeps a hostile body from building a deep DOM whose recursive
// destruction or traversal would exhaust the stack.
constexpr int kMaxJsonDepth = 64;

// Throws Error(ErrorCode::kInvalidArgument,
//   "<what>: JSON nested deeper than <max_depth> levels (at byte <offset>)")
// when `text` has more than `max_depth` arrays/objects open at once; <offset>
// is the 0-based byte of the bracket that went one level too deep. Call it
// before parsing: it is one linear pass that allocates nothing. It skips the
// contents of strings (honouring \" and \\ escapes) and does not otherwise
// validate the JSON: the parser does that afterwards. Thread-safe.
void CheckJsonDepth(std::string_view text, int max_depth, const std::string& what);

}  // namespace baton
