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
"""

from __future__ import annotations

from math import prod

from torch import Tensor

from .registry import aten_ops, register

NO_BYTES = False


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
    """In-projections, both attention matmuls, out-projection, biases and softmax."""
    b, lq, lk, e = query.shape[0], query.shape[-2], key.shape[-2], embed_dim
    macs = b * (lq * e * e + 2 * lk * e * e + 2 * lq * lk * e + lq * e * e)
    extra = b * (2 * lq * e + 2 * lk * e) + 5 * b * num_heads * lq * lk
    return macs, 2 * macs + extra


@register(*aten_ops("_native_multi_head_attention"))
def native_multi_head_attention(args, kwargs, out):
    return _mha_cost(args[0], args[1], args[3], args[4])


@register(*aten_ops("_transformer_encoder_layer_fwd"))
def transformer_encoder_layer(args, kwargs, out):
    src, e, heads, ffn_w1 = args[0], args[1], args[2], args[14]
    macs, flops = _mha_cost(src, src, e, heads)
    tokens = src.numel() // e
    ffn = tokens * e * ffn_w1.shape[0] * 2
    # FFN matmuls, their biases and activation, two residual adds, two layer norms
    return macs + ffn, flops + 2 * ffn + tokens * (2 * ffn_w1.shape[0] + e) + tokens * e * (2 + 16)


# --------------------------------------------------------------------------- normalisation
def _per_element(cost: int, index: int = 0):
    def formula(args, kwargs, out):
        return 0, cost * args[index].numel()

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
    def formula(args, kwargs, out):
        if isinstance(out, Tensor):
            return 0, cost * out.numel()
        return 0, cost * out[0].numel()

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
    # comparisons and logic
    "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_not",
    "logical_xor", "isnan", "isinf", "isfinite", "bitwise_and", "bitwise_or", "bitwise_not",
    # random masks
    "bernoulli", "native_dropout_backward", "uniform", "normal",
    "embedding_dense_backward",
))(_per_output(1))
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
    "replication_pad3d", "index", "index_select", "gather", "scatter", "scatter_add",
    "index_put", "_unsafe_index_put", "_unsafe_index", "index_add", "roll", "flip", "repeat",
    "slice_scatter", "select_scatter", "select_backward", "slice_backward", "masked_scatter",
    "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle", "im2col",
    "col2im", "tril", "triu", "_unsafe_view_copy", "fill", "zero", "topk", "sort",
    "masked_select", "nonzero", "unfold_backward", "as_strided_scatter", "index_copy",
    "_pdist_forward", "contiguous",
))(_free)
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
    "split", "split_with_sizes", "chunk", "narrow", "diagonal", "unfold", "view_as_real",
    "view_as_complex", "lift_fresh", "_local_scalar_dense", "is_same_size", "numpy_T",
    "_has_compatible_shallow_copy_type", "unflatten", "flatten", "movedim", "resolve_conj",
    "resolve_neg", "set_", "resize_", "sym_size", "sym_stride", "sym_numel", "item",
    "expand_as", "view_as", "_assert_async", "_assert_tensor_metadata", "_functional_assert_async",
    "_conj", "conj", "_neg_view", "record_stream",
), moves_bytes=NO_BYTES)(_free)
