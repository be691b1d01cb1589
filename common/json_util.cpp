#include "common/json_util.h"

#include <cctype>
#include <set>
#include <vector>

#include "common/digest.h"
#include "common/error.h"
#include "common/json_limits.h"

namespace baton {
namespace {

// The open arrays and objects of a document being parsed: enough to name
// where a duplicate key is and to find it.
class OpenContainers {
 public:
  explicit OpenContainers(const std::string& what) : what_(what) {}

  // Throws Error(kInvalidArgument) on a key seen before in the same object.
  bool operator()(int /*depth*/, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        frames_.push_back({/*object=*/true, {}, {}, 0});
        break;
      case Json::parse_event_t::array_start:
        frames_.push_back({/*object=*/false, {}, {}, 0});
        break;
      case Json::parse_event_t::key: {
        Frame& f = frames_.back();
        f.key = parsed.get<std::string>();
        if (!f.keys.insert(f.key).second) {
          const std::string at = Pointer();
          throw Error(ErrorCode::kInvalidArgument,
                      what_ + ": duplicate key " + Json(f.key).dump() + " in the object at " +
                          (at.empty() ? "/" : at) + " (each key may appear once)",
                      PointerAppend(at, f.key));
        }
        break;
      }
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        frames_.pop_back();
        NextElement();
        break;
      case Json::parse_event_t::value:
        NextElement();
        break;
    }
    return true;
  }

 private:
  struct Frame {
    bool object;
    std::set<std::string> keys;  // objects: the keys so far
    std::string key;             // objects: the key of the member being read
    size_t index;                // arrays: the index of the element being read
  };

  void NextElement() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
  }

  // The pointer of the innermost open container.
  std::string Pointer() const {
    std::string p;
    for (size_t i = 0; i + 1 < frames_.size(); ++i) {
      p = PointerAppend(p, frames_[i].object ? frames_[i].key : std::to_string(frames_[i].index));
    }
    return p;
  }

  const std::string& what_;
  std::vector<Frame> frames_;
};

// `text` with every byte that is not UTF-8 replaced by U+FFFD. The parser
// quotes what it read last, which may be such bytes; Baton's messages must
// stay valid text (they are sent as JSON).
std::string ValidText(const std::string& text) {
  return Json::parse(Json(text).dump(-1, ' ', false, Json::error_handler_t::replace)).get<std::string>();
}

// The parser's message without its "[json.exception.NAME.N] " prefix.
std::string Plain(const char* message) {
  std::string s = ValidText(message);
  if (s.rfind("[json.exception.", 0) == 0) {
    const auto end = s.find("] ");
    if (end != std::string::npos) s = s.substr(end + 2);
  }
  return s;
}

// True when the token that ends at `byte` (1-based, as the parser counts)
// spells NaN or Infinity, which JSON does not have.
bool IsNonFiniteLiteral(const std::string& text, size_t byte) {
  size_t end = std::min(byte, text.size());
  size_t begin = end;
  while (begin > 0 && (std::isalnum(static_cast<unsigned char>(text[begin - 1])) || text[begin - 1] == '-' ||
                       text[begin - 1] == '+')) {
    --begin;
  }
  while (end < text.size() && std::isalpha(static_cast<unsigned char>(text[end]))) ++end;
  std::string token;
  for (size_t i = begin; i < end; ++i) {
    if (text[i] != '-' && text[i] != '+') token += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  }
  return token.rfind("nan", 0) == 0 || token.rfind("inf", 0) == 0;
}

}  // namespace

std::string CanonicalJson(const Json& value) { return value.dump(); }

std::string JsonDigest(const Json& value) {
  return Sha256Hex(CanonicalJson(value));
}

Json ParseJson(const std::string& text, const std::string& what) {
  CheckJsonDepth(text, kMaxJsonDepth, what);
  OpenContainers containers(what);
  try {
    return Json::parse(text, std::ref(containers));
  } catch (const Json::parse_error& e) {
    std::string message = what + ": not valid JSON at byte " + std::to_string(e.byte) + ": " + ValidText(e.what());
    if (IsNonFiniteLiteral(text, e.byte)) message += " (JSON has no NaN or Infinity; write a finite number)";
    throw Error(ErrorCode::kInvalidArgument, message);
  } catch (const Json::out_of_range& e) {
    // 406: a number literal beyond the range of a double, e.g. 1e309.
    throw Error(ErrorCode::kInvalidArgument, what + ": " + Plain(e.what()) + " (out of range of a double)");
  } catch (const Json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, what + ": not valid JSON: " + Plain(e.what()));
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
