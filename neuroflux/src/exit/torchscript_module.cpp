#include "exit/torchscript_module.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <iomanip>
#include <limits>
#include <optional>
#include <set>
#include <sstream>

#include "models/blocks.h"
#include "neuroflux/exit/exit_ensemble.h"
#include "neuroflux/models/bitmap_layers.h"
#include "neuroflux/rowcentric/row_centric.h"

namespace neuroflux {
namespace {

namespace nn = torch::nn;

// ---- TorchScript literals --------------------------------------------------------------------

std::string ints(at::IntArrayRef values) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < values.size(); ++i) out << (i ? ", " : "") << values[i];
  out << "]";
  return out.str();
}

/// A float literal that reads back as the same double.
std::string real(double value) {
  TORCH_CHECK(std::isfinite(value), "TorchScript export: non-finite constant ", value);
  std::ostringstream out;
  out << std::setprecision(std::numeric_limits<double>::max_digits10) << value;
  std::string s = out.str();
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string boolean(bool value) { return value ? "True" : "False"; }

bool is_identifier(const std::string& name) {
  static const std::set<std::string> keywords = {
      "False",   "None",     "True",     "and",    "as",   "assert", "async",  "await",
      "break",   "class",    "continue", "def",    "del",  "elif",   "else",   "except",
      "finally", "for",      "from",     "global", "if",   "import", "in",     "is",
      "lambda",  "nonlocal", "not",      "or",     "pass", "raise",  "return", "try",
      "while",   "with",     "yield",    "self",   "x",    "torch"};
  if (name.empty() || keywords.count(name) != 0 ||
      std::isdigit(static_cast<unsigned char>(name[0])))
    return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

/// How `forward` code refers to the child `name`: self.conv1, or getattr(self, "0") for the
/// numbered children of a Sequential.
std::string child(const std::string& name) {
  return is_identifier(name) ? "self." + name : "getattr(self, \"" + name + "\")";
}

/// self.<tensor> when `tensor` is defined (registered on the module), None otherwise.
std::string tensor_or_none(const at::Tensor& tensor, const std::string& name) {
  return tensor.defined() ? "self." + name : "None";
}

// ---- one forward per layer type ---------------------------------------------------------------

/// The body of `def forward(self, x: Tensor) -> Tensor:` for `module`, one statement per line,
/// or nullopt when the layer type has no translation. `why` says what is missing then.
std::optional<std::string> forward_body(const nn::Module& module, std::string& why) {
  const nn::Module* m = &module;

  // Containers: their children in order.
  if (const auto* seq = dynamic_cast<const nn::SequentialImpl*>(m)) {
    std::string body;
    for (const auto& item : seq->named_children())
      body += "x = " + child(item.key()) + ".forward(x)\n";
    return body + "return x\n";
  }
  // ResNet's basic block. A row-centric block runs conv1 - ReLU - conv2 band by band on the
  // conv2d_rows operator; the result is the plain path's, which is what is written here.
  if (const auto* block = dynamic_cast<const BasicBlockImpl*>(m)) {
    std::string body = "y = self.conv1.forward(x)\n";
    if (block->bn1) body += "y = self.bn1.forward(y)\n";
    body += "y = self.relu1.forward(y)\n";
    body += "y = self.conv2.forward(y)\n";
    if (block->bn2) body += "y = self.bn2.forward(y)\n";
    body += block->has_projection() ? "y = y + self.shortcut.forward(x)\n" : "y = y + x\n";
    return body + "return self.relu2.forward(y)\n";
  }
  if (const auto* inverted = dynamic_cast<const InvertedResidualImpl*>(m)) {
    return std::string("y = self.body.forward(x)\n") +
           (inverted->uses_residual() ? "return x + y\n" : "return y\n");
  }
  // The exit ensemble: average_softmax_log of the two heads (exit/exit_ensemble.h).
  if (dynamic_cast<const EnsembleTailImpl*>(m) != nullptr) {
    return "a = self.exit_head.forward(x)\n"
           "b = self.next_head.forward(self.next_unit.forward(x))\n"
           "both = torch.stack([torch.log_softmax(a, 1), torch.log_softmax(b, 1)])\n"
           "return torch.logsumexp(both, [0]) - " + real(std::log(2.0)) + "\n";
  }
  if (dynamic_cast<const rowcentric::RowCentricStackImpl*>(m) != nullptr)
    return std::string("return self.layers.forward(x)\n");

  // Layers. Conv2dImpl covers ops::PackedConv2d (same parameters, same result).
  if (const auto* conv = dynamic_cast<const nn::Conv2dImpl*>(m)) {
    const auto& o = conv->options;
    if (!c10::get_if<torch::enumtype::kZeros>(&o.padding_mode())) {
      why = "Conv2d with padding_mode other than zeros";
      return std::nullopt;
    }
    std::string padding;
    if (const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding()))
      padding = ints(*pad);
    else if (c10::get_if<torch::enumtype::kSame>(&o.padding()))
      padding = "\"same\"";
    else
      padding = "\"valid\"";
    return "return torch.conv2d(x, self.weight, " + tensor_or_none(conv->bias, "bias") + ", " +
           ints(*o.stride()) + ", " + padding + ", " + ints(*o.dilation()) + ", " +
           std::to_string(o.groups()) + ")\n";
  }
  const auto batch_norm = [](const auto* bn) {
    const auto& o = bn->options;
    // LibTorch's BatchNorm in eval mode: running statistics when it tracks them, the batch's
    // otherwise (training=True without running buffers updates nothing).
    return "return torch.batch_norm(x, " + tensor_or_none(bn->weight, "weight") + ", " +
           tensor_or_none(bn->bias, "bias") + ", " +
           tensor_or_none(bn->running_mean, "running_mean") + ", " +
           tensor_or_none(bn->running_var, "running_var") + ", " +
           boolean(!o.track_running_stats()) + ", " + real(o.momentum().value_or(0.0)) + ", " +
           real(o.eps()) + ", True)\n";
  };
  if (const auto* bn = dynamic_cast<const nn::BatchNorm2dImpl*>(m)) return batch_norm(bn);
  if (const auto* bn = dynamic_cast<const nn::BatchNorm1dImpl*>(m)) return batch_norm(bn);
  // BitmapReLU is ReLU with a 1-bit backward.
  if (dynamic_cast<const nn::ReLUImpl*>(m) != nullptr ||
      dynamic_cast<const ops::BitmapReLUImpl*>(m) != nullptr)
    return std::string("return torch.relu(x)\n");
  if (dynamic_cast<const nn::ReLU6Impl*>(m) != nullptr)
    return std::string("return torch.hardtanh(x, 0.0, 6.0)\n");
  if (const auto* h = dynamic_cast<const nn::HardtanhImpl*>(m))
    return "return torch.hardtanh(x, " + real(h->options.min_val()) + ", " +
           real(h->options.max_val()) + ")\n";
  if (const auto* leaky = dynamic_cast<const nn::LeakyReLUImpl*>(m))
    return "return torch.leaky_relu(x, " + real(leaky->options.negative_slope()) + ")\n";
  if (dynamic_cast<const nn::SigmoidImpl*>(m) != nullptr)
    return std::string("return torch.sigmoid(x)\n");
  if (dynamic_cast<const nn::TanhImpl*>(m) != nullptr) return std::string("return torch.tanh(x)\n");
  // MaxPool2dImpl covers ops::PackedMaxPool2d.
  if (const auto* pool = dynamic_cast<const nn::MaxPool2dImpl*>(m)) {
    const auto& o = pool->options;
    return "return torch.max_pool2d(x, " + ints(*o.kernel_size()) + ", " + ints(*o.stride()) +
           ", " + ints(*o.padding()) + ", " + ints(*o.dilation()) + ", " + boolean(o.ceil_mode()) +
           ")\n";
  }
  if (const auto* pool = dynamic_cast<const nn::AvgPool2dImpl*>(m)) {
    const auto& o = pool->options;
    const std::string divisor =
        o.divisor_override() ? std::to_string(*o.divisor_override()) : std::string("None");
    return "return torch.avg_pool2d(x, " + ints(*o.kernel_size()) + ", " + ints(*o.stride()) +
           ", " + ints(*o.padding()) + ", " + boolean(o.ceil_mode()) + ", " +
           boolean(o.count_include_pad()) + ", " + divisor + ")\n";
  }
  if (const auto* pool = dynamic_cast<const nn::AdaptiveAvgPool2dImpl*>(m)) {
    // An unset side keeps the input's size, as LibTorch's module does.
    const auto& size = pool->options.output_size();
    const auto side = [&](size_t i, const char* dim) {
      return size->at(i) ? std::to_string(*size->at(i)) : "x.size(" + std::string(dim) + ")";
    };
    return "return torch.adaptive_avg_pool2d(x, [" + side(0, "-2") + ", " + side(1, "-1") + "])\n";
  }
  if (const auto* flatten = dynamic_cast<const nn::FlattenImpl*>(m))
    return "return torch.flatten(x, " + std::to_string(flatten->options.start_dim()) + ", " +
           std::to_string(flatten->options.end_dim()) + ")\n";
  if (const auto* linear = dynamic_cast<const nn::LinearImpl*>(m))
    return "return torch.linear(x, self.weight, " + tensor_or_none(linear->bias, "bias") + ")\n";
  // Inert at inference.
  if (dynamic_cast<const nn::DropoutImpl*>(m) != nullptr ||
      dynamic_cast<const nn::Dropout2dImpl*>(m) != nullptr ||
      dynamic_cast<const nn::Dropout3dImpl*>(m) != nullptr ||
      dynamic_cast<const nn::AlphaDropoutImpl*>(m) != nullptr ||
      dynamic_cast<const nn::FeatureAlphaDropoutImpl*>(m) != nullptr ||
      dynamic_cast<const nn::IdentityImpl*>(m) != nullptr)
    return std::string("return x\n");

  why = module.name() + " has no TorchScript translation";
  return std::nullopt;
}

/// The first module under `module` (path `path`) without a forward translation, or "".
std::string first_unsupported(const nn::Module& module, const std::string& path) {
  std::string why;
  if (!forward_body(module, why)) return (path.empty() ? "the network" : path) + ": " + why;
  for (const auto& item : module.named_children()) {
    const std::string found =
        first_unsupported(*item.value(), path.empty() ? item.key() : path + "." + item.key());
    if (!found.empty()) return found;
  }
  return "";
}

/// A class name for the module's TorchScript type: the LibTorch class without namespace or the
/// "Impl" suffix ("Conv2d", "BasicBlock", "PackedConv2d").
std::string type_name(const nn::Module& module) {
  std::string name = module.name();
  const size_t colon = name.rfind("::");
  if (colon != std::string::npos) name = name.substr(colon + 2);
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "Impl") == 0)
    name.resize(name.size() - 4);
  std::string clean;
  for (char c : name) clean += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  if (clean.empty() || std::isdigit(static_cast<unsigned char>(clean[0]))) clean = "M" + clean;
  return clean;
}

const std::string kNamespace = "__torch__.neuroflux.export.";

torch::jit::Module build(const nn::Module& module, const std::string& class_name,
                         const std::shared_ptr<torch::jit::CompilationUnit>& cu,
                         bool with_forward) {
  // One class per instance, since each has its own forward (two Conv2d differ in stride,
  // padding, bias): Conv2d, Conv2d_1, ... All sit in one namespace, so the archive holds one
  // code file (__torch__/neuroflux/export.py) rather than one per mangled name.
  std::string unique = class_name;
  for (int n = 1; cu->get_class(c10::QualifiedName(kNamespace + unique)) != nullptr; ++n)
    unique = class_name + "_" + std::to_string(n);
  torch::jit::Module scripted(c10::QualifiedName(kNamespace + unique), cu);
  // Module::train/eval and Python's .train()/.eval() set this attribute on every submodule.
  scripted.register_attribute("training", c10::BoolType::get(), false);
  for (const auto& p : module.named_parameters(/*recurse=*/false))
    scripted.register_parameter(p.key(), p.value().detach().to(torch::kCPU), /*is_buffer=*/false);
  for (const auto& b : module.named_buffers(/*recurse=*/false))
    scripted.register_buffer(b.key(), b.value().detach().to(torch::kCPU));
  // Children first: the parent's forward calls theirs, which must exist when it is compiled.
  for (const auto& item : module.named_children())
    scripted.register_module(item.key(),
                             build(*item.value(), type_name(*item.value()), cu, with_forward));
  if (with_forward) {
    std::string why;
    const std::string body = *forward_body(module, why);
    std::string source = "def forward(self, x: Tensor) -> Tensor:\n";
    std::istringstream lines(body);
    for (std::string line; std::getline(lines, line);) source += "    " + line + "\n";
    scripted.define(source);
  }
  return scripted;
}

}  // namespace

ScriptedNetwork script_network(const nn::Module& network) {
  ScriptedNetwork result;
  result.unsupported = first_unsupported(network, "");
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  result.module = build(network, "ExitNetwork", cu, result.unsupported.empty());
  result.module.eval();
  return result;
}

}  // namespace neuroflux
