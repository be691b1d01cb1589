#include "orchestrator/pipeline_spec.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "common/json_limits.h"

namespace baton::orchestrator {

const char* PipelineSchemaRaw();  // generated from schema/pipeline.schema.json

namespace {

using Issues = std::vector<ErrorDetail>;

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

std::string StagePtr(const std::string& stage) { return PointerAppend("/stages", stage); }

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

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

// The tune stage a selector names, if valid; records an issue otherwise.
bool CheckTuneRef(const Json& stages, const std::string& stage,
                  const std::string& ref, const std::set<std::string>& upstream,
                  const std::string& pointer, Issues& issues) {
  if (!stages.contains(ref)) {
    issues.push_back({pointer, "unknown stage " + Quote(ref)});
    return false;
  }
  if (stages.at(ref).value("type", "") != "tune") {
    issues.push_back({pointer, "stage " + Quote(ref) + " is a " +
                                   stages.at(ref).value("type", "") +
                                   " stage; only tune stages have trials to select"});
    return false;
  }
  if (!upstream.count(ref)) {
    issues.push_back({pointer, "stage " + Quote(ref) + " is not upstream of " +
                                   Quote(stage) + "; add it to depends_on"});
    return false;
  }
  return true;
}

// The most values the grid sampler may enumerate for one parameter, and over
// all parameters together (it materialises each parameter's values; the
// Cartesian product itself is walked lazily and cut to max_trials).
constexpr double kMaxGridValuesPerParam = 100000;
constexpr double kMaxGridValues = 1000000;
// Integers beyond 2^53 do not survive the samplers' arithmetic in doubles.
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

std::string Count(double n) {
  if (n <= kMaxExactInteger) return std::to_string(static_cast<int64_t>(n));
  std::ostringstream s;
  s << n;
  return s.str();
}

void CheckSearchSpace(const std::string& sp, const Json& space,
                      const std::string& sampler, Issues& issues) {
  double grid_values = 0;
  for (const auto& [name, param] : space.items()) {
    std::string p = PointerAppend(sp, name);
    std::string type = param.value("type", "");
    if (type == "categorical") {
      grid_values += static_cast<double>(param["values"].size());
      continue;  // values are checked by the schema
    }
    if (!param.contains("low") || !param.contains("high")) continue;  // schema said
    double low = param["low"].get<double>();
    double high = param["high"].get<double>();
    bool log = param.value("log", false);
    if (!(low < high)) {
      issues.push_back({p + "/high", "must be > low (" + param["low"].dump() + ")"});
    }
    if (log && !(low > 0)) {
      issues.push_back({p + "/low", "must be > 0 when log is true"});
    }
    if (log && param.contains("step")) {
      issues.push_back({p + "/step", "cannot be combined with log"});
    }
    if (!std::isfinite(high - low)) {
      issues.push_back({p + "/high", "high - low is beyond the range of a double"});
      continue;
    }
    double values = 0;  // how many values a stepped or int parameter has
    if (type == "int") {
      bool exact = true;
      for (const char* bound : {"low", "high"}) {
        if (!param[bound].is_number_integer()) {
          issues.push_back({p + "/" + bound, "must be an integer for an int parameter"});
          exact = false;
        } else if (const int64_t v = param[bound].get<int64_t>(); v > (int64_t{1} << 53) || v < -(int64_t{1} << 53)) {
          issues.push_back({p + "/" + bound, "must be within +-2^53 (9007199254740992) for an int parameter"});
          exact = false;
        }
      }
      double step = 1;
      if (param.contains("step")) {
        step = param["step"].get<double>();
        if (!param["step"].is_number_integer() || step < 1) {
          issues.push_back({p + "/step", "must be an integer >= 1 for an int parameter"});
          exact = false;
        }
      }
      if (!exact) continue;
      values = std::floor((high - low) / step) + 1;
    } else if (param.contains("step")) {
      const double steps = std::floor((high - low) / param["step"].get<double>());
      if (!(steps <= kMaxExactInteger)) {
        issues.push_back({p + "/step", "gives " + Count(steps) + " steps from low to high; at most 2^53"});
        continue;
      }
      values = steps + 1;
    }
    if (sampler == "grid" && type == "float" && !param.contains("step")) {
      issues.push_back({p, "a float parameter needs \"step\" for the grid sampler"});
    }
    if (sampler == "grid" && values > kMaxGridValuesPerParam) {
      issues.push_back({p, "the grid sampler would enumerate " + Count(values) + " values; at most " +
                               Count(kMaxGridValuesPerParam) + " per parameter (raise step or narrow low..high)"});
    }
    grid_values += values;
  }
  if (sampler == "grid" && grid_values > kMaxGridValues) {
    issues.push_back({sp, "the grid sampler would enumerate " + Count(grid_values) +
                              " values over its parameters; at most " + Count(kMaxGridValues)});
  }
}

// Pruner fields must belong to the pruner type and fit the epoch budget.
void CheckPruner(const std::string& sp, const Json& stage, Issues& issues) {
  if (!stage.contains("pruner") || !stage.contains("budget")) return;
  const Json& pruner = stage["pruner"];
  const std::string pp = sp + "/pruner";
  const std::string type = pruner.value("type", "none");
  const int64_t max_epochs = stage["budget"].value("max_epochs", int64_t{1});
  const std::map<std::string, std::set<std::string>> allowed = {
      {"none", {"type"}},
      {"median", {"type", "min_resource", "n_startup_trials"}},
      {"asha", {"type", "min_resource", "max_resource", "reduction_factor"}}};
  auto it = allowed.find(type);
  if (it == allowed.end()) return;  // the schema names the valid types
  for (const auto& [key, value] : pruner.items()) {
    if (!it->second.count(key)) {
      issues.push_back({PointerAppend(pp, key), "is not a setting of the " + Quote(type) + " pruner"});
    }
  }
  const int64_t min_resource = pruner.value("min_resource", int64_t{1});
  if (type != "none" && min_resource > max_epochs) {
    issues.push_back({pp + "/min_resource", "must be <= budget.max_epochs (" + std::to_string(max_epochs) + ")"});
  }
  if (type == "asha") {
    const int64_t max_resource = pruner.value("max_resource", max_epochs);
    if (max_resource != max_epochs) {
      issues.push_back({pp + "/max_resource",
                        "must equal budget.max_epochs (" + std::to_string(max_epochs) +
                            "): the last rung is the full budget"});
    }
    if (min_resource >= max_resource) {
      issues.push_back({pp + "/min_resource", "must be < max_resource (" + std::to_string(max_resource) + ")"});
    }
    if (stage.value("scheduling", "asynchronous") == "synchronous") {
      issues.push_back({sp + "/scheduling", "ASHA is asynchronous; use \"asynchronous\" or another pruner"});
    }
  }
  if (stage.contains("sampler")) {
    const Json& sampler = stage["sampler"];
    if (sampler.value("type", "random") != "tpe") {
      for (const char* key : {"n_startup_trials", "n_ei_candidates"}) {
        if (sampler.contains(key)) {
          issues.push_back({PointerAppend(sp + "/sampler", key), "is a setting of the \"tpe\" sampler only"});
        }
      }
    }
  }
}

// Every "$name" in the model's layers must be a known hyperparameter.
void CheckModelRefs(const std::string& mp, const Json& model,
                    const std::set<std::string>& known, Issues& issues) {
  if (!model.is_object() || !model.contains("layers") || !model["layers"].is_array()) return;
  const Json& layers = model["layers"];
  std::set<std::string> names;
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string lp = PointerAppend(mp + "/layers", std::to_string(i));
    if (!layers[i].is_object()) continue;
    if (layers[i].contains("name") && layers[i]["name"].is_string() &&
        !names.insert(layers[i]["name"].get<std::string>()).second) {
      issues.push_back({lp + "/name", "duplicate layer name " + layers[i]["name"].dump()});
    }
    for (const auto& [key, value] : layers[i].items()) {
      if (key == "name" || key == "type" || !value.is_string()) continue;
      std::string ref = value.get<std::string>();
      if (ref.size() > 1 && ref[0] == '$' && !known.count(ref.substr(1))) {
        issues.push_back({PointerAppend(lp, key),
                          Quote(ref) + " names no search-space parameter or hyperparameter of this stage"});
      }
    }
  }
}

std::set<std::string> TuneHyperparameterNames(const Json& tune) {
  std::set<std::string> known;
  for (const char* field : {"search_space", "hyperparameters"}) {
    if (!tune.contains(field)) continue;
    for (const auto& [k, v] : tune[field].items()) known.insert(k);
  }
  return known;
}

void CheckInitFrom(const Json& stages, const std::string& name, const Json& stage,
                   const std::set<std::string>& upstream, Issues& issues);

std::vector<std::string> LayerNames(const Json& model) {
  std::vector<std::string> names;
  if (!model.is_object() || !model.contains("layers") || !model["layers"].is_array()) return names;
  for (const auto& layer : model["layers"]) {
    if (layer.is_object() && layer.contains("name") && layer["name"].is_string()) {
      names.push_back(layer["name"].get<std::string>());
    }
  }
  return names;
}

// The header of a CSV file, split at commas and trimmed; empty if unreadable,
// not a regular file (a pipeline may name /dev/zero or a FIFO) or without a
// line end in its first MiB.
std::vector<std::string> CsvHeader(const std::string& path) {
  constexpr size_t kMaxHeaderBytes = 1 << 20;
  std::vector<std::string> out;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return out;
  std::ifstream in(path, std::ios::binary);
  std::string line;
  for (char c; line.size() <= kMaxHeaderBytes && in.get(c) && c != '\n';) line += c;
  if (line.size() > kMaxHeaderBytes || (line.empty() && !in)) return out;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) {
    const auto b = cell.find_first_not_of(" \t\"");
    const auto e = cell.find_last_not_of(" \t\"");
    out.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
  }
  return out;
}

void CheckAblate(const Json& stages, const std::string& name, const Json& stage,
                 const std::set<std::string>& upstream, const std::string& data_stage, Issues& issues) {
  const std::string sp = StagePtr(name);
  const Json& base = stage["base"];
  Json model;
  if (base.contains("from")) {
    if (!base.contains("trial")) issues.push_back({sp + "/base/trial", "required with \"from\""});
    for (const char* k : {"model", "hyperparameters"}) {
      if (base.contains(k)) {
        issues.push_back({PointerAppend(sp + "/base", k),
                          "give either \"from\" and \"trial\" or \"model\" and \"hyperparameters\", not both"});
      }
    }
    const std::string from = base["from"].get<std::string>();
    if (CheckTuneRef(stages, name, from, upstream, sp + "/base/from", issues)) model = stages.at(from)["model"];
  } else if (base.contains("model")) {
    if (base.contains("trial")) issues.push_back({sp + "/base/trial", "needs \"from\""});
    std::set<std::string> known;
    const Json fixed = base.value("hyperparameters", Json::object());
    for (const auto& [k, v] : fixed.items()) known.insert(k);
    CheckModelRefs(sp + "/base/model", base["model"], known, issues);
    model = base["model"];
  } else {
    issues.push_back({sp + "/base", "needs {\"from\": STAGE, \"trial\": SEL} or a \"model\" (with \"hyperparameters\")"});
  }
  const Json components = stage.value("components", Json::array());
  const Json features = stage.value("features", Json::array());
  if (components.empty() && features.empty()) {
    issues.push_back({sp + "/components", "nothing to ablate: list components (layers) or features"});
  }
  const std::vector<std::string> layers = LayerNames(model);
  std::set<std::string> labels;
  for (size_t i = 0; i < components.size() && !layers.empty(); ++i) {
    const std::string cp = PointerAppend(sp + "/components", std::to_string(i));
    const Json& c = components[i];
    std::vector<std::string> removed;
    std::string label;
    if (c.is_string()) {
      label = c.get<std::string>();
      if (std::find(layers.begin(), layers.end(), label) == layers.end()) {
        issues.push_back({cp, "the model has no layer " + Quote(label)});
        continue;
      }
      removed.push_back(label);
    } else if (c.contains("prefix")) {
      const std::string prefix = c["prefix"].get<std::string>();
      label = prefix + "*";
      for (const auto& l : layers) {
        if (l.rfind(prefix, 0) == 0) removed.push_back(l);
      }
      if (removed.empty()) {
        issues.push_back({cp + "/prefix", "no layer name starts with " + Quote(prefix)});
        continue;
      }
    } else {
      label = c["name"].get<std::string>();
      const Json& group = c["layers"];
      for (size_t j = 0; j < group.size(); ++j) {
        const std::string l = group[j].get<std::string>();
        if (std::find(layers.begin(), layers.end(), l) == layers.end()) {
          issues.push_back({PointerAppend(cp + "/layers", std::to_string(j)), "the model has no layer " + Quote(l)});
        }
        removed.push_back(l);
      }
    }
    if (!labels.insert(label).second) issues.push_back({cp, "another component is also called " + Quote(label)});
    if (removed.size() >= layers.size()) issues.push_back({cp, "removes every layer of the model"});
  }
  if (!features.empty() && !data_stage.empty()) {
    const Json& dataset = stages.at(data_stage)["dataset"];
    if (dataset.value("format", "idx") != "csv") {
      issues.push_back({sp + "/features", "stage " + Quote(data_stage) +
                                              " prepares an image dataset (idx); features need a csv dataset"});
    } else {
      const std::vector<std::string> header = CsvHeader(dataset.value("path", ""));
      const std::string label_column = dataset.value("label_column", "label");
      for (size_t i = 0; i < features.size(); ++i) {
        const std::string f = features[i].get<std::string>();
        const std::string fp = PointerAppend(sp + "/features", std::to_string(i));
        if (f == label_column) {
          issues.push_back({fp, Quote(f) + " is the label column"});
        } else if (!header.empty() && std::find(header.begin(), header.end(), f) == header.end()) {
          issues.push_back({fp, "no column " + Quote(f) + " in " + dataset.value("path", "")});
        }
      }
    }
  }
}

void SemanticIssues(const Json& doc, Pipeline* plan, Issues& issues) {
  const Json& stages = doc.at("stages");
  std::map<std::string, std::vector<std::string>> deps;
  for (const auto& [name, stage] : stages.items()) {
    auto& d = deps[name];
    const Json list = stage.value("depends_on", Json::array());
    for (size_t i = 0; i < list.size(); ++i) {
      std::string dep = list[i].get<std::string>();
      std::string p = PointerAppend(StagePtr(name) + "/depends_on", std::to_string(i));
      if (dep == name) {
        issues.push_back({p, "a stage cannot depend on itself"});
      } else if (!stages.contains(dep)) {
        issues.push_back({p, "unknown stage " + Quote(dep)});
      } else {
        d.push_back(dep);
      }
    }
  }
  // Kahn's algorithm; stable by name so the plan is deterministic.
  std::map<std::string, int> indegree;
  for (const auto& [name, d] : deps) indegree[name] = static_cast<int>(d.size());
  std::vector<std::string> order;
  std::set<std::string> ready;
  for (const auto& [name, n] : indegree) if (n == 0) ready.insert(name);
  while (!ready.empty()) {
    std::string next = *ready.begin();
    ready.erase(ready.begin());
    order.push_back(next);
    for (const auto& [name, d] : deps) {
      if (std::find(d.begin(), d.end(), next) != d.end() && --indegree[name] == 0) {
        ready.insert(name);
      }
    }
  }
  if (order.size() != deps.size()) {
    std::string members;
    for (const auto& [name, n] : indegree) {
      if (n > 0) members += (members.empty() ? "" : ", ") + Quote(name);
    }
    for (const auto& [name, n] : indegree) {
      if (n > 0) {
        issues.push_back({StagePtr(name) + "/depends_on",
                          "dependency cycle among stages " + members});
        break;
      }
    }
    return;
  }
  std::map<std::string, std::set<std::string>> upstream;
  for (const auto& name : order) {
    auto& up = upstream[name];
    for (const auto& d : deps[name]) {
      up.insert(d);
      up.insert(upstream[d].begin(), upstream[d].end());
    }
  }
  std::map<std::string, std::string> data_stage;
  for (const auto& name : order) {
    const Json& stage = stages.at(name);
    std::string type = stage.value("type", "");
    std::string sp = StagePtr(name);
    if (type == "prepare") {
      const Json& dataset = stage["dataset"];
      const std::string path = dataset.value("path", "");
      const bool csv = dataset.value("format", "idx") == "csv";
      std::error_code ec;
      if (csv && !std::filesystem::is_regular_file(path, ec)) {
        issues.push_back({sp + "/dataset/path", "no such file: " + path});
      } else if (!csv && !std::filesystem::is_directory(path, ec)) {
        issues.push_back({sp + "/dataset/path", "no such directory: " + path});
      }
      if (!csv && dataset.contains("label_column")) {
        issues.push_back({sp + "/dataset/label_column", "is a setting of the \"csv\" format only"});
      }
      if (!csv && stage.contains("test_fraction")) {
        issues.push_back({sp + "/test_fraction", "is a setting of the \"csv\" format only (idx files have a test split)"});
      }
      continue;
    }
    std::vector<std::string> preps;
    for (const auto& u : upstream[name]) {
      if (stages.at(u).value("type", "") == "prepare") preps.push_back(u);
    }
    if (preps.size() != 1) {
      issues.push_back({sp + "/depends_on",
                        preps.empty() ? "needs a prepare stage upstream for its data"
                                      : "has " + std::to_string(preps.size()) +
                                            " prepare stages upstream; exactly one must feed it data"});
    } else {
      data_stage[name] = preps.front();
    }
    if (type == "tune") {
      std::string sampler = stage.contains("sampler") ? stage["sampler"].value("type", "random") : "random";
      CheckSearchSpace(sp + "/search_space", stage["search_space"], sampler, issues);
      const Json fixed = stage.value("hyperparameters", Json::object());
      for (const auto& [k, v] : fixed.items()) {
        if (stage["search_space"].contains(k)) {
          issues.push_back({PointerAppend(sp + "/hyperparameters", k),
                            Quote(k) + " is also in search_space; give it one place"});
        }
      }
      CheckModelRefs(sp + "/model", stage["model"], TuneHyperparameterNames(stage), issues);
      CheckPruner(sp, stage, issues);
    } else if (type == "train") {
      const Json& hp = stage["hyperparameters"];
      std::set<std::string> known;
      const Json* tune = nullptr;
      if (hp.contains("from")) {
        std::string from = hp["from"].get<std::string>();
        if (CheckTuneRef(stages, name, from, upstream[name], sp + "/hyperparameters/from", issues)) {
          tune = &stages.at(from);
          known = TuneHyperparameterNames(*tune);
        }
      } else {
        for (const auto& [k, v] : hp.items()) known.insert(k);
      }
      if (stage.contains("model")) {
        CheckModelRefs(sp + "/model", stage["model"], known, issues);
      } else if (!hp.contains("from")) {
        issues.push_back({sp + "/model", "required when hyperparameters are not taken from a tune stage"});
      }
      CheckInitFrom(stages, name, stage, upstream[name], issues);
      if (stage.contains("compare")) {
        const Json& compare = stage["compare"];
        if (!stage.contains("init_from")) {
          issues.push_back({sp + "/compare", "needs init_from: it compares starts from that trial's epochs with the baseline"});
        } else if (compare.contains("epochs_from")) {
          const std::string from = stage["init_from"].value("stage", "");
          const Json& eps = compare["epochs_from"];
          for (size_t i = 0; i < eps.size() && stages.contains(from) && stages.at(from).contains("budget"); ++i) {
            const int64_t max_epochs = stages.at(from)["budget"].value("max_epochs", int64_t{0});
            if (eps[i].is_number_integer() && eps[i].get<int64_t>() >= max_epochs) {
              issues.push_back({PointerAppend(sp + "/compare/epochs_from", std::to_string(i)),
                                "epoch " + eps[i].dump() + " does not exist: stage " + Quote(from) +
                                    " trains epochs 0.." + std::to_string(max_epochs - 1) + " (0-based)"});
            }
          }
        }
      }
    } else if (type == "ablate") {
      CheckAblate(stages, name, stage, upstream[name], data_stage.count(name) ? data_stage[name] : "", issues);
      CheckInitFrom(stages, name, stage, upstream[name], issues);
    }
  }
  if (plan != nullptr) {
    plan->order = order;
    plan->depends_on = deps;
    plan->data_stage = data_stage;
  }
}

void CheckInitFrom(const Json& stages, const std::string& name, const Json& stage,
                   const std::set<std::string>& upstream, Issues& issues) {
  // Where init_from names a tune stage, the epoch must exist there.
  const std::string sp = StagePtr(name);
  if (stage.contains("init_from")) {
    const Json& init = stage["init_from"];
    std::string from = init["stage"].get<std::string>();
    if (CheckTuneRef(stages, name, from, upstream, sp + "/init_from/stage", issues) &&
        init["epoch"].is_number_integer()) {
      int64_t max_epochs = stages.at(from)["budget"]["max_epochs"].get<int64_t>();
      if (init["epoch"].get<int64_t>() >= max_epochs) {
        issues.push_back({sp + "/init_from/epoch",
                          "epoch " + init["epoch"].dump() + " does not exist: stage " + Quote(from) +
                              " trains epochs 0.." + std::to_string(max_epochs - 1) + " (0-based)"});
      }
    }
  }
}

}  // namespace

const std::string& PipelineSchemaText() {
  static const std::string text = PipelineSchemaRaw();
  return text;
}

std::vector<ErrorDetail> ValidatePipeline(const Json& doc) {
  Issues issues;
  DocumentIssues(doc, issues);
  if (issues.empty()) SchemaIssues(doc, issues);
  if (issues.empty()) SemanticIssues(doc, nullptr, issues);
  return issues;
}

Pipeline LoadPipeline(const Json& doc) {
  Issues issues;
  DocumentIssues(doc, issues);
  if (issues.empty()) SchemaIssues(doc, issues);
  Pipeline plan;
  if (issues.empty()) SemanticIssues(doc, &plan, issues);
  if (!issues.empty()) {
    std::ostringstream msg;
    msg << "invalid pipeline: " << issues.size() << " problem" << (issues.size() == 1 ? "" : "s");
    for (const auto& i : issues) msg << "\n  " << (i.pointer.empty() ? "/" : i.pointer) << ": " << i.message;
    throw Error(ErrorCode::kInvalidArgument, msg.str(), issues);
  }
  plan.doc = doc;
  plan.id = JsonDigest(doc);
  plan.name = doc.at("name").get<std::string>();
  plan.seed = doc.value("seed", static_cast<uint64_t>(0));
  return plan;
}

Pipeline LoadPipelineFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot read pipeline file " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return LoadPipeline(ParseJson(buf.str(), path));
}

}  // namespace baton::orchestrator
