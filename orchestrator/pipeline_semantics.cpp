#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include <zlib.h>

#include "common/error.h"
#include "common/npy_header.h"
#include "common/vocabulary.h"
#include "orchestrator/internal/pipeline_checks.h"
#include "orchestrator/pipeline_spec.h"

namespace baton::orchestrator {
namespace spec_detail {

// The tune stage a selector names, if valid; records an issue otherwise.
bool CheckTuneRef(const Json& stages, const std::string& stage,
                  const std::string& ref, const std::set<std::string>& upstream,
                  const std::string& pointer, Issues& issues) {
  if (!stages.contains(ref)) {
    issues.push_back({pointer, "unknown stage " + Quote(ref)});
    return false;
  }
  if (!Is(stages.at(ref).value("type", ""), StageType::kTune)) {
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

namespace {

// Every "$name" in the layers at `lp` (and in residual blocks' "layers" and
// "shortcut", recursively) must be a known hyperparameter; names are unique
// within each list.
void CheckLayerRefs(const std::string& lp, const Json& layers, const std::set<std::string>& known, Issues& issues) {
  if (!layers.is_array()) return;
  std::set<std::string> names;
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string p = PointerAppend(lp, std::to_string(i));
    if (!layers[i].is_object()) continue;
    if (layers[i].contains("name") && layers[i]["name"].is_string() &&
        !names.insert(layers[i]["name"].get<std::string>()).second) {
      issues.push_back({p + "/name", "duplicate layer name " + layers[i]["name"].dump()});
    }
    for (const auto& [key, value] : layers[i].items()) {
      if (key == "layers" || key == "shortcut") CheckLayerRefs(PointerAppend(p, key), value, known, issues);
      if (key == "name" || key == "type" || !value.is_string()) continue;
      std::string ref = value.get<std::string>();
      if (ref.size() > 1 && ref[0] == '$' && !known.count(ref.substr(1))) {
        issues.push_back({PointerAppend(p, key),
                          Quote(ref) + " names no search-space parameter or hyperparameter of this stage"});
      }
    }
  }
}

void CheckModelRefs(const std::string& mp, const Json& model,
                    const std::set<std::string>& known, Issues& issues) {
  if (!model.is_object() || !model.contains("layers")) return;
  CheckLayerRefs(mp + "/layers", model["layers"], known, issues);
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

bool IsTorchScript(const Json& model) { return model.is_object() && model.contains("torchscript"); }

// A model at pointer `mp` is a layer list or a TorchScript file, and that
// file exists (a relative path is relative to the working directory, as a
// dataset's path is).
void CheckModelKind(const std::string& mp, const Json& model, Issues& issues) {
  if (!model.is_object()) return;
  const bool layers = model.contains("layers"), script = IsTorchScript(model);
  if (layers && script) {
    issues.push_back({mp + "/torchscript", "give either \"layers\" or \"torchscript\", not both"});
  } else if (!layers && !script) {
    issues.push_back({mp, "needs \"layers\" (a layer list) or \"torchscript\" (a TorchScript model file)"});
  } else if (script && model["torchscript"].is_string()) {
    const std::string path = model["torchscript"].get<std::string>();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      issues.push_back({mp + "/torchscript", "no such file: " + path});
    }
  }
}

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
  Json model, fixed;
  if (base.contains("from")) {
    if (!base.contains("trial")) issues.push_back({sp + "/base/trial", "required with \"from\""});
    for (const char* k : {"model", "hyperparameters"}) {
      if (base.contains(k)) {
        issues.push_back({PointerAppend(sp + "/base", k),
                          "give either \"from\" and \"trial\" or \"model\" and \"hyperparameters\", not both"});
      }
    }
    const std::string from = base["from"].get<std::string>();
    if (CheckTuneRef(stages, name, from, upstream, sp + "/base/from", issues)) {
      model = stages.at(from)["model"];
      fixed = stages.at(from).value("hyperparameters", Json::object());
    }
  } else if (base.contains("model")) {
    if (base.contains("trial")) issues.push_back({sp + "/base/trial", "needs \"from\""});
    std::set<std::string> known;
    fixed = base.value("hyperparameters", Json::object());
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
  if (IsTorchScript(model) && !components.empty()) {
    issues.push_back({sp + "/components",
                      "the base model is TorchScript, whose layers cannot be removed (its forward is compiled "
                      "code); ablate a model given as \"layers\", or only \"features\""});
  }
  const std::vector<std::string> layers = LayerNames(model);
  // A residual block left out leaves its input to the layers after it, so
  // it must not change the shape (where that is known before training).
  const std::vector<std::vector<int64_t>> shapes =
      components.empty() ? std::vector<std::vector<int64_t>>()
                         : ModelShapes(model, fixed, data_stage.empty() ? std::vector<int64_t>()
                                                                        : ExampleShape(stages.at(data_stage)));
  auto check_block = [&](const std::string& cp, const std::string& layer) {
    const auto at = std::find(layers.begin(), layers.end(), layer);
    const size_t i = static_cast<size_t>(at - layers.begin());
    if (at == layers.end() || i + 1 >= shapes.size() || model["layers"][i].value("type", "") != "residual") return;
    const std::vector<int64_t>&in = shapes[i], &out = shapes[i + 1];
    if (in.empty() || out.empty() || in == out) return;
    auto text = [](const std::vector<int64_t>& shape) {
      std::string t;
      for (int64_t d : shape) t += (t.empty() ? "[" : ",") + std::to_string(d);
      return t + "]";
    };
    issues.push_back({cp, "cannot leave out residual block " + Quote(layer) + ": it turns " + text(in) + " into " +
                              text(out) + ", so the layers after it would get the wrong shape; only a block whose "
                                          "output has its input's shape (an identity shortcut) can be left out"});
  };
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
    for (const auto& l : removed) check_block(cp, l);
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

// Each stage's direct dependencies, those that exist (a stage naming itself
// or an unknown stage is an issue).
std::map<std::string, std::vector<std::string>> Dependencies(const Json& stages, Issues& issues) {
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
  return deps;
}

// The stages, dependencies first (Kahn's algorithm, stable by name so the
// plan is deterministic); empty with an issue naming a cycle's stages.
std::vector<std::string> DependencyOrder(const std::map<std::string, std::vector<std::string>>& deps,
                                         Issues& issues) {
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
  if (order.size() == deps.size()) return order;
  std::string members;
  for (const auto& [name, n] : indegree) {
    if (n > 0) members += (members.empty() ? "" : ", ") + Quote(name);
  }
  for (const auto& [name, n] : indegree) {
    if (n > 0) {
      issues.push_back({StagePtr(name) + "/depends_on", "dependency cycle among stages " + members});
      break;
    }
  }
  return {};
}

}  // namespace

std::vector<int64_t> ExampleShape(const Json& prepare_stage) {
  const Json dataset = prepare_stage.value("dataset", Json::object());
  const std::string path = dataset.value("path", "");
  const std::string format = dataset.value("format", "idx");
  if (format == "csv") {
    const std::vector<std::string> header = CsvHeader(path);
    if (header.size() < 2) return {};
    return {static_cast<int64_t>(header.size() - 1)};  // every column but the label
  }
  if (format == "npy") {
    // x's header: [N, F], [N, H, W] (one channel) or [N, C, H, W].
    std::string name = dataset.value("x", "x");
    if (name.size() <= 4 || name.compare(name.size() - 4, 4, ".npy") != 0) name += ".npy";
    try {
      std::vector<int64_t> shape = ReadNpyHeader(path + "/" + name).shape;
      if (shape.size() < 2 || shape.size() > 4) return {};
      shape.erase(shape.begin());
      if (shape.size() == 2) shape.insert(shape.begin(), 1);
      return shape;
    } catch (const Error&) {
      return {};  // the prepare stage reports it
    }
  }
  if (format == "image_folder" && dataset.contains("image_size") && dataset.contains("channels")) {
    const Json& size = dataset["image_size"];
    return {dataset["channels"].get<int64_t>(), size[0].get<int64_t>(), size[1].get<int64_t>()};
  }
  if (format != "idx") return {};  // other image folders and npz archives: unknown until read
  // An idx file of unsigned bytes with 3 dimensions: magic 0x00000803,
  // count, rows, columns, big-endian (zlib reads it gzipped or plain).
  for (const char* name : {"/train-images-idx3-ubyte.gz", "/train-images-idx3-ubyte"}) {
    gzFile f = gzopen((path + name).c_str(), "rb");
    if (f == nullptr) continue;
    unsigned char head[16];
    const int n = gzread(f, head, sizeof(head));
    gzclose(f);
    if (n != static_cast<int>(sizeof(head))) return {};
    auto word = [&](int at) {
      return (uint32_t{head[at]} << 24) | (uint32_t{head[at + 1]} << 16) | (uint32_t{head[at + 2]} << 8) |
             uint32_t{head[at + 3]};
    };
    const uint32_t rows = word(8), cols = word(12);
    if (word(0) != 0x00000803u || rows == 0 || cols == 0 || rows > 65536 || cols > 65536) return {};
    return {1, static_cast<int64_t>(rows), static_cast<int64_t>(cols)};
  }
  return {};
}

void SemanticIssues(const Json& doc, const PipelineLimits& limits, Pipeline* plan, Issues& issues) {
  for (const auto& [name, stage] : doc.at("stages").items()) {
    if (stage.contains("partitioning") && stage["partitioning"].value("type", "random") == "importance" &&
        stage.value("ranks", 1) < 2) {
      issues.push_back({PointerAppend(PointerAppend("/stages", name), "partitioning"),
                        "importance partitioning shares the data among data-parallel ranks: it needs \"ranks\" of "
                        "2 or more"});
    }
    if (stage.value("device", "auto") == "cuda" && !limits.cuda) {
      issues.push_back({PointerAppend(PointerAppend("/stages", name), "device"),
                        "\"cuda\" needs a LibTorch with CUDA, and this Baton's worker is built against one without "
                        "it (Debian's libtorch is CPU-only; README \"GPUs\" says how to build against a CUDA "
                        "LibTorch); use \"cpu\", or \"auto\" to take a GPU where there is one"});
    }
  }
  if (const auto e = doc.find("executor"); e != doc.end() && e->contains("extra_args")) {
    const Json& extra = e->at("extra_args");
    for (size_t k = 0; k < extra.size(); ++k) {
      const std::string arg = extra[k].get<std::string>();
      if (IsReservedSbatchOption(arg)) {
        issues.push_back({"/executor/extra_args/" + std::to_string(k),
                          arg.substr(0, arg.find('=')) + " is set by Baton itself" +
                              " (use the executor's own fields for partition, account, cpus_per_task, mem and time_limit)"});
      }
    }
  }
  const Json& stages = doc.at("stages");
  std::map<std::string, std::vector<std::string>> deps = Dependencies(stages, issues);
  const std::vector<std::string> order = DependencyOrder(deps, issues);
  if (order.empty()) return;  // a cycle (a pipeline has at least one stage)
  std::map<std::string, std::set<std::string>> upstream;
  for (const auto& name : order) {
    auto& up = upstream[name];
    for (const auto& d : deps[name]) {
      up.insert(d);
      up.insert(upstream[d].begin(), upstream[d].end());
    }
  }
  std::map<std::string, std::string> data_stage;
  // The shape of one example of the data a stage trains on (read once per
  // prepare stage); empty when unknown.
  std::map<std::string, std::vector<int64_t>> example_shapes;
  auto input_shape = [&](const std::string& stage) -> std::vector<int64_t> {
    auto it = data_stage.find(stage);
    if (it == data_stage.end()) return {};
    auto [shape, added] = example_shapes.try_emplace(it->second);
    if (added) shape->second = ExampleShape(stages.at(it->second));
    return shape->second;
  };
  for (const auto& name : order) {
    const Json& stage = stages.at(name);
    std::string type = stage.value("type", "");
    std::string sp = StagePtr(name);
    if (Is(type, StageType::kPrepare)) {
      const Json& dataset = stage["dataset"];
      const std::string path = dataset.value("path", "");
      const std::string format = dataset.value("format", "idx");
      const bool csv = format == "csv";
      const bool file = csv || format == "npz";  // else a folder
      const bool images = format == "image_folder";
      const bool arrays = format == "npy" || format == "npz";
      std::error_code ec;
      CheckWrittenUpstream(stages, name, upstream[name], path, sp + "/dataset/path", issues);
      if (IsCommandOut(stages, upstream[name], path)) {
        // Written by a command stage upstream: it exists once that has run.
      } else if (file && !std::filesystem::is_regular_file(path, ec)) {
        issues.push_back({sp + "/dataset/path", "no such file: " + path});
      } else if (!file && !std::filesystem::is_directory(path, ec)) {
        issues.push_back({sp + "/dataset/path", "no such directory: " + path});
      }
      if (!csv && dataset.contains("label_column")) {
        issues.push_back({sp + "/dataset/label_column", "is a setting of the \"csv\" format only"});
      }
      if (format == "idx" && stage.contains("test_fraction")) {
        issues.push_back({sp + "/test_fraction", "is not a setting of the \"idx\" format (idx files have a test split)"});
      }
      for (const char* key : {"image_size", "channels"}) {
        if (!images && dataset.contains(key)) {
          issues.push_back({sp + "/dataset/" + key, "is a setting of the \"image_folder\" format only"});
        }
      }
      for (const char* key : {"x", "y", "x_test", "y_test"}) {
        if (!arrays && dataset.contains(key)) {
          issues.push_back({sp + "/dataset/" + key, "is a setting of the \"npy\" and \"npz\" formats only"});
        }
      }
      if ((format == "idx" || csv) && stage.contains("split_seed")) {
        issues.push_back({sp + "/split_seed", "is a setting of the \"image_folder\", \"npy\" and \"npz\" formats "
                                              "only (idx and csv splits follow the files' order)"});
      }
      if (!(format == "idx" || csv)) {
        for (const char* key : {"train_subset", "test_subset"}) {
          if (stage.contains(key)) {
            issues.push_back({sp + "/" + key, "is a setting of the \"idx\" and \"csv\" formats only"});
          }
        }
      }
      continue;
    }
    if (Is(type, StageType::kCommand)) {
      CheckCommand(stages, name, upstream[name], issues);
      continue;
    }
    std::vector<std::string> preps;
    for (const auto& u : upstream[name]) {
      if (Is(stages.at(u).value("type", ""), StageType::kPrepare)) preps.push_back(u);
    }
    if (preps.size() != 1) {
      issues.push_back({sp + "/depends_on",
                        preps.empty() ? "needs a prepare stage upstream for its data"
                                      : "has " + std::to_string(preps.size()) +
                                            " prepare stages upstream; exactly one must feed it data"});
    } else {
      data_stage[name] = preps.front();
    }
    if (Is(type, StageType::kTune)) {
      std::string sampler = stage.contains("sampler") ? stage["sampler"].value("type", "random") : "random";
      CheckSearchSpace(sp + "/search_space", stage["search_space"], sampler, issues);
      const Json fixed = stage.value("hyperparameters", Json::object());
      for (const auto& [k, v] : fixed.items()) {
        if (stage["search_space"].contains(k)) {
          issues.push_back({PointerAppend(sp + "/hyperparameters", k),
                            Quote(k) + " is also in search_space; give it one place"});
        }
      }
      CheckModelKind(sp + "/model", stage["model"], issues);
      CheckModelRefs(sp + "/model", stage["model"], TuneHyperparameterNames(stage), issues);
      CheckModelSize(sp + "/model", stage["model"], fixed, stage["search_space"], input_shape(name),
                     limits.max_model_bytes, issues);
      CheckPruner(sp, stage, issues);
    } else if (Is(type, StageType::kTrain)) {
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
        CheckModelKind(sp + "/model", stage["model"], issues);
        CheckModelRefs(sp + "/model", stage["model"], known, issues);
        CheckModelSize(sp + "/model", stage["model"], tune ? tune->value("hyperparameters", Json::object()) : hp,
                       tune ? tune->value("search_space", Json::object()) : Json::object(), input_shape(name),
                       limits.max_model_bytes, issues);
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
    } else if (Is(type, StageType::kAblate)) {
      CheckAblate(stages, name, stage, upstream[name], data_stage.count(name) ? data_stage[name] : "", issues);
      const Json base = stage.value("base", Json::object());
      if (base.contains("model")) {
        CheckModelKind(sp + "/base/model", base["model"], issues);
        CheckModelSize(sp + "/base/model", base["model"], base.value("hyperparameters", Json::object()),
                       Json::object(), input_shape(name), limits.max_model_bytes, issues);
      }
      CheckInitFrom(stages, name, stage, upstream[name], issues);
    }
  }
  CheckCommandOutsUnique(stages, issues);
  if (plan != nullptr) {
    plan->order = order;
    plan->depends_on = deps;
    plan->data_stage = data_stage;
  }
}

}  // namespace spec_detail
}  // namespace baton::orchestrator
