#include "common/json_util.h"

#include "common/digest.h"
#include "common/error.h"

namespace baton {

std::string CanonicalJson(const Json& value) { return value.dump(); }

std::string JsonDigest(const Json& value) {
  return Sha256Hex(CanonicalJson(value));
}

Json ParseJson(const std::string& text, const std::string& what) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw Error(ErrorCode::kInvalidArgument,
                what + ": not valid JSON at byte " + std::to_string(e.byte) +
                    ": " + e.what());
  }
}

std::string PointerAppend(const std::string& pointer, const std::string& token) {
  std::string escaped;
  for (char c : token) {
    if (c == '~') {
      escaped += "~0";
    } else if (c == '/') {
      escaped += "~1";
    } else {
      escaped += c;
    }
  }
  return pointer + "/" + escaped;
}

}  // namespace baton
