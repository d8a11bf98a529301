"""Layers that used to count 0 (issue 10), each against a hand formula, and no silent zero.

RNNs on the CPU (oneDNN) and cuDNN, quantized models, bicubic upsampling, roi_align, the
unsafe_split views, pdist / scatter_add / embedding_bag, integer arithmetic (0 FLOPs) and
nested tensors from the encoder fast path.
"""

import copy
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torchprof_lab
from torchprof_lab.counting.attribution import shape_of
from torchprof_lab.counting.dispatch import io_bytes
from torchprof_lab.counting.registry import lookup

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def count(model, *inputs, **kw):
    return torchprof_lab.count(model, inputs=tuple(inputs), **kw)


class Functional(nn.Module):
    def __init__(self, fn, scaled: bool = False):
        super().__init__()
        self.fn = fn
        if scaled:  # a parameter in front, so a backward pass runs through fn
            self.w = nn.Parameter(torch.ones(1))

    def forward(self, *args):
        if hasattr(self, "w"):
            args = (args[0] * self.w, *args[1:])
        return self.fn(*args)


# ----------------------------------------------------------------------------- recurrent layers
GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}
GATE_MATH = {nn.LSTM: 13, nn.GRU: 10, nn.RNN: 2}  # per hidden unit: see formulas.py


def rnn_hand(cls, input_size, hidden, num_layers, bidirectional, bias, tokens):
    """(MACs, FLOPs): per token, layer and direction G x H x (I + H) MACs; 2 x MACs + bias adds
    (2 G H) + gate math (LSTM 13 H, GRU 10 H, RNN 2 H) FLOPs."""
    g, directions = GATES[cls], 2 if bidirectional else 1
    macs = 0
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else directions * hidden
        macs += tokens * directions * g * hidden * (layer_input + hidden)
    gate_flops = tokens * num_layers * directions * hidden * (GATE_MATH[cls] + (2 * g if bias else 0))
    return macs, 2 * macs + gate_flops


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("num_layers,bidirectional,bias", [(1, False, True), (2, True, True), (2, False, False)])
def test_rnn_cpu_counts_what_meta_decomposes(cls, num_layers, bidirectional, bias):
    """nn.LSTM on the CPU is one oneDNN op (mkldnn_rnn_layer); on meta it decomposes op by op.
    Both count the hand formula, and nothing is left uncounted (the cell's unsafe_split included)."""
    rnn = cls(6, 10, num_layers=num_layers, bidirectional=bidirectional, bias=bias, batch_first=True)
    x = torch.randn(3, 7, 6)
    expected = rnn_hand(cls, 6, 10, num_layers, bidirectional, bias, tokens=3 * 7)
    cpu, meta = count(rnn, x), count(rnn, x, device="meta")
    assert (cpu.macs, cpu.flops) == expected
    assert (meta.macs, meta.flops) == expected
    assert not cpu.uncounted_ops and not meta.uncounted_ops


def test_lstm_layer_hand_formula():
    """One LSTM layer: 4 gates x (I + H) x H MACs per token; 8 H (I + H) + 21 H FLOPs with biases."""
    i, h, t, b = 5, 8, 4, 2
    r = count(nn.LSTM(i, h), torch.randn(t, b, i))
    assert r.macs == t * b * 4 * (i + h) * h
    assert r.flops == t * b * (8 * h * (i + h) + 21 * h)


def test_lstm_unbatched_input():
    r = count(nn.LSTM(5, 8), torch.randn(4, 5))
    assert (r.macs, r.flops) == rnn_hand(nn.LSTM, 5, 8, 1, False, True, tokens=4)


def test_lstm_cpu_backward_counts_the_onednn_backward():
    """mkldnn_rnn_layer_backward: input/state and weight gradients, 2 x the forward MACs."""
    lstm = nn.LSTM(6, 10, num_layers=2)
    r = count(lstm, torch.randn(5, 3, 6), backward=True)
    assert not r.uncounted_ops
    macs, flops = rnn_hand(nn.LSTM, 6, 10, 2, False, True, tokens=15)
    assert r.backward_macs == 2 * macs
    assert r.backward_flops == 2 * (2 * macs) + 2 * (flops - 2 * macs)


def _cudnn_rnn_args(mode, input_size, hidden, num_layers, bidirectional, bias, proj_size, tokens):
    """Arguments for aten::_cudnn_rnn in its schema's order (meta tensors: it cannot run here)."""
    gates, directions = {0: 1, 1: 1, 2: 4, 3: 3}[mode], 2 if bidirectional else 1
    out_size = proj_size or hidden
    weights = []
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else directions * out_size
        for _ in range(directions):
            weights += [torch.empty(gates * hidden, layer_input, device="meta"),
                        torch.empty(gates * hidden, out_size, device="meta")]
            if bias:
                weights += [torch.empty(gates * hidden, device="meta"), torch.empty(gates * hidden, device="meta")]
            if proj_size:
                weights.append(torch.empty(proj_size, hidden, device="meta"))
    values = dict(
        input=torch.empty(tokens, 1, input_size, device="meta"), weight=weights,
        weight_stride0=2 + 2 * bias + (1 if proj_size else 0), weight_buf=None,
        hx=torch.empty(num_layers * directions, 1, out_size, device="meta"),
        cx=torch.empty(num_layers * directions, 1, hidden, device="meta") if mode == 2 else None,
        mode=mode, hidden_size=hidden, proj_size=proj_size, num_layers=num_layers, batch_first=False,
        dropout=0.0, train=False, bidirectional=bidirectional, batch_sizes=[], dropout_state=None,
    )
    schema = torch.ops.aten._cudnn_rnn.default._schema
    names = [a.name for a in schema.arguments]
    assert set(names) == set(values), names  # the schema we build for
    return tuple(values[n] for n in names)


@pytest.mark.parametrize("mode,cls", [(2, nn.LSTM), (3, nn.GRU), (1, nn.RNN), (0, nn.RNN)])
@pytest.mark.parametrize("num_layers,bidirectional,bias", [(1, False, True), (3, True, True), (2, True, False)])
def test_cudnn_rnn_formula(mode, cls, num_layers, bidirectional, bias):
    op = torch.ops.aten._cudnn_rnn.default
    cost = lookup(op)
    assert cost is not None
    args = _cudnn_rnn_args(mode, 6, 10, num_layers, bidirectional, bias, 0, tokens=12)
    assert cost.formula(args, {}, None) == rnn_hand(cls, 6, 10, num_layers, bidirectional, bias, tokens=12)


def test_cudnn_lstm_with_projection():
    """proj_size P: w_hh is [4H, P] and w_hr [P, H]: per token 4H (I + P) + P H MACs; the gate math is on H."""
    i, h, p, tokens = 6, 10, 4, 9
    args = _cudnn_rnn_args(2, i, h, 1, False, True, p, tokens)
    macs = tokens * (4 * h * (i + p) + p * h)
    assert lookup(torch.ops.aten._cudnn_rnn.default).formula(args, {}, None) == (macs, 2 * macs + tokens * 21 * h)
    # the CPU runs an LSTM with projections op by op: the same count
    r = count(nn.LSTM(i, h, proj_size=p), torch.randn(tokens, 1, i))
    assert (r.macs, r.flops) == (macs, 2 * macs + tokens * 21 * h)


def test_cudnn_rnn_backward_formula():
    fwd_args = _cudnn_rnn_args(2, 6, 10, 2, True, True, 0, tokens=12)
    fwd = dict(zip([a.name for a in torch.ops.aten._cudnn_rnn.default._schema.arguments], fwd_args))
    macs, flops = rnn_hand(nn.LSTM, 6, 10, 2, True, True, tokens=12)
    schema = torch.ops.aten._cudnn_rnn_backward.default._schema
    cost = lookup(torch.ops.aten._cudnn_rnn_backward.default)
    for weights_grad, factor in ((True, 2), (False, 1)):
        values = dict(fwd, weight_buf=torch.empty(0, device="meta"), output=torch.empty(12, 1, 20, device="meta"),
                      grad_output=None, grad_hy=None, grad_cy=None, reserve=torch.empty(0, device="meta"),
                      output_mask=[True, False, False, weights_grad])
        args = tuple(values[a.name] for a in schema.arguments)
        assert cost.formula(args, {}, None) == (factor * macs, 2 * factor * macs + 2 * (flops - 2 * macs))


class RNNOutput(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0]


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_dynamically_quantized_rnn_counts_as_float(cls):
    """quantize_dynamic's LSTM/GRU run aten::quantized_lstm/gru: the float model's MACs, FLOPs and params."""
    model = RNNOutput(cls(6, 10, num_layers=2, bidirectional=True))
    quantized = torch.ao.quantization.quantize_dynamic(model, {cls}, dtype=torch.qint8)
    x = torch.randn(5, 3, 6)
    f, q = count(model, x), count(quantized, x)
    assert (q.macs, q.flops) == (f.macs, f.flops) == rnn_hand(cls, 6, 10, 2, True, True, tokens=15)
    assert q.params == f.params
    assert not q.uncounted_ops


# ----------------------------------------------------------------------------- quantized models
def test_dynamic_quantized_linear_params_macs_bytes():
    n, a, b, c = 4, 16, 32, 8
    model = nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c))
    quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    x = torch.randn(n, a)
    r = count(quantized, x)
    assert not r.uncounted_ops
    macs = n * a * b + n * b * c
    assert r.macs == macs
    assert r.flops == 2 * macs + n * b + n * c + n * b  # biases, relu: as the float model
    assert r.flops == count(model, x).flops
    assert r.params == a * b + b + b * c + c
    assert r.layer("0").params == a * b + b and r.layer("0._packed_params").params == 0
    assert r.trainable_params == 0
    assert r.state_dict_bytes == (a * b + b * c) * 1 + (b + c) * 4  # int8 weights, fp32 biases
    # float input and output, int8 weight and fp32 bias read; relu reads and writes n x b floats
    assert r.bytes == 4 * (n * a + n * b) + a * b + 4 * b + 2 * 4 * n * b + 4 * (n * b + n * c) + b * c + 4 * c


class Static(nn.Module):
    def __init__(self):
        super().__init__()
        q = torch.ao.quantization
        self.q, self.dq = q.QuantStub(), q.DeQuantStub()
        self.conv, self.relu = nn.Conv2d(3, 8, 3), nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 6 * 6, 10)

    def forward(self, x):
        x = self.relu(self.conv(self.q(x)))
        return self.dq(self.fc(self.conv2(x).flatten(1)))


def test_static_quantized_conv_and_linear():
    q = torch.ao.quantization
    model = Static().eval()
    prepared = copy.deepcopy(model)
    prepared.qconfig = q.get_default_qconfig("fbgemm")
    prepared = q.prepare(q.fuse_modules(prepared, [["conv", "relu"]]))
    prepared(torch.randn(2, 3, 8, 8))
    quantized = q.convert(prepared)
    x = torch.randn(2, 3, 8, 8)
    r = count(quantized, x)
    assert not r.uncounted_ops
    conv, conv2, fc = 2 * 8 * 6 * 6 * 3 * 9, 2 * 8 * 6 * 6 * 8 * 9, 2 * 288 * 10
    assert (r.layer("conv").macs, r.layer("conv2").macs, r.layer("fc").macs) == (conv, conv2, fc)
    out = 2 * 8 * 6 * 6
    # bias per output (conv, conv2, fc), the fused relu, quantize and dequantize one each per element
    assert r.flops == 2 * (conv + conv2 + fc) + 3 * out + 2 * 10 + x.numel() + 2 * 10
    assert r.flops == count(model, x).flops + x.numel() + 2 * 10
    assert r.params == count(model, x).params == (8 * 27 + 8) + (8 * 72 + 8) + (2880 + 10)
    assert r.layer("conv").params == 8 * 27 + 8


def test_quantized_modules_used_directly():
    qx = torch.quantize_per_tensor(torch.randn(3, 16), 0.1, 0, torch.quint8)
    linear = torch.ao.nn.quantized.Linear(16, 4)
    r = count(linear, qx)
    assert (r.macs, r.params, r.uncounted_ops) == (3 * 16 * 4, 16 * 4 + 4, {})
    convt = torch.ao.nn.quantized.ConvTranspose2d(4, 6, 3, groups=2)
    qi = torch.quantize_per_tensor(torch.randn(2, 4, 5, 5), 0.1, 0, torch.quint8)
    r = count(convt, qi)
    assert r.macs == 2 * 4 * 5 * 5 * (6 // 2) * 9  # every input element into C_out/groups x k x k
    assert r.params == 4 * 3 * 9 + 6 and not r.uncounted_ops


def test_quantized_resnet_counts_the_float_macs():
    torchvision = pytest.importorskip("torchvision")
    q = torch.ao.quantization
    model = torchvision.models.quantization.resnet18(weights=None, quantize=False).eval()
    model.fuse_model()
    model.qconfig = q.get_default_qconfig("fbgemm")
    q.prepare(model, inplace=True)
    model(torch.randn(1, 3, 32, 32))
    q.convert(model, inplace=True)
    x = torch.randn(1, 3, 32, 32)
    r = count(model, x)
    assert not r.uncounted_ops
    assert r.macs == count(torchvision.models.resnet18(weights=None).eval(), x).macs
    # batch norm folded into the convolutions: one bias (C) in place of BN's weight and bias (2 C)
    float_params = count(torchvision.models.resnet18(weights=None).eval(), x).params
    bn_channels = sum(m.num_features for m in torchvision.models.resnet18().modules() if isinstance(m, nn.BatchNorm2d))
    assert r.params == float_params - bn_channels


# ----------------------------------------------------------------------------- bicubic, roi_align
def test_bicubic_35_flops_per_output():
    x = torch.randn(2, 3, 5, 7)
    r = count(Functional(lambda t: F.interpolate(t, size=(9, 11), mode="bicubic")), x)
    assert (r.flops, r.uncounted_ops) == (2 * 3 * 9 * 11 * 35, {})


def test_bicubic_antialias_window():
    x = torch.randn(2, 3, 5, 7)
    r = count(Functional(lambda t: F.interpolate(t, size=(3, 4), mode="bicubic", antialias=True)), x)
    kh, kw = math.ceil(4 * 5 / 3), math.ceil(4 * 7 / 4)  # 7 and 7 taps when downsampling
    assert (r.flops, r.uncounted_ops) == (2 * 3 * 3 * 4 * (kh * (2 * kw - 1) + 2 * kh - 1), {})
    up = count(Functional(lambda t: F.interpolate(t, size=(9, 11), mode="bicubic", antialias=True)), x)
    assert up.flops == 2 * 3 * 9 * 11 * 35  # upsampling: the same 4 x 4 taps as without antialias


@pytest.mark.parametrize("antialias", [False, True])
def test_bicubic_backward(antialias):
    x = torch.randn(2, 3, 5, 7)
    model = Functional(lambda t: F.interpolate(t, size=(9, 11), mode="bicubic", antialias=antialias), scaled=True)
    r = count(model, x, backward=True)
    assert not r.uncounted_ops
    # 3 FLOPs per tap per output gradient, then x * w's gradient for w: a multiply and a sum per x element
    assert r.backward_flops == 2 * 3 * 9 * 11 * 48 + 2 * x.numel()


ROIS = torch.tensor([[0, 1.0, 1.0, 9.0, 7.0], [1, 0.0, 2.0, 15.0, 15.0]])


def _roi(sampling_ratio, aligned=False, scaled=False):
    ops = pytest.importorskip("torchvision.ops")
    return Functional(lambda f, r: ops.roi_align(f, r, (3, 2), 0.5, sampling_ratio, aligned), scaled=scaled)


def test_roi_align_fixed_sampling():
    feat = torch.randn(2, 3, 16, 16)
    r = count(_roi(2), feat, ROIS)
    # 2 RoIs x 3 channels x 3 x 2 bins; 2 x 2 samples of 8 FLOPs and a divide per bin
    assert (r.flops, r.uncounted_ops) == (2 * 3 * 6 * (8 * 4 + 1), {})
    meta = count(_roi(2), feat, ROIS, device="meta")  # the sample count needs no RoI values
    assert (meta.flops, meta.uncounted_ops) == (r.flops, {})


def test_roi_align_adaptive_sampling():
    feat = torch.randn(2, 3, 16, 16)
    r = count(_roi(-1), feat, ROIS)
    # RoI 0 at scale 0.5: 4 x 3 -> ceil(3/3) x ceil(4/2) = 2 samples; RoI 1: 7.5 x 6.5 -> 3 x 4 = 12
    assert (r.flops, r.uncounted_ops) == (3 * 6 * (8 * 2 + 1) + 3 * 6 * (8 * 12 + 1), {})
    tiny = torch.tensor([[0, 1.0, 1.0, 1.5, 1.2]])  # under one pixel: the non-aligned kernel takes 1 x 1
    assert count(_roi(-1), feat, tiny).flops == 3 * 6 * (8 * 1 + 1)
    meta = count(_roi(-1), feat, ROIS, device="meta")  # no RoI values on meta: listed, never guessed
    assert "torchvision.roi_align.default" in meta.uncounted_ops


def test_roi_align_backward():
    feat = torch.randn(2, 3, 16, 16)
    r = count(_roi(2, scaled=True), feat, ROIS, backward=True)
    assert not r.uncounted_ops
    assert r.backward_flops == 2 * 3 * 6 * (8 * 4 + 1) + 2 * feat.numel()


def test_roi_align_with_formula_overrides():
    """A per-count table (count(..., formulas=)) gets the library op's formula as well."""
    feat = torch.randn(2, 3, 16, 16)
    r = count(_roi(2), feat, ROIS, formulas={"aten::mm": lambda a, k, o: (0, 0)})
    assert (r.flops, r.uncounted_ops) == (2 * 3 * 6 * (8 * 4 + 1), {})


# ----------------------------------------------------------------------------- views
@pytest.mark.parametrize("fn", [
    lambda t: t.unsafe_split(2, 1),
    lambda t: t.unsafe_split_with_sizes([1, 3], 1),
    lambda t: t.unsafe_chunk(2, 1),
])
def test_unsafe_split_is_a_view(fn):
    r = count(Functional(fn), torch.randn(3, 4))
    assert (r.flops, r.bytes, r.uncounted_ops) == (0, 0, {})


# ----------------------------------------------------------------------------- pdist, scatters, bags
@pytest.mark.parametrize("p,per_pair", [(2.0, lambda d: 3 * d), (1.0, lambda d: 3 * d - 1),
                                        (float("inf"), lambda d: 3 * d - 1), (3.0, lambda d: 4 * d)])
def test_pdist(p, per_pair):
    n, d = 6, 4
    r = count(Functional(lambda t: F.pdist(t, p)), torch.randn(n, d))
    # p = 2: D subtractions, D squares, D - 1 adds, a square root per pair
    assert (r.flops, r.uncounted_ops) == (n * (n - 1) // 2 * per_pair(d), {})


def test_pdist_backward():
    n, d = 6, 4
    x = torch.randn(n, d)
    r = count(Functional(F.pdist, scaled=True), x, backward=True)
    assert not r.uncounted_ops
    assert r.backward_flops == n * (n - 1) // 2 * (4 * d + 1) + 2 * x.numel()


def test_scatter_add_one_add_per_source_element():
    index = torch.tensor([[0, 1, 2, 0, 1], [2, 0, 1, 1, 0]])
    r = count(Functional(lambda s, i: torch.zeros(3, 5).scatter_add(0, i, s)), torch.randn(2, 5), index)
    assert r.flops == index.numel()
    ints = count(Functional(lambda s, i: torch.zeros(3, 5, dtype=torch.long).scatter_add(0, i, s)),
                 torch.ones(2, 5, dtype=torch.long), index)
    assert ints.flops == 0 and ints.bytes > 0


def test_index_add_one_add_per_source_element():
    source = torch.randn(4, 3)
    r = count(Functional(lambda s: torch.zeros(5, 3).index_add(0, torch.tensor([0, 2, 2, 4]), s)), source)
    assert r.flops == source.numel()


INDICES, OFFSETS = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9]), torch.tensor([0, 3])


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag(mode):
    d = 4
    bag = nn.EmbeddingBag(10, d, mode=mode)
    r = count(bag, INDICES, OFFSETS)
    gathered = INDICES.numel() * d  # one add (sum, mean) or comparison (max) per gathered element
    assert r.flops == gathered + (2 * d if mode == "mean" else 0)  # mean: a divide per output element
    assert not r.uncounted_ops
    if mode == "sum":  # indices and offsets read, the 8 rows gathered, the outputs written (not the table)
        # the bags [2, d] fp32; offset2bag (empty without autograd), bag_size and max_indices: 2 int64 each
        outputs = 2 * d * 4 + 0 + 2 * 8 + 2 * 8
        assert r.bytes == INDICES.nbytes + OFFSETS.nbytes + gathered * 4 + outputs


def test_embedding_bag_per_sample_weights_and_backward():
    d = 4
    bag = nn.EmbeddingBag(10, d, mode="sum")
    r = count(bag, INDICES, OFFSETS, torch.rand(8))
    assert r.flops == 2 * INDICES.numel() * d  # a multiply and an add per gathered element
    r = count(nn.EmbeddingBag(10, d, mode="mean"), INDICES, OFFSETS, backward=True)
    assert not r.uncounted_ops
    assert r.backward_flops == 2 * INDICES.numel() * d  # scale and add each gathered row's gradient


# ----------------------------------------------------------------------------- integer arithmetic
def test_integer_arithmetic_is_not_flops():
    n = 7
    ids = count(Functional(lambda t: torch.arange(t.shape[0]) * 2 + 1), torch.randn(n))
    assert ids.flops == 0 and ids.bytes > 0
    assert count(Functional(lambda t: t * 2), torch.randn(n)).flops == n


def test_integer_comparisons_and_reductions_are_not_flops():
    n = 7
    ids = torch.arange(n)
    assert count(Functional(lambda t: (t < 3).logical_not()), ids).flops == 0
    assert count(Functional(lambda t: t > 0), torch.randn(n)).flops == n  # a float comparison is
    assert count(Functional(lambda t: (t > 2).sum()), ids).flops == 0
    assert count(Functional(lambda t: t.cumsum(0)), ids).flops == 0
    assert count(Functional(lambda t: t.sum()), torch.randn(n)).flops == n
    assert count(Functional(lambda t: t.argmax()), torch.randn(n)).flops == n  # int result, float work
    mask = torch.ones(n, dtype=torch.bool)
    r = count(Functional(lambda m: m & m.logical_not()), mask)
    assert r.flops == 0 and r.bytes > 0


# ----------------------------------------------------------------------------- nested tensors
def _encoder():
    return nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, batch_first=True),
                                 2, enable_nested_tensor=True).eval()


def test_nested_tensor_shape_and_bytes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nested = torch.nested.nested_tensor([torch.randn(3, 4), torch.randn(5, 4)])
    assert shape_of(nested) == "nested(2, 3..5, 4)"
    assert shape_of([nested, torch.ones(2)]) == ["nested(2, 3..5, 4)", (2,)]
    assert io_bytes((nested,), nested) == 2 * (3 + 5) * 4 * 4
    jagged = torch.nested.nested_tensor([torch.randn(3, 4), torch.randn(5, 4)], layout=torch.jagged)
    assert shape_of(jagged) == "nested(2, 3..5, 4)"


def test_transformer_encoder_with_padding_mask_counts_real_tokens():
    """With a padding mask the fast path runs on nested tensors: each sequence over its own length."""
    model, e, f = _encoder(), 32, 64
    x = torch.randn(2, 6, e)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[1, 4:] = True  # the second sequence has 4 real tokens
    r = torchprof_lab.count(model, inputs={"src": x, "src_key_padding_mask": mask})
    assert not r.uncounted_ops
    assert r.layer("layers.0").output_shape == "nested(2, 4..6, 32)"

    def per_layer(lengths):  # projections, both attention matmuls, the FFN
        return sum(4 * n * e * e + 2 * n * n * e + 2 * n * e * f for n in lengths)

    assert r.macs == 2 * per_layer([6, 4])
    unmasked = torchprof_lab.count(model, inputs={"src": x})
    assert unmasked.macs == 2 * per_layer([6, 6]) > r.macs
    assert 0 < r.flops < unmasked.flops and r.bytes > 0


class NestedLinear(nn.Module):
    def __init__(self, layout):
        super().__init__()
        self.layout, self.fc = layout, nn.Linear(4, 4)

    def forward(self, a, b):
        return self.fc(torch.nested.nested_tensor([a, b], layout=self.layout))


@pytest.mark.parametrize("layout", [torch.strided, torch.jagged])
def test_linear_on_a_nested_tensor_is_listed_not_a_crash(layout):
    """A composite on a nested tensor cannot be decomposed as a plain one: it runs whole and is listed."""
    r = count(NestedLinear(layout), torch.randn(3, 4), torch.randn(5, 4))
    assert r.layer("fc").output_shape == "nested(2, 3..5, 4)"
    assert r.uncounted_ops == {"aten.linear.default": 1}
