// ModelImpl over a TorchScript module (model.h). The only translation unit
// that includes <torch/script.h>.
#include <torch/script.h>

#include <sstream>

#include "common/error.h"
#include "stages/model.h"

namespace baton::stages {

struct ModelImpl::Script {
  torch::jit::Module module;
};

namespace {

std::string ShapeText(c10::IntArrayRef shape, bool batch) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    text += (i == 0 ? "" : ",") + (i == 0 && batch ? std::string("N") : std::to_string(shape[i]));
  }
  return text + "]";
}

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

Error FileError(const TorchScriptFile& file, const std::string& what) {
  return Error(ErrorCode::kInvalidArgument, "TorchScript model " + file.name + ": " + what, "/torchscript");
}

// Registers the parameters and buffers that `script` holds itself (not its
// submodules') on `mirror`, sharing their tensors, then mirrors each
// submodule as a child module.
void Mirror(const torch::jit::Module& script, torch::nn::Module& mirror) {
  for (const auto& p : script.named_parameters(/*recurse=*/false)) {
    mirror.register_parameter(p.name, p.value, p.value.requires_grad());
  }
  for (const auto& b : script.named_buffers(/*recurse=*/false)) {
    mirror.register_buffer(b.name, b.value);
  }
  for (const auto& child : script.named_children()) {
    auto sub = std::make_shared<torch::nn::Module>(child.name);
    Mirror(child.value, *sub);
    mirror.register_module(child.name, sub);
  }
}

// Sets each hyperparameter that names a top-level float, int or bool
// attribute; returns what was set.
Json SetAttributes(const TorchScriptFile& file, torch::jit::Module& module, const Json& hyperparameters) {
  Json set = Json::object();
  if (!hyperparameters.is_object()) return set;
  for (const auto& [name, value] : hyperparameters.items()) {
    if (name == "training" || !module.type()->hasAttribute(name)) continue;
    const c10::IValue current = module.attr(name);
    if (current.isDouble()) {
      if (!value.is_number()) {
        throw FileError(file, "hyperparameter \"" + name + "\" sets a float attribute and must be a number, got " +
                                  value.dump());
      }
      module.setattr(name, value.get<double>());
    } else if (current.isInt()) {
      if (!value.is_number_integer() &&
          !(value.is_number() && value.get<double>() == static_cast<double>(static_cast<int64_t>(value.get<double>())))) {
        throw FileError(file, "hyperparameter \"" + name + "\" sets an int attribute and must be an integer, got " +
                                  value.dump());
      }
      module.setattr(name, static_cast<int64_t>(value.get<double>()));
    } else if (current.isBool()) {
      if (!value.is_boolean()) {
        throw FileError(file, "hyperparameter \"" + name + "\" sets a bool attribute and must be true or false, got " +
                                  value.dump());
      }
      module.setattr(name, value.get<bool>());
    } else {
      continue;  // a tensor, submodule or other attribute: not a hyperparameter's
    }
    set[name] = value;
  }
  return set;
}

}  // namespace

ModelImpl::ModelImpl(const TorchScriptFile& file, const std::vector<int64_t>& input_shape, int64_t num_classes,
                     const Json& hyperparameters) {
  script_ = std::make_shared<Script>();
  try {
    std::istringstream in(file.bytes);
    script_->module = torch::jit::load(in, torch::Device(torch::kCPU));
  } catch (const c10::Error& e) {
    throw FileError(file, "cannot be loaded (save it with torch.jit.script(model).save(path) or "
                          "torch.jit.trace): " + FirstLine(e.what_without_backtrace()));
  }
  torch::jit::Module& module = script_->module;
  if (!module.find_method("forward")) throw FileError(file, "has no forward method");
  attributes_set_ = SetAttributes(file, module, hyperparameters);
  Mirror(module, *this);
  // Conv weights channels-last, as a layer list keeps them (model.cpp):
  // only the memory layout changes, never the values or checkpoint bytes.
  for (auto& p : parameters(/*recurse=*/true)) {
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
  }

  torch::NoGradGuard no_grad;
  std::vector<int64_t> batch_shape = {2};
  batch_shape.insert(batch_shape.end(), input_shape.begin(), input_shape.end());
  const std::string input_text = ShapeText(batch_shape, /*batch=*/true);
  train(false);
  c10::IValue out;
  try {
    out = module.forward({torch::zeros(batch_shape)});
  } catch (const c10::Error& e) {
    throw FileError(file, "cannot take the dataset's input " + input_text + ": " +
                              FirstLine(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw FileError(file, "cannot take the dataset's input " + input_text + ": " + FirstLine(e.what()));
  }
  train(true);
  if (!out.isTensor()) {
    throw FileError(file, "forward must return one tensor, but returns " + out.tagKind());
  }
  const torch::Tensor logits = out.toTensor();
  output_shape_.assign(logits.sizes().begin() + (logits.dim() > 0 ? 1 : 0), logits.sizes().end());
  if (num_classes > 0 && (logits.dim() != 2 || logits.size(0) != 2 || logits.size(1) != num_classes)) {
    throw FileError(file, "its output for input " + input_text + " is " +
                              ShapeText(logits.sizes(), /*batch=*/logits.dim() > 0 && logits.size(0) == 2) +
                              ", but the dataset has " + std::to_string(num_classes) + " classes and needs [N," +
                              std::to_string(num_classes) + "]");
  }
}

void ModelImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (script_) script_->module.train(on);
}

torch::Tensor ModelImpl::ScriptForward(torch::Tensor x) {
  // Images run channels-last, as through a layer list (model.cpp). A
  // 1-channel image is contiguous in both layouts and its strides then say
  // NCHW, so its first convolution, and every op after it, would run NCHW:
  // give it channels-last strides (a view of the same bytes), which the
  // compiled ops then propagate.
  if (x.dim() == 4) {
    x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    if (x.size(1) == 1 && x.is_contiguous()) x = x.as_strided(x.sizes(), {x.size(2) * x.size(3), 1, x.size(3), 1});
  }
  return script_->module.forward({std::move(x)}).toTensor();
}

}  // namespace baton::stages
