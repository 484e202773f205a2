// The row-centric executor: one autograd node for a whole conv stack whose forward runs the
// bands under no-grad and keeps only the stack's input (and, for two-phase, the boundary rows),
// and whose backward recomputes one band at a time with autograd on. See
// <neuroflux/rowcentric/row_centric.h> for the schemes.
#include <ATen/ops/avg_pool2d.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/autograd.h>

#include <functional>
#include <limits>
#include <memory>

#include "csrc/conv2d_rows/conv2d_rows_logic.h"
#include "neuroflux/ops/conv2d_rows.h"
#include "neuroflux/rowcentric/row_centric.h"
#include "rowcentric/row_plan.h"

namespace neuroflux::rowcentric {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Variable;
using torch::autograd::variable_list;

/// A band of a map: rows [row0, row0 + t.size(2)) of it.
struct Rows {
  at::Tensor t;
  int64_t row0 = 0;
  rows::Span span() const { return rows::Span{row0, row0 + t.size(2)}; }
  at::Tensor narrow(rows::Span s) const { return t.narrow(2, s.begin - row0, s.size()); }
};

/// Output rows `out` of layer `l` from the band `x` of its input map (of `height` rows).
/// `owned`: x was made by this band and nothing else reads it, so ReLU may work in place.
at::Tensor run_layer(const RowLayer& l, const Rows& x, int64_t height, rows::Span out,
                     bool owned) {
  switch (l.kind) {
    case RowLayer::Kind::kConv:
      return ops::conv2d_rows(x.t, l.weight, l.bias, l.stride, l.padding, l.dilation, l.groups,
                              x.row0, height, out.begin, out.end);
    case RowLayer::Kind::kReLU:
      if (owned && x.span().begin == out.begin && x.span().end == out.end) {
        at::Tensor t = x.t;
        return at::relu_(t);
      }
      return at::relu(x.narrow(out));
    case RowLayer::Kind::kMaxPool:
    case RowLayer::Kind::kAvgPool: {
      const rows::Window w{l.kernel[0], l.stride[0], l.padding[0], l.dilation[0]};
      const rows::Span raw = rows::raw_input_rows(w, out);
      const rows::Span real = rows::input_rows(w, out, height);
      at::Tensor v = x.narrow(real);
      // Pools take symmetric padding only, so the map's edge rows a band reaches are padded
      // explicitly (a copy of an edge band's few rows): -inf for max, which never wins, zeros
      // for average (counted, as ATen counts padding with count_include_pad).
      const int64_t top = real.begin - raw.begin, bottom = raw.end - real.end;
      const bool max = l.kind == RowLayer::Kind::kMaxPool;
      if (top > 0 || bottom > 0) {
        v = at::constant_pad_nd(v, {0, 0, top, bottom},
                                max ? -std::numeric_limits<double>::infinity() : 0.0);
      }
      const std::vector<int64_t> pad{0, l.padding[1]};
      at::Tensor y = max ? at::max_pool2d(v, l.kernel, l.stride, pad, l.dilation, l.ceil_mode)
                         : at::avg_pool2d(v, l.kernel, l.stride, pad, l.ceil_mode,
                                          l.count_include_pad, l.divisor_override);
      TORCH_INTERNAL_ASSERT(y.size(2) == out.size(), l.name, ": pooled ", y.size(2),
                            " rows for a band of ", out.size());
      return y;
    }
  }
  TORCH_INTERNAL_ASSERT(false, "unknown row layer kind");
}

/// What a band walk does besides computing: where the two-phase halos come from, and what
/// happens to each layer's new rows.
struct BandHooks {
  /// Rows `span` of layer L's input that earlier bands computed (two-phase only).
  std::function<at::Tensor(int64_t L, rows::Span span)> halo;
  /// Called with layer L's new rows right after they are computed.
  std::function<void(int64_t L, const Rows& rows)> on_rows;
};

/// Runs one band through the stack from `input`, rows band.in[0] of the stack's input; returns
/// the last layer's rows. `inplace`: ReLU may overwrite the band it reads when this band made it
/// (never the stack's input). Only for no-grad walks: under autograd a hook may hold a view of
/// a layer's rows as a gradient root, which an in-place ReLU would turn into the ReLU's rows.
Rows walk_band(const std::vector<RowLayer>& layers, const rowplan::StackShape& shape,
               const rowplan::Band& band, const Rows& input, bool inplace,
               const BandHooks& hooks) {
  const int64_t n = shape.layers();
  const int64_t batch = input.t.size(0);
  Rows cur = input;
  bool owned = false;
  for (int64_t L = 0; L < n; ++L) {
    if (L > 0 && !band.halo[L].empty()) {
      cur = Rows{at::cat({hooks.halo(L, band.halo[L]), cur.t}, 2), band.halo[L].begin};
      owned = true;
    }
    Rows next;
    if (band.out[L].empty()) {
      next = Rows{at::zeros({batch, shape.channels[L + 1], 0, shape.widths[L + 1]},
                            input.t.options()),
                  band.out[L].begin};
    } else {
      next = Rows{run_layer(layers[L], cur, shape.heights[L], band.out[L], inplace && owned),
                  band.out[L].begin};
    }
    owned = true;
    if (hooks.on_rows) hooks.on_rows(L, next);
    cur = std::move(next);
  }
  return cur;
}

/// Everything forward and backward share; built once per call, carried to backward in a capsule.
struct StackRun : torch::CustomClassHolder {
  std::vector<RowLayer> layers;
  RowScheme scheme;
  int64_t stripes;
  size_t param_count = 0;   ///< parameters passed to the autograd node after the input
};

/// Grad of rows of one layer's output handed up from later bands' halos (two-phase backward).
struct PendingGrad {
  Rows g;
  void add(rows::Span span, const at::Tensor& grad) {
    if (!g.t.defined()) {
      g = Rows{grad, span.begin};
      return;
    }
    const rows::Span have = g.span();
    const rows::Span all{std::min(have.begin, span.begin), std::max(have.end, span.end)};
    Rows merged{at::zeros({grad.size(0), grad.size(1), all.size(), grad.size(3)}, grad.options()),
                all.begin};
    merged.narrow(have).add_(g.t);
    merged.narrow(span).add_(grad);
    g = std::move(merged);
  }
  /// The pending rows inside `span`, removed from what is pending; undefined when none.
  std::pair<rows::Span, at::Tensor> take(rows::Span span) {
    if (!g.t.defined()) return {rows::Span{}, at::Tensor()};
    const rows::Span have = g.span();
    const rows::Span both{std::max(have.begin, span.begin), std::min(have.end, span.end)};
    if (both.empty()) return {rows::Span{}, at::Tensor()};
    at::Tensor taken = g.narrow(both);
    // Bands run bottom to top, so what stays pending lies above `span`.
    TORCH_INTERNAL_ASSERT(both.end == have.end);
    g = have.begin < both.begin ? Rows{g.narrow(rows::Span{have.begin, both.begin}), have.begin}
                                : Rows{};
    return {both, taken};
  }
};

class RowCentricFunction : public torch::autograd::Function<RowCentricFunction> {
 public:
  static Variable forward(AutogradContext* ctx, const Variable& x, at::TensorList params,
                          const c10::intrusive_ptr<StackRun>& run) {
    const auto shape = rowplan::shape_of(run->layers, x.size(1), x.size(2), x.size(3));
    const auto bands = rowplan::plan_bands(shape, run->stripes, run->scheme);
    const int64_t n = shape.layers();
    at::Tensor out = at::empty({x.size(0), shape.channels[n], shape.heights[n], shape.widths[n]},
                               x.options());
    // Two-phase: per layer input, the rows later bands still need (the tail of what the bands
    // so far computed), and every band's halo, saved for backward.
    std::vector<Rows> tails(n);
    c10::List<at::Tensor> halos;
    std::vector<std::vector<int64_t>> halo_index(bands.size(), std::vector<int64_t>(n, -1));
    for (size_t b = 0; b < bands.size(); ++b) {
      BandHooks hooks;
      hooks.halo = [&](int64_t L, rows::Span span) {
        at::Tensor h = tails[L].narrow(span);
        halo_index[b][L] = static_cast<int64_t>(halos.size());
        halos.push_back(h);
        return h;
      };
      hooks.on_rows = [&](int64_t L, const Rows& rows) {
        if (L + 1 >= n || run->scheme != RowScheme::kTwoPhase) return;
        // Keep the rows of layer L's output that this band's or a later band's halo reads (this
        // band's too: its halo is taken only after this call). Halos only move down.
        int64_t keep = rows.span().end;
        for (size_t later = b; later < bands.size(); ++later) {
          if (!bands[later].halo[L + 1].empty()) {
            keep = std::min(keep, bands[later].halo[L + 1].begin);
            break;
          }
        }
        Rows& tail = tails[L + 1];
        std::vector<at::Tensor> parts;
        int64_t row0 = -1;
        if (tail.t.defined()) {
          const rows::Span old{std::max(keep, tail.row0), tail.span().end};
          if (!old.empty()) {
            parts.push_back(tail.narrow(old));
            row0 = old.begin;
          }
        }
        const rows::Span fresh{std::max(keep, rows.row0), rows.span().end};
        if (!fresh.empty()) {
          parts.push_back(rows.narrow(fresh));
          if (row0 < 0) row0 = fresh.begin;
        }
        // A copy, so the tail never pins a whole band (and survives an in-place ReLU).
        tail = parts.empty() ? Rows{} : Rows{at::cat(parts, 2), row0};
      };
      const Rows input{x.narrow(2, bands[b].in[0].begin, bands[b].in[0].size()),
                       bands[b].in[0].begin};
      const Rows last = walk_band(run->layers, shape, bands[b], input, /*inplace=*/true, hooks);
      out.narrow(2, last.row0, last.t.size(2)).copy_(last.t);
    }
    std::vector<at::Tensor> saved{x};
    saved.insert(saved.end(), params.begin(), params.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["halos"] = halos;
    std::vector<int64_t> flat_index;
    for (const auto& per_band : halo_index) flat_index.insert(flat_index.end(), per_band.begin(),
                                                              per_band.end());
    ctx->saved_data["halo_index"] = flat_index;
    ctx->saved_data["run"] = c10::IValue::make_capsule(run);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, const variable_list& grads) {
    TORCH_CHECK(!at::GradMode::is_enabled(),
                "row-centric stack: double backward is not supported (backward was called with "
                "create_graph=true)");
    const auto run = c10::static_intrusive_pointer_cast<StackRun>(
        ctx->saved_data.at("run").toCapsule());
    const auto saved = ctx->get_saved_variables();
    const at::Tensor x = saved[0];
    const auto halos = ctx->saved_data.at("halos").toTensorList();
    const auto halo_index = ctx->saved_data.at("halo_index").toIntVector();
    const auto shape = rowplan::shape_of(run->layers, x.size(1), x.size(2), x.size(3));
    const auto bands = rowplan::plan_bands(shape, run->stripes, run->scheme);
    const int64_t n = shape.layers();
    const at::Tensor grad_out = grads[0].contiguous();
    const bool want_input = ctx->needs_input_grad(0);
    at::Tensor grad_input = want_input ? at::zeros_like(x) : at::Tensor();

    at::AutoGradMode grad_on(true);
    // The bands run on the real parameters, so each band's weight gradients are accumulated
    // in place into .grad as they are computed (torch.utils.checkpoint's reentrant way): a
    // separate running sum would hold the stack's weight gradients a second (and, while adding,
    // a third) time, which on vgg16 is as large as the activations saved.
    const std::vector<RowLayer>& layers = run->layers;
    std::vector<PendingGrad> pending(n);  // per layer output

    for (int64_t b = static_cast<int64_t>(bands.size()) - 1; b >= 0; --b) {
      const rowplan::Band& band = bands[b];
      at::Tensor input_band = x.narrow(2, band.in[0].begin, band.in[0].size()).detach();
      if (want_input) input_band.requires_grad_(true);
      std::vector<at::Tensor> roots, root_grads;
      std::vector<std::pair<int64_t, at::Tensor>> halo_leaves;  // (layer, leaf)
      BandHooks hooks;
      hooks.halo = [&](int64_t L, rows::Span) {
        at::Tensor leaf = halos.get(halo_index[b * n + L]).detach().requires_grad_(true);
        halo_leaves.emplace_back(L, leaf);
        return leaf;
      };
      hooks.on_rows = [&](int64_t L, const Rows& rows) {
        auto [span, g] = pending[L].take(rows.span());
        // Rows computed before the first parameter from an input that needs no gradient have
        // no graph: nothing to hand their gradient to.
        if (g.defined() && !span.empty() && rows.t.requires_grad()) {
          roots.push_back(rows.narrow(span));
          root_grads.push_back(g);
        }
      };
      const Rows last = walk_band(layers, shape, band, Rows{input_band, band.in[0].begin},
                                  /*inplace=*/false, hooks);
      if (last.t.size(2) > 0 && last.t.requires_grad()) {
        roots.push_back(last.t);
        root_grads.push_back(grad_out.narrow(2, last.row0, last.t.size(2)));
      }
      if (roots.empty()) continue;
      torch::autograd::backward(roots, root_grads, /*retain_graph=*/false,
                                /*create_graph=*/false);
      if (want_input && input_band.grad().defined())
        grad_input.narrow(2, band.in[0].begin, band.in[0].size()).add_(input_band.grad());
      for (const auto& [L, leaf] : halo_leaves)
        if (leaf.grad().defined()) pending[L - 1].add(band.halo[L], leaf.grad());
    }
    // The parameters' gradients are already in their .grad: nothing more to hand back.
    variable_list result{grad_input};
    for (size_t p = 0; p < run->param_count; ++p) result.emplace_back();
    result.emplace_back();  // the StackRun argument
    return result;
  }

};

}  // namespace

int64_t row_centric_peak_estimate(const std::vector<RowLayer>& layers, at::IntArrayRef sizes,
                                  int64_t element_size, int64_t stripes) {
  TORCH_CHECK(sizes.size() == 4, "row-centric stack: input must be (N, C, H, W), got ", sizes);
  const auto shape = rowplan::shape_of(layers, sizes[1], sizes[2], sizes[3]);
  const auto bands = rowplan::plan_bands(shape, stripes, RowScheme::kOverlap);
  const int64_t n = shape.layers();
  const int64_t per_sample_io = sizes[1] * sizes[2] * sizes[3] +
                                shape.channels[n] * shape.heights[n] * shape.widths[n];
  // Input, output and their gradients, plus the widest band's maps twice over: the activations
  // autograd keeps while the band recomputes and the gradients flowing back through them.
  return sizes[0] * element_size *
         (2 * per_sample_io + 2 * rowplan::widest_band_elements(shape, bands));
}

int64_t resolve_stripes(const std::vector<RowLayer>& layers, at::IntArrayRef sizes,
                        const RowCentricOptions& options, int64_t free_bytes) {
  TORCH_CHECK(sizes.size() == 4, "row-centric stack: input must be (N, C, H, W), got ", sizes);
  const auto shape = rowplan::shape_of(layers, sizes[1], sizes[2], sizes[3]);
  const int64_t rows_out = shape.heights.back();
  if (options.stripes > 0) return std::min(options.stripes, rows_out);
  // Fewest bands first: a larger band wastes less on halos and runs larger convolutions.
  int64_t smallest = 0;
  for (int64_t s = 1; s <= rows_out; ++s) {
    const int64_t need = row_centric_peak_estimate(layers, sizes, 4, s);
    if (need <= free_bytes) return s;
    smallest = need;
  }
  TORCH_CHECK(false, "row-centric stack: stripes=\"auto\": even one-row bands need about ",
              smallest, " bytes, but only ", free_bytes, " bytes of the budget are free");
}

at::Tensor row_centric_forward(const at::Tensor& x, const std::vector<RowLayer>& layers,
                               const RowCentricOptions& options) {
  TORCH_CHECK(x.defined() && x.dim() == 4, "row-centric stack: input must be (N, C, H, W), got ",
              x.defined() ? x.sizes() : at::IntArrayRef{});
  TORCH_CHECK(!layers.empty(), "row-centric stack: no layers");
  TORCH_CHECK(options.stripes >= 0, "row-centric stack: stripes must be >= 0 (0 = auto), got ",
              options.stripes);
  int64_t free_bytes = std::numeric_limits<int64_t>::max();
  if (options.stripes == 0) {
    TORCH_CHECK(options.free_bytes,
                "row-centric stack: stripes=\"auto\" needs a memory budget (free_bytes in the "
                "options)");
    free_bytes = options.free_bytes(x.device());
  }
  auto run = c10::make_intrusive<StackRun>();
  run->layers = layers;
  run->scheme = options.scheme;
  run->stripes = resolve_stripes(layers, x.sizes(), options, free_bytes);
  std::vector<at::Tensor> params;
  for (const RowLayer& l : layers) {
    if (l.weight.defined()) params.push_back(l.weight);
    if (l.bias.defined()) params.push_back(l.bias);
  }
  run->param_count = params.size();
  return RowCentricFunction::apply(x, at::TensorList(params), run);
}

}  // namespace neuroflux::rowcentric
