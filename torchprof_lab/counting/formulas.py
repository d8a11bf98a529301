"""Cost formulas, one small function per op family.

Conventions (also in docs/counting.md):
- MACs are multiply-accumulates of matrix-class ops only (matmul, convolution, attention);
  FLOPs = 2 x MACs + every other floating-point operation.
- Elementwise ops cost one FLOP per output element, transcendental ones included
  (the convention of DeepSpeed's flops profiler); bias additions are elementwise adds.
- Reductions cost one FLOP per input element; softmax five (max, subtract, exp, sum, divide).
- Normalisation: statistics 4 FLOPs/element (mean 1, variance 3), normalising 2, affine 2;
  inference batch norm uses stored statistics. Norm backward is charged 10 FLOPs/element.
- Fused attention kernels count both matmuls forward; backward counts the four gradient
  matmuls plus the recomputed scores, which the flash and memory-efficient kernels do run.
- Data movement (copies, concatenation, padding, indexing) costs 0 FLOPs but moves bytes;
  views cost nothing at all.
- Integer and bool arithmetic is not floating-point work: elementwise ops charge their FLOPs
  only when their result is floating point, complex or quantized; comparisons and logic ops
  (whose result is bool) when a tensor input is; reductions, norms and softmax by their input.
  Position ids, masks and ``mask.sum()`` cost 0 FLOPs; their bytes still count.
- Recurrent layers run whole as one op (oneDNN's ``mkldnn_rnn_layer`` for ``nn.LSTM`` on the
  CPU, cuDNN's ``_cudnn_rnn``, MIOpen, ``quantized_lstm``/``quantized_gru``). Per token (time
  step x batch element), per layer and direction, with G gates (LSTM 4, GRU 3, RNN 1), hidden
  size H and layer input size I: MACs = the weight matrices' elements, G x H x (I + H) (with
  an LSTM projection P: G x H x (I + P) + P x H). FLOPs = 2 x MACs + 2 x G x H for the two
  biases (when present) + the gate math, as PyTorch's own cell (the meta device decomposes it
  op by op and counts exactly this): LSTM 13 H (4 H adding the two gate pre-activations, 4 H
  sigmoid/tanh, 5 H for c' = f*c + i*g, tanh(c'), o*tanh(c')); GRU 10 H (2 H adds, 2 H
  sigmoids, n = tanh(i_n + r*h_n) 3 H, h' = (h - n)*z + n 3 H); RNN 2 H (add, tanh or relu).
  So an LSTM layer with biases: 4 H (I + H) MACs and 8 H (I + H) + 21 H FLOPs per token.
  Backward (the fused kernels): 2 x the forward MACs (input/state gradients and weight
  gradients; cuDNN without weight gradients: 1 x) and 2 x the forward's gate FLOPs.
- Quantized matmul-class ops (``quantized::linear*``, ``quantized::conv*``, dynamic and
  static): MACs are the int8 MACs, from the same shapes as the float op; the FLOPs column counts
  them as 2 OPs each (the unit of the int8 peak) + 1 per output element for a bias and 1 for a
  fused ReLU or add, so a quantized model counts the MACs and FLOPs of its float original
  (plus 1 FLOP per element to quantize and to dequantize). The packed weight and bias are not
  tensor arguments: their bytes are added to the op's inputs and outputs.
- Bicubic upsampling: 4 x 4 taps per output element, separable: 4 rows interpolated along W
  (4 multiplies + 3 adds each) and then one along H: 35 FLOPs per output element. The
  antialiased ``_aa`` variant widens the window when downsampling to kh = ceil(4 x in/out) taps
  (kw likewise; 4 when upsampling): kh x (2 kw - 1) + (2 kh - 1) FLOPs per output element.
  Backward: 3 FLOPs per tap per output gradient (two weight multiplies, one accumulate): 48.
- ``torchvision::roi_align``: per output element (bin x channel) S bilinear samples of 8
  FLOPs (4 multiplies, 3 adds, 1 accumulate) + 1 divide by S; S = sampling_ratio^2, or with
  adaptive sampling (sampling_ratio <= 0) ceil(roi_h / pooled_h) x ceil(roi_w / pooled_w) per
  RoI, read from the RoIs' values (so on meta it is listed uncounted, never guessed). Backward
  (``_roi_align_backward``): the same per output gradient. Registered when torchvision has
  loaded its ops (see ``library_cost``).
- Pairwise distance (``_pdist_forward``, N x D input, N(N-1)/2 pairs): p = 2 costs 3 D per pair
  (D subtractions, D squares, D - 1 adds, 1 sqrt); p = 1, 0 and inf 3 D - 1 (no root); any
  other p 4 D (subtract, abs, pow per element, D - 1 adds, 1 root). Backward 4 D + 1 per pair.
- ``scatter_add``/``index_add``: one add per source element scattered (+ one multiply each for
  ``index_add``'s alpha != 1); ``scatter_reduce``: one op per source element (+ 1 divide per
  output element for mean).
- ``embedding_bag``: sum: one add per gathered element (indices x D); mean: the adds + one
  divide per output element; max: one comparison per gathered element; per_sample_weights: +
  one multiply per gathered element. Bytes: indices, offsets, the gathered rows and the
  outputs (not the whole table). Backward: one add per gathered element (mean, weights: + 1).
"""

from __future__ import annotations

from math import ceil, inf, prod

import torch
from torch import Tensor

from .registry import OpCost, aten_ops, lookup, register

NO_BYTES = False


def ops_in(namespace: str, *names: str) -> list:
    """The op packets among ``names`` in ``torch.ops.<namespace>`` that this torch has (no in-place twins).

    ``aten_ops`` looks under aten only; quantized ops live under ``torch.ops.quantized``.
    """
    found = []
    space = getattr(torch.ops, namespace)
    for name in names:
        try:
            found.append(getattr(space, name))
        except (AttributeError, RuntimeError):  # not in this build
            continue
    return found


def does_arithmetic(t) -> bool:
    """Whether arithmetic on tensor ``t`` is floating-point (or quantized) work, not integer or bool."""
    dtype = t.dtype
    return dtype.is_floating_point or dtype.is_complex or t.is_quantized


def _result(out):
    """The first tensor of an op's result (the tensor itself, or the first of a tuple or list)."""
    return out if isinstance(out, Tensor) else out[0]


def _tensor_nbytes(values) -> int:
    """Bytes of the tensors in ``values`` and in lists/tuples inside it."""
    n = 0
    for a in values:
        if isinstance(a, Tensor):
            n += a.nbytes
        elif isinstance(a, (list, tuple)):
            n += sum(b.nbytes for b in a if isinstance(b, Tensor))
    return n


def _io_nbytes(args, out) -> int:
    return _tensor_nbytes(args) + _tensor_nbytes(out if isinstance(out, (list, tuple)) else (out,))


# --------------------------------------------------------------------------- bytes rules
def out_bytes(args, kwargs, out) -> int:
    """Creation ops write their output and read nothing."""
    if isinstance(out, Tensor):
        return out.nbytes
    return sum(t.nbytes for t in out if isinstance(t, Tensor))


def _embedding_bytes(args, kwargs, out) -> int:
    # weight rows gathered (= output), indices read, output written
    return args[1].nbytes + 2 * out.nbytes


# --------------------------------------------------------------------------- matmul
@register(*aten_ops("mm"))
def mm(args, kwargs, out):
    a, b = args[0], args[1]
    macs = a.shape[0] * a.shape[1] * b.shape[1]
    return macs, 2 * macs


@register(*aten_ops("addmm"))
def addmm(args, kwargs, out):
    a, b = args[1], args[2]
    macs = a.shape[0] * a.shape[1] * b.shape[1]
    return macs, 2 * macs + out.numel()


@register(*aten_ops("_addmm_activation"))
def addmm_activation(args, kwargs, out):
    macs, flops = addmm(args, kwargs, out)
    return macs, flops + out.numel()


@register(*aten_ops("bmm"))
def bmm(args, kwargs, out):
    a, b = args[0], args[1]
    macs = a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return macs, 2 * macs


@register(*aten_ops("baddbmm"))
def baddbmm(args, kwargs, out):
    a, b = args[1], args[2]
    macs = a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return macs, 2 * macs + out.numel()


@register(*aten_ops("mv", "dot", "vdot"))
def matrix_vector(args, kwargs, out):
    macs = args[0].numel()
    return macs, 2 * macs


# --------------------------------------------------------------------------- convolution
def conv_macs(input_shape, weight_shape, out_shape, transposed: bool) -> int:
    """MACs of a (grouped, any-dims, possibly transposed) convolution.

    weight is [C_out, C_in/groups, *k] (or [C_in, C_out/groups, *k] transposed), so each
    output (input, when transposed) element takes weight.shape[1] x prod(k) MACs.
    """
    per_element = weight_shape[1] * prod(weight_shape[2:])
    return prod(input_shape if transposed else out_shape) * per_element


@register(*aten_ops("convolution", "_convolution"))
def convolution(args, kwargs, out):
    x, w, bias, transposed = args[0], args[1], args[2], args[6]
    macs = conv_macs(x.shape, w.shape, out.shape, transposed)
    return macs, 2 * macs + (out.numel() if bias is not None else 0)


@register(*aten_ops("convolution_backward"))
def convolution_backward(args, kwargs, out):
    grad_out, x, w, transposed, mask = args[0], args[1], args[2], args[7], args[10]
    fwd = conv_macs(x.shape, w.shape, grad_out.shape, transposed)
    macs = fwd * (int(mask[0]) + int(mask[1]))
    return macs, 2 * macs + (grad_out.numel() if mask[2] else 0)


# --------------------------------------------------------------------------- attention
def _attention_shapes(q, k, v):
    """(batch x query heads, Lq, Lk, E, Ev) for [..., H, L, E] tensors."""
    bh = prod(q.shape[:-2])
    return bh, q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]


@register(*aten_ops(
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_fused_attention_overrideable",
))
def sdpa(args, kwargs, out):
    bh, lq, lk, e, ev = _attention_shapes(args[0], args[1], args[2])
    macs = bh * lq * lk * (e + ev)
    return macs, 2 * macs + 5 * bh * lq * lk


@register(*aten_ops(
    "_scaled_dot_product_flash_attention_for_cpu_backward",
    "_scaled_dot_product_flash_attention_backward",
    "_scaled_dot_product_efficient_attention_backward",
    "_scaled_dot_product_cudnn_attention_backward",
    "_scaled_dot_product_fused_attention_overrideable_backward",
))
def sdpa_backward(args, kwargs, out):
    bh, lq, lk, e, ev = _attention_shapes(args[1], args[2], args[3])
    # recomputed scores (E) + dP = dO V^T (Ev) + dV (Ev) + dQ (E) + dK (E)
    macs = bh * lq * lk * (3 * e + 2 * ev)
    return macs, 2 * macs + 4 * bh * lq * lk


def _mha_cost(query, key, embed_dim: int, num_heads: int):
    """In-projections, both attention matmuls, out-projection, biases and softmax.

    A nested query (the encoder fast path with a padding mask) is one sequence per component,
    each attending over its own length: the sum of their costs.
    """
    if query.is_nested:
        costs = [_mha_lengths(1, q.shape[-2], k.shape[-2], embed_dim, num_heads)
                 for q, k in zip(query.unbind(), key.unbind(), strict=True)]
        return sum(c[0] for c in costs), sum(c[1] for c in costs)
    return _mha_lengths(query.shape[0], query.shape[-2], key.shape[-2], embed_dim, num_heads)


def _mha_lengths(b: int, lq: int, lk: int, e: int, num_heads: int):
    macs = b * (lq * e * e + 2 * lk * e * e + 2 * lq * lk * e + lq * e * e)
    extra = b * (2 * lq * e + 2 * lk * e) + 5 * b * num_heads * lq * lk
    return macs, 2 * macs + extra


@register(*aten_ops("_native_multi_head_attention"))
def native_multi_head_attention(args, kwargs, out):
    """With the weights asked for (the default), the kernel runs the unfused path: q rescaled as
    its bias is added (one FLOP more per q element), a mask applied to every score (one each)
    and, averaged, the weights summed over the heads and divided (one per head per weight): what
    the math path counts on meta."""
    query, key, heads = args[0], args[1], args[4]
    macs, flops = _mha_cost(query, key, args[3], heads)
    given = {**dict(zip(("mask", "need_weights", "average_attn_weights"), args[9:12])), **kwargs}
    if given.get("need_weights", True) and not query.is_nested:
        scores = query.shape[0] * heads * query.shape[-2] * key.shape[-2]
        flops += query.numel() + (scores if given.get("mask") is not None else 0)
        if given.get("average_attn_weights", True):
            flops += scores
    return macs, flops


@register(*aten_ops("_transformer_encoder_layer_fwd"))
def transformer_encoder_layer(args, kwargs, out):
    src, e, heads, ffn_w1 = args[0], args[1], args[2], args[14]
    macs, flops = _mha_cost(src, src, e, heads)
    tokens = src.numel() // e  # a nested src: its real tokens, padding excluded
    ffn = tokens * e * ffn_w1.shape[0] * 2
    # FFN matmuls, their biases and activation, two residual adds, two layer norms
    return macs + ffn, flops + 2 * ffn + tokens * (2 * ffn_w1.shape[0] + e) + tokens * e * (2 + 16)


# --------------------------------------------------------------------------- normalisation
def _per_element(cost: int, index: int = 0):
    """``cost`` FLOPs per element of input ``index``; none when that input is integer or bool."""
    def formula(args, kwargs, out):
        x = args[index]
        return 0, cost * x.numel() if does_arithmetic(x) else 0

    return formula


register(*aten_ops("_native_batch_norm_legit_no_training", "_batch_norm_no_update"))(_per_element(4))
register(*aten_ops(
    "_native_batch_norm_legit", "_batch_norm_with_update", "_batch_norm_with_update_functional",
    "native_layer_norm", "native_group_norm",
))(_per_element(8))


@register(*aten_ops("native_batch_norm", "cudnn_batch_norm", "miopen_batch_norm"))
def native_batch_norm(args, kwargs, out):
    return 0, (8 if args[5] else 4) * args[0].numel()


register(*aten_ops("_fused_rms_norm"))(_per_element(4))
register(*aten_ops(
    "native_batch_norm_backward", "batch_norm_backward", "cudnn_batch_norm_backward",
    "native_layer_norm_backward", "native_group_norm_backward", "_fused_rms_norm_backward",
))(_per_element(10))


# --------------------------------------------------------------------------- losses
@register(*aten_ops("nll_loss_forward", "nll_loss2d_forward"))
def nll_loss(args, kwargs, out):
    """One add per target (the picked log-probabilities summed; the mean's division is one more
    FLOP in all), and one multiply per target with class weights."""
    target, weight = args[1], args[2] if len(args) > 2 else None
    return 0, target.numel() * (2 if weight is not None else 1)


@register(*aten_ops("nll_loss_backward", "nll_loss2d_backward"))
def nll_loss_backward(args, kwargs, out):
    """The gradient written at each target's class: one multiply per target (two with weights);
    the zeros elsewhere are a fill, no arithmetic."""
    target, weight = args[2], args[3] if len(args) > 3 else None
    return 0, target.numel() * (2 if weight is not None else 1)


register(*aten_ops("mse_loss"))(_per_element(3))  # difference, square, sum
register(*aten_ops("mse_loss_backward"))(_per_element(3, index=1))  # 2 x (x - y) x grad / N
register(*aten_ops("smooth_l1_loss", "huber_loss"))(_per_element(4))  # difference, abs, square or linear branch, sum
register(*aten_ops("smooth_l1_loss_backward", "huber_loss_backward"))(_per_element(4, index=1))
register(*aten_ops("binary_cross_entropy"))(_per_element(7))  # -(y log x + (1 - y) log(1 - x)), summed
register(*aten_ops("binary_cross_entropy_backward"))(_per_element(5, index=1))


# --------------------------------------------------------------------------- softmax, reductions
register(*aten_ops("_softmax", "_log_softmax", "_safe_softmax"))(_per_element(5))
register(*aten_ops("_softmax_backward_data", "_log_softmax_backward_data"))(_per_element(4))
register(*aten_ops(
    "sum", "mean", "amax", "amin", "max", "min", "prod", "argmax", "argmin", "cumsum",
    "logsumexp", "any", "all", "nansum",
))(_per_element(1))
register(*aten_ops(
    "var", "var_mean", "std", "std_mean", "norm", "linalg_vector_norm",
))(_per_element(3))


# --------------------------------------------------------------------------- pooling
@register(*aten_ops("max_pool2d_with_indices", "max_pool3d_with_indices", "avg_pool2d", "avg_pool3d",
                    "max_pool2d", "max_pool1d", "avg_pool1d"))
def pool(args, kwargs, out):
    result = out[0] if isinstance(out, tuple) else out
    window = args[1] if len(args) > 1 and args[1] else result.shape[-1:]
    return 0, result.numel() * prod(window)


register(*aten_ops(
    "_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool2d", "adaptive_max_pool3d",
))(_per_element(1))
# every backward pool op scatters one gradient per input position
register(*aten_ops(
    "max_pool2d_with_indices_backward", "max_pool3d_with_indices_backward",
    "avg_pool2d_backward", "avg_pool3d_backward",
    "_adaptive_avg_pool2d_backward", "_adaptive_avg_pool3d_backward",
    "adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward",
))(_per_element(1, index=1))


# --------------------------------------------------------------------------- elementwise
def _per_output(cost: int):
    """``cost`` FLOPs per element of the (first) result; none when it is integer or bool."""
    def formula(args, kwargs, out):
        result = out if isinstance(out, Tensor) else out[0]
        return 0, cost * result.numel() if does_arithmetic(result) else 0

    return formula


def _per_output_of_arithmetic_inputs(cost: int):
    """Comparisons and logic: ``cost`` per output element when a tensor input is floating point."""
    def formula(args, kwargs, out):
        if any(isinstance(a, Tensor) and does_arithmetic(a) for a in args[:2]):
            return 0, cost * _result(out).numel()
        return 0, 0

    return formula


register(*aten_ops(
    # arithmetic
    "add", "sub", "rsub", "mul", "div", "neg", "abs", "reciprocal", "pow", "sqrt", "rsqrt",
    "exp", "exp2", "expm1", "log", "log2", "log1p", "sin", "cos", "tanh", "erf", "erfinv",
    "square", "sign", "floor", "ceil", "round", "trunc", "frac", "fmod", "remainder",
    "addcmul", "addcdiv", "lerp", "maximum", "minimum", "clamp", "clamp_min", "clamp_max",
    "where", "masked_fill", "xlogy", "hypot", "atan2", "sgn", "floor_divide",
    # activations and their gradients
    "relu", "threshold", "threshold_backward", "hardtanh", "hardtanh_backward",
    "sigmoid", "sigmoid_backward", "tanh_backward", "gelu", "gelu_backward",
    "silu", "silu_backward", "hardswish", "hardswish_backward", "hardsigmoid",
    "hardsigmoid_backward", "leaky_relu", "leaky_relu_backward", "elu", "elu_backward",
    "mish", "mish_backward", "softplus", "softplus_backward", "prelu", "_prelu_kernel",
    "_prelu_kernel_backward", "glu", "glu_backward", "logit", "logit_backward",
    # random masks
    "bernoulli", "native_dropout_backward", "uniform", "normal",
    "embedding_dense_backward",
))(_per_output(1))
# comparisons and logic: a bool result, floating-point work only when an input is floating point
register(*aten_ops(
    "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_not",
    "logical_xor", "isnan", "isinf", "isfinite", "bitwise_and", "bitwise_or", "bitwise_not",
))(_per_output_of_arithmetic_inputs(1))
register(*aten_ops("native_dropout"))(_per_output(2))
register(*aten_ops("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
                   "_upsample_nearest_exact1d", "_upsample_nearest_exact2d",
                   "_upsample_nearest_exact3d"))(_per_output(0))
# linear interpolation is a lerp (3 FLOPs) per interpolated pair: 1, 3 and 7 lerps
register(*aten_ops("upsample_linear1d"))(_per_output(3))
register(*aten_ops("upsample_bilinear2d", "_upsample_bilinear2d_aa"))(_per_output(9))
register(*aten_ops("upsample_trilinear3d"))(_per_output(21))
register(*aten_ops(
    "upsample_nearest1d_backward", "upsample_nearest2d_backward", "upsample_nearest3d_backward",
    "upsample_linear1d_backward", "upsample_bilinear2d_backward", "upsample_trilinear3d_backward",
))(_per_output(1))


# --------------------------------------------------------------------------- data movement
def _free(args, kwargs, out):
    return 0, 0


register(*aten_ops(
    # aten_ops adds each name's in-place twin ("copy" brings copy_): listing both registers it twice
    "clone", "copy", "_to_copy", "cat", "stack", "constant_pad_nd", "reflection_pad1d",
    "reflection_pad2d", "reflection_pad3d", "replication_pad1d", "replication_pad2d",
    "replication_pad3d", "index", "index_select", "gather", "scatter",
    "index_put", "_unsafe_index_put", "_unsafe_index", "roll", "flip", "repeat",
    "slice_scatter", "select_scatter", "select_backward", "slice_backward", "masked_scatter",
    "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle", "im2col",
    "col2im", "tril", "triu", "_unsafe_view_copy", "fill", "zero", "topk", "sort",
    "masked_select", "nonzero", "unfold_backward", "as_strided_scatter", "index_copy",
    "contiguous",
    # nested tensors (the encoder fast path with a padding mask) and packed sequences
    "_nested_tensor_from_mask", "_nested_tensor_from_mask_left_aligned", "to_padded_tensor",
    "_nested_from_padded", "_nested_tensor_from_tensor_list", "_pack_padded_sequence",
    "_pad_packed_sequence",
))(_free)
register(*ops_in("quantized", "cat", "cat_relu"))(_free)
register(*aten_ops(
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros",
    "zeros_like", "ones", "ones_like", "full", "full_like", "new_zeros", "new_ones", "new_full",
    "arange", "linspace", "rand", "randn", "randint", "rand_like", "randn_like", "randperm",
    "scalar_tensor", "eye",
), moves_bytes=out_bytes)(_free)
register(*aten_ops("embedding"), moves_bytes=_embedding_bytes)(_free)
register(*aten_ops(
    "view", "_unsafe_view", "reshape", "_reshape_alias", "t", "transpose", "permute", "expand",
    "unsqueeze", "squeeze", "select", "slice", "alias", "detach", "as_strided", "unbind",
    "split", "split_with_sizes", "chunk", "unsafe_split", "unsafe_split_with_sizes", "unsafe_chunk",
    "narrow", "diagonal", "unfold", "view_as_real",
    "view_as_complex", "lift_fresh", "_local_scalar_dense", "is_same_size", "numpy_T",
    "_has_compatible_shallow_copy_type", "unflatten", "flatten", "movedim", "resolve_conj",
    "resolve_neg", "set_", "resize_", "sym_size", "sym_stride", "sym_numel", "item",
    "expand_as", "view_as", "_assert_async", "_assert_tensor_metadata", "_functional_assert_async",
    "_conj", "conj", "_neg_view", "record_stream",
    "_nested_view_from_jagged", "_nested_get_values", "_nested_get_offsets", "_nested_get_lengths",
    "_nested_view_from_buffer",
), moves_bytes=NO_BYTES)(_free)


# --------------------------------------------------------------------------- recurrent layers
# mode numbers shared by cuDNN, oneDNN (ideep) and MIOpen: 0 RNN_RELU, 1 RNN_TANH, 2 LSTM, 3 GRU
# -> (gates, gate-math FLOPs per hidden unit besides the matmuls and the bias adds)
_RNN_CELL = {0: (1, 2), 1: (1, 2), 2: (4, 13), 3: (3, 10)}


def rnn_gate_flops(mode: int, hidden: int, has_biases: bool) -> int:
    """FLOPs of one cell step for one token besides its matmuls: bias adds and gate math."""
    gates, math = _RNN_CELL[mode]
    return hidden * (math + (2 * gates if has_biases else 0))


def _tokens(x: Tensor) -> int:
    """Time steps x batch elements of an RNN input: [T, B, I], [B, T, I], [T, I] or packed [N, I]."""
    return x.numel() // x.shape[-1]


def _rnn_stack_cost(x, weights, stride: int, mode: int, hidden: int, proj_size: int = 0):
    """(MACs, gate FLOPs) of a whole cuDNN/MIOpen RNN: ``weights`` is each layer and direction's
    [w_ih, w_hh, (b_ih, b_hh), (w_hr)], ``stride`` tensors each."""
    tokens = _tokens(x)
    macs = tokens * sum(w.numel() for w in weights if w.dim() == 2)
    has_biases = stride > 2 + (1 if proj_size else 0)
    layer_directions = len(weights) // stride
    return macs, tokens * layer_directions * rnn_gate_flops(mode, hidden, has_biases)


@register(*aten_ops("mkldnn_rnn_layer"))
def mkldnn_rnn_layer(args, kwargs, out):
    """One layer, one direction of oneDNN's RNN (nn.LSTM on the CPU)."""
    x, w_ih, w_hh, mode, hidden, has_biases = args[0], args[1], args[2], args[9], args[10], args[12]
    tokens = _tokens(x)
    macs = tokens * (w_ih.numel() + w_hh.numel())
    return macs, 2 * macs + tokens * rnn_gate_flops(mode, hidden, has_biases)


@register(*aten_ops("mkldnn_rnn_layer_backward"))
def mkldnn_rnn_layer_backward(args, kwargs, out):
    x, w_ih, w_hh, mode, hidden, has_biases = args[0], args[1], args[2], args[14], args[15], args[17]
    tokens = _tokens(x)
    macs = 2 * tokens * (w_ih.numel() + w_hh.numel())
    return macs, 2 * macs + 2 * tokens * rnn_gate_flops(mode, hidden, has_biases)


@register(*aten_ops("_cudnn_rnn"))
def cudnn_rnn(args, kwargs, out):
    """Every layer and direction in one call: (input, weight list, weight_stride0, weight_buf, hx,
    cx, mode, hidden_size, proj_size, ...)."""
    macs, gates = _rnn_stack_cost(args[0], args[1], args[2], args[6], args[7], args[8])
    return macs, 2 * macs + gates


@register(*aten_ops("_cudnn_rnn_backward"))
def cudnn_rnn_backward(args, kwargs, out):
    # (input, weight, weight_stride0, weight_buf, hx, cx, output, grad_output, grad_hy, grad_cy,
    #  mode, hidden_size, proj_size, ..., output_mask = (input, hx, cx, weights))
    macs, gates = _rnn_stack_cost(args[0], args[1], args[2], args[10], args[11], args[12])
    macs *= 1 + int(args[21][3])  # the data gradients always run; the weight gradients if asked
    return macs, 2 * macs + 2 * gates


@register(*aten_ops("miopen_rnn"))
def miopen_rnn(args, kwargs, out):
    # (input, weight, weight_stride0, hx, cx, mode, hidden_size, num_layers, ...)
    macs, gates = _rnn_stack_cost(args[0], args[1], args[2], args[5], args[6])
    return macs, 2 * macs + gates


@register(*aten_ops("miopen_rnn_backward"))
def miopen_rnn_backward(args, kwargs, out):
    # (input, weight, weight_stride0, weight_buf, hx, cx, output, grad_output, grad_hy, grad_cy,
    #  mode, hidden_size, num_layers, ..., output_mask)
    macs, gates = _rnn_stack_cost(args[0], args[1], args[2], args[10], args[11])
    macs *= 1 + int(args[20][3])
    return macs, 2 * macs + 2 * gates


def _quantized_rnn(gates: int, mode: int):
    """Dynamically quantized LSTM/GRU (packed weights: the cost comes from the shapes).

    .input: (input, hx, params, has_biases, num_layers, dropout, train, bidirectional, ...);
    .data (packed sequence): (data, batch_sizes, hx, params, has_biases, num_layers, ...).
    """
    def formula(args, kwargs, out):
        weights, _, hidden, directions, num_layers = _quantized_rnn_sizes(args, gates)
        tokens = _tokens(args[0])
        macs = tokens * weights
        flops = 2 * macs + tokens * num_layers * directions * rnn_gate_flops(mode, hidden, has_biases(args))
        return macs, flops

    def has_biases(args):
        return args[4] if not isinstance(args[3], bool) else args[3]

    def nbytes(args, kwargs, out):
        """Inputs and outputs, and the packed weights (int8, or fp16 with dtype=float16) and float biases."""
        weights, biases, *_ = _quantized_rnn_sizes(args, gates)
        weight_size = 2 if kwargs.get("dtype") == torch.float16 else 1
        return _io_nbytes(args, out) + weights * weight_size + (4 * biases if has_biases(args) else 0)

    return formula, nbytes


def _quantized_rnn_sizes(args, gates: int):
    """(weight elements, bias elements, hidden, directions, layers) of a quantized_lstm/gru call."""
    packed = not isinstance(args[3], bool)
    x, hx = args[0], args[2] if packed else args[1]
    num_layers, bidirectional = (args[5], args[8]) if packed else (args[4], args[7])
    h0 = hx[0] if isinstance(hx, (list, tuple)) else hx
    hidden, directions = h0.shape[-1], 2 if bidirectional else 1
    weights = 0
    for layer in range(num_layers):
        layer_input = x.shape[-1] if layer == 0 else directions * hidden
        weights += directions * gates * hidden * (layer_input + hidden)
    return weights, 2 * num_layers * directions * gates * hidden, hidden, directions, num_layers


_LSTM_Q, _LSTM_Q_BYTES = _quantized_rnn(4, 2)
_GRU_Q, _GRU_Q_BYTES = _quantized_rnn(3, 3)
register(*aten_ops("quantized_lstm"), moves_bytes=_LSTM_Q_BYTES)(_LSTM_Q)
register(*aten_ops("quantized_gru"), moves_bytes=_GRU_Q_BYTES)(_GRU_Q)


# --------------------------------------------------------------------------- quantized ops
# Packed weights are ScriptObjects, not tensors: unpacked (a copy) with the public unpack ops
# for the bias and the weight's shape and bytes.
def _unpack_linear(packed):
    return torch.ops.quantized.linear_unpack(packed)


def _unpack_conv2d(packed):  # conv1d, conv2d and their transposes share Conv2dPackedParamsBase
    return torch.ops.quantized.conv2d_unpack(packed)


def _unpack_conv3d(packed):
    return torch.ops.quantized.conv3d_unpack(packed)


def _packed_bytes(index: int, unpack, weight_element_size: int | None = None):
    """Tensor inputs and outputs, plus the packed weight and bias the op reads.

    weight_element_size: the packed weight's bytes per element where the unpacked copy differs
    (fp16 dynamic linear: packed in fp16, unpacked to fp32).
    """
    def nbytes(args, kwargs, out):
        weight, bias = unpack(args[index])
        weight_bytes = weight.nbytes if weight_element_size is None else weight.numel() * weight_element_size
        return _io_nbytes(args, out) + weight_bytes + (bias.nbytes if bias is not None else 0)

    return nbytes


def _quantized_linear(index: int = 1, epilogue: int = 0):
    """MACs: output elements x in_features; 1 FLOP per output for the bias and each fused epilogue."""
    def formula(args, kwargs, out):
        _, bias = _unpack_linear(args[index])
        macs = out.numel() * args[0].shape[-1]
        return macs, 2 * macs + out.numel() * ((bias is not None) + epilogue)

    return formula


def _quantized_conv(unpack, index: int = 1, transposed: bool = False, epilogue: int = 0):
    def formula(args, kwargs, out):
        weight, bias = unpack(args[index])
        macs = conv_macs(args[0].shape, weight.shape, out.shape, transposed)
        return macs, 2 * macs + out.numel() * ((bias is not None) + epilogue)

    return formula


_LINEAR_BYTES, _LINEAR_FP16_BYTES = _packed_bytes(1, _unpack_linear), _packed_bytes(1, _unpack_linear, 2)
register(*ops_in("quantized", "linear", "linear_dynamic"), moves_bytes=_LINEAR_BYTES)(_quantized_linear())
register(*ops_in("quantized", "linear_dynamic_fp16"), moves_bytes=_LINEAR_FP16_BYTES)(_quantized_linear())
register(*ops_in("quantized", "linear_relu", "linear_relu_dynamic", "linear_leaky_relu", "linear_tanh"),
         moves_bytes=_LINEAR_BYTES)(_quantized_linear(epilogue=1))
register(*ops_in("quantized", "linear_relu_dynamic_fp16"),
         moves_bytes=_LINEAR_FP16_BYTES)(_quantized_linear(epilogue=1))
register(*ops_in("quantized", "linear_with_input_q_dq_qweight_dq_output_fp32"),
         moves_bytes=_packed_bytes(3, _unpack_linear))(_quantized_linear(index=3))

_CONV2D_BYTES, _CONV3D_BYTES = _packed_bytes(1, _unpack_conv2d), _packed_bytes(1, _unpack_conv3d)
register(*ops_in("quantized", "conv1d", "conv2d"), moves_bytes=_CONV2D_BYTES)(_quantized_conv(_unpack_conv2d))
register(*ops_in("quantized", "conv1d_relu", "conv2d_relu"),
         moves_bytes=_CONV2D_BYTES)(_quantized_conv(_unpack_conv2d, epilogue=1))
register(*ops_in("quantized", "conv3d"), moves_bytes=_CONV3D_BYTES)(_quantized_conv(_unpack_conv3d))
register(*ops_in("quantized", "conv3d_relu"),
         moves_bytes=_CONV3D_BYTES)(_quantized_conv(_unpack_conv3d, epilogue=1))
register(*ops_in("quantized", "conv_transpose1d", "conv_transpose2d"),
         moves_bytes=_CONV2D_BYTES)(_quantized_conv(_unpack_conv2d, transposed=True))
register(*ops_in("quantized", "conv_transpose3d"),
         moves_bytes=_CONV3D_BYTES)(_quantized_conv(_unpack_conv3d, transposed=True))
# conv2d_add(qx, qaccum, packed, ...): the residual add fused in
register(*ops_in("quantized", "conv2d_add"),
         moves_bytes=_packed_bytes(2, _unpack_conv2d))(_quantized_conv(_unpack_conv2d, index=2, epilogue=1))
register(*ops_in("quantized", "conv2d_add_relu"),
         moves_bytes=_packed_bytes(2, _unpack_conv2d))(_quantized_conv(_unpack_conv2d, index=2, epilogue=2))


@register(*ops_in("quantized", "matmul"))
def quantized_matmul(args, kwargs, out):
    macs = out.numel() * args[0].shape[-1]
    return macs, 2 * macs


# quantizing and dequantizing: a scale and a shift per element
register(*aten_ops("quantize_per_tensor", "quantize_per_channel", "quantize_per_tensor_dynamic",
                   "dequantize"))(_per_output(1))
# elementwise ops on quantized tensors, as their float twins count (a fused ReLU: one more)
register(*ops_in("quantized", "add", "mul", "add_scalar", "mul_scalar", "hardswish", "relu6", "leaky_relu",
                 "sigmoid", "threshold", "celu", "elu", "hardtanh"))(_per_output(1))
register(*ops_in("quantized", "add_relu", "mul_relu", "add_scalar_relu", "mul_scalar_relu"))(_per_output(2))
register(*ops_in("quantized", "batch_norm", "batch_norm1d", "batch_norm2d", "batch_norm3d"),
         *aten_ops("quantized_batch_norm"))(_per_element(4))
register(*ops_in("quantized", "batch_norm1d_relu", "batch_norm2d_relu", "batch_norm3d_relu"))(_per_element(5))
register(*ops_in("quantized", "layer_norm", "group_norm", "instance_norm"))(_per_element(8))
register(*aten_ops("quantized_max_pool1d", "quantized_max_pool2d", "quantized_max_pool3d"))(pool)


# --------------------------------------------------------------------------- bicubic upsampling
def _window(size_in: int, size_out: int, antialias: bool) -> int:
    """Taps along one dimension: 4, widened to ceil(4 x in/out) when antialiasing a downsample."""
    if antialias and size_out < size_in:
        return ceil(4 * size_in / size_out)
    return 4


def _bicubic(antialias: bool):
    def formula(args, kwargs, out):
        x = args[0]
        if not does_arithmetic(out):
            return 0, 0
        kh = _window(x.shape[-2], out.shape[-2], antialias)
        kw = _window(x.shape[-1], out.shape[-1], antialias)
        return 0, out.numel() * (kh * (2 * kw - 1) + 2 * kh - 1)

    return formula


def _bicubic_backward(antialias: bool):
    # (grad_output, output_size, input_size, align_corners, ...)
    def formula(args, kwargs, out):
        grad, size_out, size_in = args[0], args[1], args[2]
        if not does_arithmetic(grad):
            return 0, 0
        kh = _window(size_in[-2], size_out[-2], antialias)
        kw = _window(size_in[-1], size_out[-1], antialias)
        return 0, 3 * kh * kw * grad.numel()

    return formula


register(*aten_ops("upsample_bicubic2d"))(_bicubic(antialias=False))
register(*aten_ops("_upsample_bicubic2d_aa"))(_bicubic(antialias=True))
register(*aten_ops("upsample_bicubic2d_backward"))(_bicubic_backward(antialias=False))
register(*aten_ops("_upsample_bicubic2d_aa_backward"))(_bicubic_backward(antialias=True))


# --------------------------------------------------------------------------- distances, scatters, bags
@register(*aten_ops("_pdist_forward"))
def pdist(args, kwargs, out):
    x = args[0]
    p = args[1] if len(args) > 1 else kwargs.get("p", 2.0)
    d = x.shape[-1]
    per_pair = 3 * d if p == 2 else 3 * d - 1 if p in (0, 1, inf) else 4 * d
    return 0, out.numel() * per_pair if does_arithmetic(x) else 0


@register(*aten_ops("_pdist_backward"))
def pdist_backward(args, kwargs, out):
    # (grad, self, p, pdist): per pair and dimension the difference, its factor and two accumulates
    grad, x = args[0], args[1]
    return 0, grad.numel() * (4 * x.shape[-1] + 1) if does_arithmetic(x) else 0


@register(*aten_ops("scatter_add"))
def scatter_add(args, kwargs, out):
    # (self, dim, index, src): one add per index entry (the source elements that are scattered)
    return 0, args[2].numel() if does_arithmetic(_result(out)) else 0


@register(*aten_ops("index_add"))
def index_add(args, kwargs, out):
    # (self, dim, index, source, *, alpha): one add per source element (and a multiply for alpha)
    alpha = args[4] if len(args) > 4 else kwargs.get("alpha", 1)
    if not does_arithmetic(_result(out)):
        return 0, 0
    return 0, args[3].numel() * (1 if alpha == 1 else 2)


@register(*aten_ops("scatter_reduce"))
def scatter_reduce(args, kwargs, out):
    # (self, dim, index, src, reduce, *, include_self): one op per index entry (+ a divide for mean)
    result = _result(out)
    if not does_arithmetic(result):
        return 0, 0
    reduce = args[4] if len(args) > 4 else kwargs.get("reduce")
    return 0, args[2].numel() + (result.numel() if reduce == "mean" else 0)


_BAG_SUM, _BAG_MEAN, _BAG_MAX = 0, 1, 2


def _bag_args(args, kwargs):
    """(weight, indices, offsets, mode, per_sample_weights) of an _embedding_bag call."""
    def arg(i, name, default):
        return args[i] if len(args) > i else kwargs.get(name, default)

    return args[0], args[1], args[2], arg(4, "mode", _BAG_SUM), arg(6, "per_sample_weights", None)


def _embedding_bag_bytes(args, kwargs, out) -> int:
    """Indices, offsets and per-sample weights read, the rows gathered, every output written."""
    weight, indices, offsets, _, per_sample_weights = _bag_args(args, kwargs)
    read = _tensor_nbytes((indices, offsets, per_sample_weights))
    gathered = indices.numel() * weight.shape[-1] * weight.element_size()
    return read + gathered + _tensor_nbytes(out)


@register(*aten_ops("_embedding_bag", "_embedding_bag_forward_only"), moves_bytes=_embedding_bag_bytes)
def embedding_bag(args, kwargs, out):
    weight, indices, _, mode, per_sample_weights = _bag_args(args, kwargs)
    if not does_arithmetic(weight):
        return 0, 0
    gathered = indices.numel() * weight.shape[-1]
    flops = gathered  # an add (sum, mean) or a comparison (max) per gathered element
    if mode == _BAG_MEAN:
        flops += out[0].numel()
    if per_sample_weights is not None:
        flops += gathered
    return 0, flops


def _embedding_bag_backward(mode_index: int, weights_index: int):
    """Each gathered row's gradient added into the table: one add per gathered element, and a
    multiply each for mean and per-sample weights; max sends each bag's gradient to one row."""
    def formula(args, kwargs, out):
        grad, indices = args[0], args[1]
        if not does_arithmetic(grad):
            return 0, 0
        mode, per_sample_weights = args[mode_index], args[weights_index]
        if mode == _BAG_MAX:
            return 0, grad.numel()
        gathered = indices.numel() * grad.shape[-1]
        return 0, gathered * (2 if mode == _BAG_MEAN or per_sample_weights is not None else 1)

    return formula


# (grad, indices, offsets, offset2bag, bag_size, maximum_indices, num_weights, scale_grad_by_freq,
#  mode, sparse, per_sample_weights, ...); dense and sparse: (grad, indices, 5 more, mode, weights)
register(*aten_ops("_embedding_bag_backward"))(_embedding_bag_backward(8, 10))
register(*aten_ops("_embedding_bag_dense_backward", "_embedding_bag_sparse_backward"))(_embedding_bag_backward(7, 8))


@register(*aten_ops("_embedding_bag_per_sample_weights_backward"))
def embedding_bag_per_sample_weights_backward(args, kwargs, out):
    # (grad, weight, indices, ...): a dot product of D per sample
    grad, indices = args[0], args[2]
    return 0, 2 * indices.numel() * grad.shape[-1] if does_arithmetic(grad) else 0


# --------------------------------------------------------------------------- library ops
# Ops of libraries that load them on import (torchvision): their namespace may not exist when
# this module is imported, and importing torchvision here would cost every user a second.
# The counter asks ``library_cost`` for an op it has no formula for; the op is registered then.
def _roi_samples(rois: Tensor, spatial_scale: float, pooled_h: int, pooled_w: int, sampling_ratio: int,
                 aligned: bool) -> Tensor:
    """Bilinear samples per output bin of each RoI, as torchvision's kernel picks them."""
    if sampling_ratio > 0:
        return torch.full((rois.shape[0],), sampling_ratio * sampling_ratio, dtype=torch.int64)
    offset = 0.5 if aligned else 0.0
    boxes = rois[:, 1:5] * spatial_scale - offset
    height, width = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    if not aligned:
        height, width = height.clamp(min=1.0), width.clamp(min=1.0)
    grid = torch.ceil(height / pooled_h) * torch.ceil(width / pooled_w)
    return grid.clamp(min=1).to(torch.int64)


def _roi_align_cost(rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned, channels) -> int:
    samples = _roi_samples(rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned)
    # per output element: 8 FLOPs per sample (4 multiplies, 3 adds, an accumulate) and a divide
    return int((8 * samples + 1).sum().item()) * channels * pooled_h * pooled_w


def roi_align(args, kwargs, out):
    """torchvision::roi_align(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned)."""
    x, rois = args[0], args[1]
    if not does_arithmetic(x):
        return 0, 0
    return 0, _roi_align_cost(rois, args[2], args[3], args[4], args[5], args[6], x.shape[1])


def roi_align_backward(args, kwargs, out):
    """torchvision::_roi_align_backward(grad, rois, spatial_scale, pooled_h, pooled_w, batch_size,
    channels, height, width, sampling_ratio, aligned): the forward's cost per output gradient."""
    grad, rois = args[0], args[1]
    if not does_arithmetic(grad):
        return 0, 0
    return 0, _roi_align_cost(rois, args[2], args[3], args[4], args[9], args[10], args[6])


LIBRARY_FORMULAS: dict[str, OpCost] = {
    "torchvision.roi_align": OpCost(roi_align, True),
    "torchvision._roi_align_backward": OpCost(roi_align_backward, True),
}


def library_cost(op) -> OpCost | None:
    """The built-in cost of ``op`` if it is a library op listed in ``LIBRARY_FORMULAS``, registered now.

    Called by the counter for an op that has no formula; None when there is none to give.
    """
    packet = getattr(op, "overloadpacket", None)
    cost = LIBRARY_FORMULAS.get(str(packet)) if packet is not None else None
    if cost is None:
        return None
    existing = lookup(op)
    if existing is not None:
        return existing
    register(op, moves_bytes=cost.moves_bytes)(cost.formula)
    return cost
