#include "common/json_limits.h"

#include "common/error.h"

namespace baton {

void CheckJsonDepth(std::string_view text, int max_depth, const std::string& what) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character can be neither a quote nor a bracket
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) {
          throw Error(ErrorCode::kInvalidArgument, what + ": JSON nested deeper than " + std::to_string(max_depth) +
                                                       " levels (at byte " + std::to_string(i) + ")");
        }
        break;
      case ']':
      case '}':
        // Unbalanced closers are the parser's to report; never go negative,
        // so "]]]][[[[" cannot buy extra depth.
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
}

}  // namespace baton
