"""ONNX import of recurrent nodes with constant initial states and partial sequence_lens,
against ONNX Runtime and PyTorch (both torch.onnx exporters).

Tolerance: ONNX Runtime's output must lie within refcomp.testing's derived bound
(reference_and_bound, which covers initial states, sequence_lens and time-major layouts), and
within the float32 tolerance of tests/test_io_onnx_attributes.py (rtol 1e-5, atol 1e-6: a
few float32 ulps of ORT's own arithmetic), which tells every semantic alternative apart (a
state ignored, the reverse direction run over the padded tail instead of within the valid
length, the final state taken at T-1 instead of at the last valid step, non-zero outputs past
a sequence's end).
"""

import contextlib
import io
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import refcomp.layers as L  # noqa: E402
from refcomp import FormatError, ShapeError  # noqa: E402
from refcomp.io import onnx as ro  # noqa: E402
from refcomp.testing import assert_conforms, reference_and_bound  # noqa: E402

G = {"LSTM": 4, "GRU": 3, "RNN": 1}
H, F, T, N = 3, 4, 6, 3
TOL = dict(rtol=1e-5, atol=1e-6)


def _f(rng, *s):
    return rng.standard_normal(s).astype(np.float32)


def _ort(path, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def _save(tmp_path, nodes, inits, x_shape=("N", T, F)):
    """Graph x [N, T, F] -> y, opset 17, saved to tmp_path/m.onnx."""
    gr = helper.make_graph(nodes, "g",
                           [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                           [numpy_helper.from_array(v, k) for k, v in inits.items()])
    p = tmp_path / "m.onnx"
    onnx.save(helper.make_model(gr, opset_imports=[helper.make_opsetid("", 17)]), str(p))
    return p


def _rnn_graph(tmp_path, op, direction, *, lens=None, states=False, output="Y",
               as_constant_nodes=False, seed=0, time_major=False):
    """x [N, T, F] batch-first graph input -> Transpose -> op -> Y as (N, T, D*H) or Y_h
    as (N, D*H), the layouts PyTorch's exporters write (``time_major``: x [T, N, F] into
    the op as given, Y as (T, N, D*H))."""
    rng = np.random.default_rng(seed)
    d = 2 if direction == "bidirectional" else 1
    g = G[op]
    inits = {"W": _f(rng, d, g * H, F), "R": _f(rng, d, g * H, H),
             "B": _f(rng, d, 2 * g * H)}
    ins = ["xs", "W", "R", "B", "", "", ""]
    if lens is not None:
        inits["lens"] = np.asarray(lens, np.int32)
        ins[4] = "lens"
    if states:
        inits["h0"] = _f(rng, d, N, H)
        ins[5] = "h0"
        if op == "LSTM":
            inits["c0"] = _f(rng, d, N, H)
            ins[6] = "c0"
    while ins and ins[-1] == "":
        ins.pop()
    nodes = [helper.make_node("Transpose", ["x"], ["xs"], perm=[1, 0, 2])]
    if time_major:
        nodes = [helper.make_node("Identity", ["x"], ["xs"])]
    if as_constant_nodes:               # weights and states as Constant nodes
        nodes += [helper.make_node("Constant", [], [k], value=numpy_helper.from_array(v, k))
                  for k, v in inits.items()]
        inits = {}
    nodes.append(helper.make_node(op, ins, ["Y", "Y_h"], hidden_size=H, name="rnn",
                                  direction=direction))
    if output == "Y":
        nodes += [helper.make_node("Transpose", ["Y"], ["Yt"],
                                   perm=[0, 2, 1, 3] if time_major else [2, 0, 1, 3]),
                  helper.make_node("Reshape", ["Yt", "shape"], ["y"])]
        inits["shape"] = np.array([0, 0, -1], np.int64)
    else:
        nodes += [helper.make_node("Transpose", ["Y_h"], ["Ht"], perm=[1, 0, 2]),
                  helper.make_node("Reshape", ["Ht", "shape"], ["y"])]
        inits["shape"] = np.array([0, -1], np.int64)
    return _save(tmp_path, nodes, inits, (T, "N", F) if time_major else ("N", T, F))


CASES = [(op, direction, output) for op in G for direction in
         ("forward", "reverse", "bidirectional") for output in ("Y", "Y_h")]


@pytest.mark.parametrize("op,direction,output", CASES, ids=lambda v: str(v))
def test_partial_sequence_lens_and_initial_states_against_onnxruntime(tmp_path, op, direction,
                                                                      output):
    lens = [T, 2, 4]                      # one full, two shorter than T
    p = _rnn_graph(tmp_path, op, direction, lens=lens, states=True, output=output,
                   seed=len(op) + len(direction))
    m = ro.load(p)
    layer = m.layers[-1]
    assert layer.attrs["sequence_lens"] == lens
    assert "h0" in layer.weights and (op != "LSTM" or "c0" in layer.weights)
    x = _f(np.random.default_rng(7), N, T, F)
    got, want = m(x), _ort(p, x)
    d = 2 if direction == "bidirectional" else 1
    assert got.shape == want.shape == ((N, T, d * H) if output == "Y" else (N, d * H))
    np.testing.assert_allclose(got, want, **TOL)
    v, bound = reference_and_bound(m, x)
    assert np.all(np.abs(want.astype(np.float64) - v) <= bound)
    assert np.all(np.abs(got.astype(np.float64) - v) <= bound)
    if output == "Y":                     # ONNX: outputs past a sequence's length are zero
        for b, n_b in enumerate(lens):
            assert not np.any(got[b, n_b:])
            assert np.all(np.signbit(got[b, n_b:]) == 0)


@pytest.mark.parametrize("op", list(G))
def test_initial_states_as_constant_nodes_and_model_batch_check(tmp_path, op):
    p = _rnn_graph(tmp_path, op, "bidirectional", states=True, as_constant_nodes=True, seed=3)
    m = ro.load(p)
    x = _f(np.random.default_rng(8), N, T, F)
    np.testing.assert_allclose(m(x), _ort(p, x), **TOL)
    # the constant state fixes the batch size: another one is refused by name
    with pytest.raises(ShapeError, match=r"initial state 'h0'.*3 samples"):
        m(x[:2])


def test_sequence_lens_model_matches_the_layer_function(tmp_path):
    # the Model passes exactly its attributes and weights to refcomp.layers.lstm
    lens = [1, T, 3]
    p = _rnn_graph(tmp_path, "LSTM", "bidirectional", lens=lens, states=True, seed=5)
    m = ro.load(p)
    lay = m.layers[-1]
    x = _f(np.random.default_rng(9), N, T, F)
    want, _ = L.lstm(x, lay.w("W_ih"), lay.w("W_hh"), lay.w("b_ih"), lay.w("b_hh"),
                     h0=np.stack([lay.w("h0"), lay.w("h0_reverse")]),
                     c0=np.stack([lay.w("c0"), lay.w("c0_reverse")]),
                     direction="bidirectional", sequence_lens=np.array(lens),
                     reverse={k: lay.w(k + "_reverse")
                              for k in ("W_ih", "W_hh", "b_ih", "b_hh")})
    got = m(x)
    assert got.dtype == want.dtype and np.array_equal(got.view(np.uint32),
                                                      want.view(np.uint32))
    with pytest.raises(ShapeError, match=r"sequence_lens holds 3 lengths"):
        m(x[:2])


@pytest.mark.parametrize("lens,match", [([0, T, T], r"outside \[1, 6\]"),
                                        ([T + 1, 1, 1], r"outside \[1, 6\]")])
def test_bad_sequence_lens_refused_by_name(tmp_path, lens, match):
    p = _rnn_graph(tmp_path, "GRU", "forward", lens=lens)
    with pytest.raises(FormatError, match=r"node 'rnn' \(op GRU\): input sequence_lens .*"
                       + match):
        ro.load(p)


def test_last_step_of_partial_sequences_refused(tmp_path):
    # y[:, -1] after partial lengths is zeros for the short sequences, not the final state
    rng = np.random.default_rng(0)
    inits = {"W": _f(rng, 1, 3 * H, F), "R": _f(rng, 1, 3 * H, H),
             "lens": np.array([T, 2, 3], np.int32), "ax": np.array([1], np.int64),
             "i": np.array(-1, np.int64)}
    nodes = [helper.make_node("Transpose", ["x"], ["xs"], perm=[1, 0, 2]),
             helper.make_node("GRU", ["xs", "W", "R", "", "lens"], ["Y"], hidden_size=H),
             helper.make_node("Squeeze", ["Y", "ax"], ["Ys"]),
             helper.make_node("Gather", ["Ys", "i"], ["y"], axis=0, name="last")]
    p = _save(tmp_path, nodes, inits)
    with pytest.raises(FormatError, match=r"node 'last' \(op Gather\).*sequence_lens"):
        ro.load(p)


def test_initial_state_of_the_wrong_shape_refused(tmp_path):
    p = _rnn_graph(tmp_path, "RNN", "forward", states=True)
    m = onnx.load(str(p))
    for init in m.graph.initializer:
        if init.name == "h0":
            init.CopyFrom(numpy_helper.from_array(np.ones((2, N, H), np.float32), "h0"))
    onnx.save(m, str(p))
    with pytest.raises(FormatError, match=r"node 'rnn' \(op RNN\): input initial_h .*\[2, 3, 3\]"):
        ro.load(p)


# -- real exports: a learned initial state expanded along the batch ------------------------
torch = pytest.importorskip("torch")


class _LearnedState(torch.nn.Module):
    """``nn.LSTM/GRU/RNN`` started from learned states ``h0.expand(-1, N, -1)``."""

    def __init__(self, cls):
        super().__init__()
        self.rnn = cls(5, 6, num_layers=2, bidirectional=True)
        self.h0 = torch.nn.Parameter(torch.randn(4, 1, 6))
        self.c0 = torch.nn.Parameter(torch.randn(4, 1, 6)) if cls is torch.nn.LSTM else None

    def forward(self, x):
        n = x.shape[1]
        h = self.h0.expand(-1, n, -1).contiguous()
        if self.c0 is not None:
            return self.rnn(x, (h, self.c0.expand(-1, n, -1).contiguous()))[0]
        return self.rnn(x, h)[0]


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_learned_initial_states_torch_export(tmp_path, cls, dynamo):
    torch.manual_seed(4)
    m = _LearnedState(getattr(torch.nn, cls)).eval()
    x = torch.randn(7, 2, 5)
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            pytest.importorskip("onnxscript")
            torch.onnx.export(m, (x,), dynamo=True, verbose=False,
                              dynamic_shapes=({1: torch.export.Dim("batch")},)).save(str(path))
        else:
            torch.onnx.export(m, (x,), str(path), dynamo=False, input_names=["x"],
                              output_names=["y"], opset_version=17,
                              dynamic_axes={"x": {1: "N"}, "y": {1: "N"}})
    model = ro.load(path)
    for layer in model.layers:
        assert layer.w("h0").shape == (1, 6) and layer.w("h0_reverse").shape == (1, 6)
    xb = np.random.default_rng(1).standard_normal((3, 7, 5)).astype(np.float32)  # batch 3
    xo = np.ascontiguousarray(xb.transpose(1, 0, 2))
    got = model(xb).transpose(1, 0, 2)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(got, sess.run(None, {sess.get_inputs()[0].name: xo})[0], **TOL)
    with torch.no_grad():
        np.testing.assert_allclose(got, m(torch.from_numpy(xo)).numpy(), **TOL)


def test_states_and_lengths_survive_save_and_load(tmp_path):
    import refcomp
    p = _rnn_graph(tmp_path, "LSTM", "bidirectional", lens=[T, 2, 4], states=True, seed=6)
    m = ro.load(p)
    refcomp.save(m, tmp_path / "m.h5")
    m2 = refcomp.load(tmp_path / "m.h5")
    assert m2.layers[-1].attrs["sequence_lens"] == [T, 2, 4]
    assert sorted(m2.layers[-1].weights) == sorted(m.layers[-1].weights)
    x = _f(np.random.default_rng(10), N, T, F)
    assert np.array_equal(m(x).view(np.uint32), m2(x).view(np.uint32))


def test_model_layer_checks_states_and_lengths():
    from refcomp import Layer, Model, ParameterError
    rng = np.random.default_rng(11)
    w = {"W_ih": _f(rng, 3 * H, F), "W_hh": _f(rng, 3 * H, H)}
    with pytest.raises(FormatError, match=r"weight 'h0' has shape \(2, 4\), expected \(B, 3\)"):
        Layer("gru", weights=dict(w, h0=_f(rng, 2, H + 1)))
    with pytest.raises(ParameterError, match=r"sequence_lens must list one integer length"):
        Model([Layer("gru", weights=w, attrs={"sequence_lens": [1.5, 2.0, 3.0]})],
              input_shape=(T, F))
    # a (1, H) state serves every sample: the same as passing it stacked to the layer
    h0 = _f(rng, 1, H)
    m = Model([Layer("gru", weights=dict(w, h0=h0))], input_shape=(T, F))
    x = _f(rng, N, T, F)
    want, _ = L.gru(x, w["W_ih"], w["W_hh"], h0=np.repeat(h0, N, axis=0))
    assert np.array_equal(m(x).view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("op", list(G))
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_error_bound_covers_time_major_states_and_lens_against_onnxruntime(tmp_path, op,
                                                                           direction):
    """ONNX layout 0 (time-major X and Y) with initial states and partial lengths: ORT's
    float32 output lies within the derived bound; the bound is time-major like the output."""
    lens = [1, T, 3]
    p = _rnn_graph(tmp_path, op, direction, lens=lens, states=True, seed=11 + len(op),
                   time_major=True)
    lay = ro.load(p).layers[-1]
    # the importer hands out a batch-first model; its time-major twin takes ORT's X as given
    m = type(ro.load(p))([type(lay)(lay.kind, name=lay.name, weights=dict(lay.weights),
                                    attrs=dict(lay.attrs, layout="time_major"))])
    x = _f(np.random.default_rng(12), T, N, F)
    want = _ort(p, x)
    v, bound = reference_and_bound(m, x)
    assert v.shape == bound.shape == want.shape == m(x).shape
    assert np.all(np.abs(want.astype(np.float64) - v) <= bound)
    assert_conforms(want, m, x)


def test_error_bound_detects_an_ignored_state_or_ignored_lengths(tmp_path):
    """Usefulness: an evaluation from zero states, or over every step, is out of bound."""
    x = _f(np.random.default_rng(9), N, T, F)
    m = ro.load(_rnn_graph(tmp_path, "GRU", "forward", states=True, seed=4))
    assert_conforms(m(x), m, x)
    layer = m.layers[-1]
    no_state = type(m)([type(layer)(layer.kind, name=layer.name, attrs=dict(layer.attrs),
                                    weights={k: w for k, w in layer.weights.items()
                                             if k != "h0"})])
    with pytest.raises(AssertionError):
        assert_conforms(no_state(x), m, x)
    m = ro.load(_rnn_graph(tmp_path, "LSTM", "reverse", lens=[T, 2, 4], seed=5))
    assert_conforms(m(x), m, x)
    layer = m.layers[-1]
    all_steps = type(m)([type(layer)(layer.kind, name=layer.name,
                                     attrs=dict(layer.attrs, sequence_lens=None),
                                     weights=dict(layer.weights))])
    with pytest.raises(AssertionError):
        assert_conforms(all_steps(x), m, x)
