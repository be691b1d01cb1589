#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
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
#include "orchestrator/pipeline_checks_internal.h"
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
    for (const auto& type : full["definitions"]["stage"]["properties"]["type"]["enum"]) {
      const std::string t = type.get<std::string>();
      Json one = {{"$ref", "#/definitions/" + t + "_stage"}, {"definitions", full["definitions"]}};
      Compile(one, &s->by_type[t]);
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

void Validate(const valijson::Schema& schema, const Json& doc, const std::string& prefix, Issues& issues) {
  valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter adapter(doc);
  if (validator.validate(schema, adapter, &results)) return;
  // valijson reports one error per schema along the failing path; keep the
  // specific ones and drop the summaries of composite schemas.
  valijson::ValidationResults::Error error;
  std::vector<ErrorDetail> raw;
  while (results.popError(error)) {
    raw.push_back({prefix + ContextToPointer(error.context), error.description});
  }
  std::set<std::pair<std::string, std::string>> seen;
  size_t before = issues.size();
  for (const auto& d : raw) {
    const std::string& m = d.message;
    if (m.rfind("Failed to validate", 0) == 0 || m.rfind("Failed to match", 0) == 0) continue;
    if (seen.insert({d.pointer, m}).second) issues.push_back(d);
  }
  if (issues.size() == before && !raw.empty()) issues.push_back(raw.front());
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
  Validate(schemas.top, doc, "", issues);
  if (!doc.is_object() || !doc.contains("stages") || !doc["stages"].is_object()) return;
  for (const auto& [name, stage] : doc["stages"].items()) {
    if (!stage.is_object() || !stage.contains("type") || !stage["type"].is_string()) continue;
    const std::string type = stage["type"].get<std::string>();
    auto it = schemas.by_type.find(type);
    if (it != schemas.by_type.end()) {
      Validate(it->second, stage, StagePtr(name), issues);
      continue;
    }
    // valijson words this as a property of /stages that "could not be
    // validated"; say which type is unknown instead.
    std::string known;
    for (const auto& [t, schema] : schemas.by_type) known += (known.empty() ? "" : ", ") + t;
    issues.erase(std::remove_if(issues.begin(), issues.end(),
                                [](const ErrorDetail& d) {
                                  return d.pointer == "/stages" &&
                                         d.message.rfind("Object contains a property that could not be validated", 0) == 0;
                                }),
                 issues.end());
    issues.push_back({StagePtr(name) + "/type", "unknown stage type " + Json(type).dump() + "; known: " + known});
  }
}

}  // namespace spec_detail
}  // namespace baton::orchestrator
