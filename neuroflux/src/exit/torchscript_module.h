// The exported model as TorchScript: a torch::jit::Module that mirrors an exit network's module
// tree (same child names, so its named_parameters()/named_buffers() are the Sequential's:
// "unit0.0.weight", "head.1.running_mean", ...) with a `forward` method written out in TorchScript
// for every layer type the zoo and its heads use. Private to the library: only exported_model.cpp
// needs it, and it keeps torch/script.h out of the public headers.
//
// Why the forward is written out rather than traced: a trace of the C++ Sequential records what
// its forward calls, and in NeuroFlux that includes the custom operators (neuroflux::bitmap_relu,
// packed_conv2d, packed_max_pool2d, conv2d_rows of row-centric blocks), which plain LibTorch and
// Python do not have; the tracer also turns the weights into graph constants (no state_dict to
// inspect or fine-tune) and can bake the traced batch's sizes into the graph. Written-out code
// uses only aten operators, keeps the weights as named parameters and buffers, and runs on any
// batch size; each layer maps to the one aten call its LibTorch module makes in eval mode, so the
// outputs equal the C++ network's (bitmap layers are ReLU / conv / max-pool with a different
// backward; row-centric stacks are the plain conv stack run band by band).
#pragma once

#include <torch/csrc/jit/api/module.h>
#include <torch/nn/module.h>

#include <string>

namespace neuroflux {

struct ScriptedNetwork {
  torch::jit::Module module;
  /// Empty when every layer has a TorchScript forward; otherwise the first one that has none
  /// ("unit2.0: MyLayerImpl"): the module then holds the weights but no `forward` method.
  std::string unsupported;
};

/// `network` (typically the exit Sequential "unit0".."unitK", "head") as a TorchScript module in
/// eval mode, its tensors detached and on the CPU. Inference only: batch norm always uses its
/// running statistics (as in eval mode), dropout is the identity, whatever train() is set to.
ScriptedNetwork script_network(const torch::nn::Module& network);

}  // namespace neuroflux
