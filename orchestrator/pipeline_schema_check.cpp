#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "common/json_limits.h"
#include "orchestrator/internal/pipeline_checks.h"
#include "orchestrator/pipeline_spec.h"

namespace baton::orchestrator {
namespace spec_detail {
namespace {

// The schema file is one document for editors and other tools. Validation
// here uses it in two steps, because valijson loses the inner messages of a
// failed if/then: the top level with each stage checked only for a known
// "type", then each stage against its type's definition.
struct CompiledSchemas {
  valijson::Schema top;
  std::map<std::string, valijson::Schema> by_type;
  Json top_json;                              // what `top` was compiled from
  std::map<std::string, Json> by_type_json;   // {"$ref": "#/definitions/<type>_stage"}
  Json definitions;                           // the full schema's
};

void Compile(const Json& doc, valijson::Schema* schema) {
  valijson::SchemaParser parser;
  valijson::adapters::NlohmannJsonAdapter adapter(doc);
  parser.populateSchema(adapter, *schema);
}

const CompiledSchemas& Schemas() {
  static const CompiledSchemas* schemas = [] {
    auto* s = new CompiledSchemas();
    const Json full = Json::parse(PipelineSchemaText());
    Json top = full;
    top["definitions"]["stage"] = {{"type", "object"},
                                   {"required", {"type"}},
                                   {"properties", {{"type", full["definitions"]["stage"]["properties"]["type"]}}}};
    Compile(top, &s->top);
    s->top_json = top;
    s->definitions = full["definitions"];
    for (const auto& type : full["definitions"]["stage"]["properties"]["type"]["enum"]) {
      const std::string t = type.get<std::string>();
      Json one = {{"$ref", "#/definitions/" + t + "_stage"}, {"definitions", full["definitions"]}};
      Compile(one, &s->by_type[t]);
      s->by_type_json[t] = {{"$ref", "#/definitions/" + t + "_stage"}};
    }
    return s;
  }();
  return *schemas;
}

// valijson names a location as {"<root>", "[stages]", "[tune]", "[0]"}.
std::string ContextToPointer(const std::vector<std::string>& context) {
  std::string pointer;
  for (const auto& part : context) {
    if (part == "<root>") continue;
    std::string token = part;
    if (token.size() >= 2 && token.front() == '[' && token.back() == ']') {
      token = token.substr(1, token.size() - 2);
    }
    pointer = PointerAppend(pointer, token);
  }
  return pointer;
}

// ---- valijson's messages in plain words ----

// The schema nodes that apply to a value reached by `tokens` from `root`
// (following $ref, allOf/anyOf/oneOf and if/then/else, so a property named
// in any branch counts).
void Collect(const Json& node, const Json& defs, std::vector<const Json*>& out, int depth = 0) {
  if (!node.is_object() || depth > 16) return;
  if (node.contains("$ref") && node["$ref"].is_string()) {
    const std::string ref = node["$ref"].get<std::string>();
    const std::string prefix = "#/definitions/";
    if (ref.rfind(prefix, 0) == 0 && defs.contains(ref.substr(prefix.size()))) {
      Collect(defs[ref.substr(prefix.size())], defs, out, depth + 1);
    }
  }
  out.push_back(&node);
  for (const char* key : {"allOf", "anyOf", "oneOf"}) {
    if (node.contains(key) && node[key].is_array()) {
      for (const auto& sub : node[key]) Collect(sub, defs, out, depth + 1);
    }
  }
  for (const char* key : {"then", "else"}) {
    if (node.contains(key)) Collect(node[key], defs, out, depth + 1);
  }
}

// The unescaped reference tokens of a JSON pointer, first to last.
std::vector<std::string> Tokens(const std::string& pointer) {
  std::vector<std::string> out;
  for (Json::json_pointer p(pointer); !p.empty(); p.pop_back()) out.push_back(p.back());
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<const Json*> SchemaAt(const Json& root, const Json& defs, const std::string& pointer) {
  std::vector<const Json*> cur;
  Collect(root, defs, cur);
  for (const std::string& token : Tokens(pointer)) {
    std::vector<const Json*> next;
    for (const Json* n : cur) {
      if (n->contains("properties") && (*n)["properties"].contains(token)) {
        Collect((*n)["properties"][token], defs, next);
      } else if (n->contains("additionalProperties") && (*n)["additionalProperties"].is_object()) {
        Collect((*n)["additionalProperties"], defs, next);
      }
      if (n->contains("items") && (*n)["items"].is_object() && !token.empty() &&
          token.find_first_not_of("0123456789") == std::string::npos) {
        Collect((*n)["items"], defs, next);
      }
    }
    cur = std::move(next);
  }
  return cur;
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The known word nearest to `word`, if it is near enough to be a typo.
std::string Nearest(const std::string& word, const std::set<std::string>& known) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& k : known) {
    const size_t d = EditDistance(word, k);
    if (d < best_distance) {
      best = k;
      best_distance = d;
    }
  }
  return best;
}

std::string TypeWord(const std::string& t) {
  static const std::map<std::string, std::string> kWords = {
      {"integer", "an integer"}, {"number", "a number"},  {"string", "a string"}, {"object", "an object"},
      {"array", "an array"},     {"boolean", "true or false"}, {"null", "null"}};
  auto it = kWords.find(t);
  return it == kWords.end() ? t : it->second;
}

std::string ValueWord(const Json& v) {
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number with a fraction";
  if (v.is_object()) return "an object";
  if (v.is_array()) return "an array";
  return "null";
}

// "1.000000" -> "1", "0.500000" -> "0.5".
std::string Number(const std::string& text) {
  std::string s = text;
  if (s.find('.') != std::string::npos && s.find('e') == std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  return s;
}

std::string JoinOr(const std::vector<std::string>& words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) out += (i == 0 ? "" : i + 1 == words.size() ? " or " : ", ") + words[i];
  return out;
}

// valijson's message for the value at `pointer` (relative to `doc`, whose
// schema is `root`) in the words of someone fixing a pipeline file; the
// pointer moves to an unknown key itself. Messages it does not know stay.
std::vector<ErrorDetail> Plain(ErrorDetail d, const std::string& pointer, const Json& doc, const Json& root,
                               const Json& defs) {
  static const std::regex kBound(R"(Expected number (greater|less) than (or equal to )?([-+0-9.eE]+))");
  static const std::regex kRequired(R"(Missing required property '(.*)'\.?)");
  // Sizes: "must have at least N <unit>", or `when_one` for a bound of 1.
  struct Count {
    std::regex message;
    const char* bound;
    const char* unit;
    const char* when_one;  // null: the words above, with `unit_one`
    const char* unit_one;
  };
  static const Count kCounts[] = {
      {std::regex(R"(String should be no fewer than ([0-9]+) characters in length\.?)"), "at least", "characters",
       "must not be empty", nullptr},
      {std::regex(R"(String should be no more than ([0-9]+) characters in length\.?)"), "at most", "characters",
       nullptr, "characters"},
      {std::regex(R"(Array should contain no fewer than ([0-9]+) elements\.?)"), "at least", "items", nullptr, "item"},
      {std::regex(R"(Array should contain no more than ([0-9]+) elements\.?)"), "at most", "items", nullptr, "items"},
      {std::regex(R"(Object should have no fewer than ([0-9]+) properties\.?)"), "at least", "keys",
       "must not be empty", nullptr},
  };
  std::smatch m;
  const std::string msg = d.message;
  const std::vector<const Json*> nodes = SchemaAt(root, defs, pointer);
  const Json* value = nullptr;
  try {
    value = &doc.at(Json::json_pointer(pointer));
  } catch (const Json::exception&) {
  }
  // Not std::regex on what holds a user's key: a long one would exhaust
  // its recursion (HostilePipelineTest.LongNamesDoNotExhaustTheRegexEngine).
  static const std::string kUnknownKey =
      "Object contains a property that could not be validated using 'properties' or 'additionalProperties' "
      "constraints: '";
  if (msg.rfind(kUnknownKey, 0) == 0 && msg.size() > kUnknownKey.size()) {
    std::string key = msg.substr(kUnknownKey.size());
    if (!key.empty() && key.back() == '.') key.pop_back();
    if (!key.empty() && key.back() == '\'') key.pop_back();
    std::set<std::string> known;
    std::string pattern;  // names (stage names, hyperparameters) that must match a pattern
    for (const Json* n : nodes) {
      if (n->contains("properties") && (*n)["properties"].is_object()) {
        for (const auto& [k, v] : (*n)["properties"].items()) known.insert(k);
      }
      if (n->contains("patternProperties") && (*n)["patternProperties"].is_object()) {
        for (const auto& [k, v] : (*n)["patternProperties"].items()) pattern = k;
      }
    }
    if (!pattern.empty()) {
      // A name that fits: its value is what is wrong, said where it is.
      if (key.size() <= 64 && std::regex_match(key, std::regex(pattern))) return {};
      d.pointer = PointerAppend(d.pointer, key);
      d.message = "name " + Json(key).dump() + " is not allowed here: names must match " + pattern;
      return {d};
    }
    // valijson names the first unknown key of an object; name them all.
    std::vector<std::string> unknown = {key};
    if (!known.empty() && value != nullptr && value->is_object()) {
      for (const auto& [k, v] : value->items()) {
        if (!known.count(k) && k != key) unknown.push_back(k);
      }
    }
    std::vector<ErrorDetail> out;
    for (const std::string& k : unknown) {
      const std::string near = Nearest(k, known);
      out.push_back({PointerAppend(d.pointer, k),
                     "unknown key " + Json(k).dump() + (near.empty() ? "" : " (did you mean " + Json(near).dump() + "?)")});
    }
    return out;
  }
  if (msg.size() > 400) return {d};  // none of those below, which name no user text
  if (msg.rfind("Value type not permitted by 'type' constraint", 0) == 0) {
    std::vector<std::string> types;
    for (const Json* n : nodes) {
      if (!n->contains("type")) continue;
      const Json& t = (*n)["type"];
      for (const Json& one : t.is_array() ? t : Json::array({t})) {
        if (!one.is_string()) continue;
        const std::string word = TypeWord(one.get<std::string>());
        if (std::find(types.begin(), types.end(), word) == types.end()) types.push_back(word);
      }
    }
    d.message = (types.empty() ? std::string("has the wrong type") : "must be " + JoinOr(types)) +
                (value != nullptr ? ", not " + ValueWord(*value) : "");
    return {d};
  }
  if (msg.rfind("Failed to match against any enum values", 0) == 0) {
    std::vector<std::string> allowed;
    for (const Json* n : nodes) {
      if (!n->contains("enum") || !(*n)["enum"].is_array()) continue;
      for (const Json& e : (*n)["enum"]) {
        if (std::find(allowed.begin(), allowed.end(), e.dump()) == allowed.end()) allowed.push_back(e.dump());
      }
    }
    if (allowed.empty()) return {d};
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    d.message = "must be one of " + list + (value != nullptr ? ", not " + value->dump() : "");
    return {d};
  }
  if (msg.rfind("Failed to match regex specified by 'pattern' constraint", 0) == 0) {
    for (const Json* n : nodes) {
      if (!n->contains("pattern") || !(*n)["pattern"].is_string()) continue;
      std::string found;
      if (value != nullptr && value->is_string()) {
        found = value->get<std::string>();
        if (found.size() > 60) found = found.substr(0, 60) + "...";
        found = ", not " + Json(found).dump();
      }
      d.message = "must match " + (*n)["pattern"].get<std::string>() + found;
      break;
    }
    return {d};
  }
  if (std::regex_match(msg, m, kBound)) {
    const bool greater = m[1] == "greater", equal = m[2].matched;
    const std::string n = Number(m[3].str());
    d.message = std::string("must be ") +
                (greater ? (equal ? "at least " : "greater than ") : (equal ? "at most " : "less than ")) + n +
                (value != nullptr && value->is_number() ? ", not " + value->dump() : "");
    return {d};
  }
  if (std::regex_match(msg, m, kRequired)) {
    d.message = "missing required key " + Json(m[1].str()).dump();
    return {d};
  }
  for (const Count& c : kCounts) {
    if (!std::regex_match(msg, m, c.message)) continue;
    const bool one = m[1] == "1";
    d.message = one && c.when_one != nullptr
                    ? c.when_one
                    : std::string("must have ") + c.bound + " " + m[1].str() + " " + (one ? c.unit_one : c.unit);
    return {d};
  }
  return {d};
}

void Validate(const valijson::Schema& schema, const Json& doc, const std::string& prefix, Issues& issues,
              const Json& root, const Json& defs) {
  valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter adapter(doc);
  if (validator.validate(schema, adapter, &results)) return;
  // valijson reports one error per schema along the failing path; keep the
  // specific ones and drop the summaries of composite schemas.
  valijson::ValidationResults::Error error;
  std::vector<ErrorDetail> raw;
  std::vector<std::string> relative;  // each error's pointer within `doc`
  while (results.popError(error)) {
    relative.push_back(ContextToPointer(error.context));
    raw.push_back({prefix + relative.back(), error.description});
  }
  std::set<std::pair<std::string, std::string>> seen;
  size_t before = issues.size();
  for (size_t i = 0; i < raw.size(); ++i) {
    const std::string& m = raw[i].message;
    const bool enum_miss = m.rfind("Failed to match against any enum values", 0) == 0;
    if (m.rfind("Failed to validate", 0) == 0 || (m.rfind("Failed to match", 0) == 0 && !enum_miss)) continue;
    for (const ErrorDetail& d : Plain(raw[i], relative[i], doc, root, defs)) {
      if (seen.insert({d.pointer, d.message}).second) issues.push_back(d);
    }
  }
  if (issues.size() == before && !raw.empty()) {
    for (const ErrorDetail& d : Plain(raw.front(), relative.front(), doc, root, defs)) issues.push_back(d);
  }
}

// The most members of one array or object in a pipeline. The schema's
// uniqueItems checks are quadratic; nothing real comes near this.
constexpr size_t kMaxItems = 10000;

// The 0-based offset of the first byte of `s`, from `from` on, that is not
// part of valid UTF-8, or npos.
size_t InvalidUtf8At(const std::string& s, size_t from = 0) {
  size_t i = from;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + n >= s.size()) return i;
    for (size_t k = 1; k <= n; ++k) {
      const unsigned char b = static_cast<unsigned char>(s[i + k]);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return i;
    }
    i += n + 1;
  }
  return std::string::npos;
}

// `s` with every byte that is not valid UTF-8 written as \xNN.
std::string Printable(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const size_t bad = InvalidUtf8At(s, i);
    if (bad == std::string::npos) return out + s.substr(i);
    out += s.substr(i, bad - i);
    static const char* kHex = "0123456789abcdef";
    const unsigned char c = static_cast<unsigned char>(s[bad]);
    out += std::string("\\x") + kHex[c >> 4] + kHex[c & 15];
    i = bad + 1;
  }
  return out;
}

}  // namespace

// What must hold before the schema is worth running, checked without
// recursion: nesting within kMaxJsonDepth, arrays and objects within
// kMaxItems, strings and keys valid UTF-8 (a document built in memory may
// hold anything), integers within int64 (valijson would read a larger one as
// negative).
void DocumentIssues(const Json& doc, Issues& issues) {
  struct Item {
    const Json* value;
    std::string pointer;
    int depth;  // 0 for the document itself
  };
  std::vector<Item> stack{{&doc, "", 0}};
  while (!stack.empty() && issues.size() < 100) {
    const Item item = std::move(stack.back());
    stack.pop_back();
    const Json& v = *item.value;
    const std::string& at = item.pointer;
    if (v.is_string()) {
      const size_t bad = InvalidUtf8At(v.get_ref<const std::string&>());
      if (bad != std::string::npos) issues.push_back({at, "is not valid UTF-8 (byte " + std::to_string(bad) + ")"});
      continue;
    }
    if (v.is_number_unsigned() &&
        v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      issues.push_back({at, "integer " + v.dump() + " is out of range (at most 9223372036854775807)"});
      continue;
    }
    if (!v.is_structured()) continue;
    if (item.depth >= kMaxJsonDepth) {
      issues.push_back({at, "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels"});
      continue;
    }
    if (v.size() > kMaxItems) {
      issues.push_back({at, "has " + std::to_string(v.size()) + " " + (v.is_array() ? "items" : "members") +
                                "; at most " + std::to_string(kMaxItems)});
      continue;
    }
    const size_t first = stack.size();
    if (v.is_object()) {
      for (auto it = v.begin(); it != v.end(); ++it) {
        const size_t bad = InvalidUtf8At(it.key());
        const std::string child = PointerAppend(at, bad == std::string::npos ? it.key() : Printable(it.key()));
        if (bad != std::string::npos) {
          issues.push_back({child, "key is not valid UTF-8 (byte " + std::to_string(bad) + ")"});
        }
        stack.push_back({&it.value(), child, item.depth + 1});
      }
    } else {
      for (size_t i = 0; i < v.size(); ++i) {
        stack.push_back({&v[i], PointerAppend(at, std::to_string(i)), item.depth + 1});
      }
    }
    std::reverse(stack.begin() + static_cast<std::ptrdiff_t>(first), stack.end());  // document order
  }
}

void SchemaIssues(const Json& doc, Issues& issues) {
  const CompiledSchemas& schemas = Schemas();
  Validate(schemas.top, doc, "", issues, schemas.top_json, schemas.definitions);
  if (!doc.is_object() || !doc.contains("stages") || !doc["stages"].is_object()) return;
  for (const auto& [name, stage] : doc["stages"].items()) {
    if (!stage.is_object() || !stage.contains("type") || !stage["type"].is_string()) continue;
    const std::string type = stage["type"].get<std::string>();
    auto it = schemas.by_type.find(type);
    if (it != schemas.by_type.end()) {
      Validate(it->second, stage, StagePtr(name), issues, schemas.by_type_json.at(type), schemas.definitions);
      continue;
    }
    // valijson words this as a property of /stages that "could not be
    // validated"; say which type is unknown instead.
    std::string known;
    for (const auto& [t, schema] : schemas.by_type) known += (known.empty() ? "" : ", ") + t;
    const std::string type_ptr = StagePtr(name) + "/type";
    issues.erase(std::remove_if(issues.begin(), issues.end(),
                                [&](const ErrorDetail& d) {
                                  if (d.pointer == type_ptr) return true;  // the enum's words; ours below
                                  return d.pointer.rfind("/stages/", 0) == 0 && d.message.rfind("unknown key", 0) == 0 &&
                                         d.pointer.find('/', 8) == std::string::npos;
                                }),
                 issues.end());
    issues.push_back({StagePtr(name) + "/type", "unknown stage type " + Json(type).dump() + "; known: " + known});
  }
}

}  // namespace spec_detail
}  // namespace baton::orchestrator
