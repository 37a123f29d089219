"""The recurrent bound through the signed Jacobians of the state recurrence
(refcomp.testing._rnn_jacobian): sound for every ONNX option, and tight.

Sound: float32 evaluations in four summation orders (tests/float32_eval.py,
written from the ONNX operator text) and ONNX Runtime's LSTM / GRU / RNN
kernels land within the bound, with clip, peepholes, input_forget,
activation lists (all eleven ONNX functions, with alpha / beta), reverse
and bidirectional directions, the seed-000 GRU update, constant initial
states, per-sample sequence_lens and the time-major layout.

Tight: on the shipped LSTM and GRU the worst observed float32 error is a
few percent of the bound or more (it was ~1e-5 of the former elementwise
bound, whose max at the last step was 0.14 against errors of 7e-7).
"""

import collections
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import float32_eval as fe
from refcomp import Layer, Model, ParameterError
from refcomp.testing import reference_and_bound
from refcomp.testing.strategies import layers, recurrent_configs

RNN = ("lstm", "gru", "mgu", "simple_rnn")


def _has_options(layer):
    a = layer.attrs
    return (a.get("direction", "forward") != "forward" or a.get("clip") is not None
            or a.get("activations") is not None or bool(a.get("input_forget"))
            or a.get("update", "standard") != "standard" or "P" in layer.weights)


def test_options_float32_orders_within_bound():
    seen = collections.Counter()

    @settings(max_examples=250, deadline=None)
    # LSTM drawn more often: peepholes exist only there and must be seen.
    @given(st.one_of(layers(kinds=RNN, onnx_options=True),
                     layers(kinds=("lstm",), onnx_options=True)))
    def run(case):
        layer, x = case
        v, bound = reference_and_bound(Model([layer]), x)
        for order in fe.ORDERS:
            y = fe.run_layer(layer, x, order).astype(np.float32).astype(np.float64)
            assert np.all(np.abs(y - v) <= bound), (order, layer.attrs)
        seen[_has_options(layer)] += 1
        for o in ("clip", "activations", "input_forget", "update"):
            if layer.attrs.get(o) not in (None, False, "standard"):
                seen[o] += 1
        if "P" in layer.weights:
            seen["peepholes"] += 1
        seen[layer.attrs.get("direction", "forward")] += 1
    run()
    for key in (True, "clip", "activations", "input_forget", "update", "peepholes",
                "reverse", "bidirectional"):
        assert seen[key] > 0, key


@pytest.mark.frameworks
def test_options_onnxruntime_within_bound():
    pytest.importorskip("onnxruntime")
    from refcomp.validate._common import NotExpressible
    from refcomp.validate._onnx_run import onnxruntime_forward
    worst = collections.defaultdict(float)

    @settings(max_examples=150, deadline=None)
    @given(layers(kinds=("lstm", "gru", "simple_rnn"), onnx_options=True))
    def run(case):
        layer, x = case
        model = Model([layer])
        try:
            y = onnxruntime_forward(model, x).astype(np.float64)
        except NotExpressible:
            return
        v, bound = reference_and_bound(model, x)
        r = np.abs(y - v) / bound
        assert np.all(r <= 1), layer.attrs
        worst[(layer.kind, _has_options(layer))] = max(worst[(layer.kind, _has_options(layer))],
                                                       float(r.max()))
    run()
    assert any(opt for _, opt in worst)
    assert max(worst.values()) > 1e-2                   # not vacuous


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_shipped_recurrent_bound_is_tight(name):
    import refcomp
    from refcomp.data import load_split
    model = refcomp.load(f"data/digits_{name}.h5")
    layer = Model([model.layers[0]])
    x = np.asarray(load_split("test")[0])[:40].reshape(-1, 8, 8).astype(np.float32)
    v, bound = reference_and_bound(layer, x)
    err = np.abs(layer(x, precision="fast").astype(np.float64) - v)
    assert np.all(err <= bound)
    assert np.max(err / bound) > 1e-2                   # was ~5e-6 with the elementwise bound
    assert np.max(bound) < 5e-3                         # was 0.14


def test_kinks_restart_the_window():
    """A clip that cuts the pre-activations: the bound stays sound through the kink."""
    rng = np.random.default_rng(5)
    H, F = 3, 2
    layer = Layer("simple_rnn", attrs={"clip": 0.5, "activations": ["Relu"]},
                  weights={"W_ih": rng.standard_normal((H, F)).astype(np.float32),
                           "W_hh": rng.standard_normal((H, H)).astype(np.float32)})
    x = rng.standard_normal((64, 6, F)).astype(np.float32)
    v, bound = reference_and_bound(Model([layer]), x)
    for order in fe.ORDERS:
        y = fe.run_layer(layer, x, order).astype(np.float64)
        assert np.all(np.abs(y - v) <= bound)


def test_unknown_recurrent_activation_refused_by_name():
    layer = Layer("simple_rnn", attrs={"activations": ["Tanh"]},
                  weights={"W_ih": np.ones((1, 1), np.float32),
                           "W_hh": np.ones((1, 1), np.float32)})
    layer.attrs["activations"] = ["Swish"]
    with pytest.raises(ParameterError, match="(?i)swish"):
        reference_and_bound(Model([layer]), np.ones((1, 2, 1), np.float32))


def test_recurrent_configs_draw_onnx_options_only_when_asked():
    @settings(max_examples=40, deadline=None)
    @given(recurrent_configs())
    def run(cfg):
        assert "direction" not in cfg["attrs"] and cfg["directions"] == 1
    run()


@pytest.mark.parametrize("acts", [["Tanh", "Tanh"], ["Relu", "Softsign"], ["Softplus", "Tanh"]])
def test_gru_gate_outside_unit_interval_gives_a_nonnegative_sound_bound(acts):
    # A z gate through tanh / relu / softplus leaves [0, 1]: the blend's error weights are
    # |1 - z| and |z| (they were 1 - z and z, and the bound went negative).
    rng = np.random.default_rng(11)
    H, F = 4, 4
    w = {"W_ih": (0.5 * rng.standard_normal((3 * H, F))).astype(np.float32),
         "W_hh": (0.5 * rng.standard_normal((3 * H, H))).astype(np.float32)}
    for direction in ("forward", "reverse"):
        layer = Layer("gru", attrs={"direction": direction, "activations": acts,
                                    "reset_after": False, "return_sequences": True},
                      weights=w)
        x = rng.standard_normal((2, 6, F)).astype(np.float32)
        v, bound = reference_and_bound(Model([layer]), x)
        assert np.all(bound >= 0) and np.all(np.isfinite(bound))
        for order in fe.ORDERS:
            y = fe.run_layer(layer, x, order).astype(np.float32).astype(np.float64)
            assert np.all(np.abs(y - v) <= bound), (direction, order)


def _states_lens_layer(rng, kind, direction, layout, return_sequences, N, T, F, H):
    """A layer with random initial states (h0 per sample, c0 broadcast from (1, H)) and
    lengths 1, T and one in between."""
    G = {"lstm": 4, "gru": 3, "simple_rnn": 1}[kind]
    w = {}
    for suf in [""] + (["_reverse"] if direction == "bidirectional" else []):
        w["W_ih" + suf] = (0.6 * rng.standard_normal((G * H, F))).astype(np.float32)
        w["W_hh" + suf] = (0.6 * rng.standard_normal((G * H, H))).astype(np.float32)
        w["b_ih" + suf] = (0.3 * rng.standard_normal(G * H)).astype(np.float32)
        w["h0" + suf] = rng.standard_normal((N, H)).astype(np.float32)
        if kind == "lstm":
            w["c0" + suf] = (2 * rng.standard_normal((1, H))).astype(np.float32)
    lens = [1, T] + [int(v) for v in rng.integers(1, T + 1, N - 2)]
    return Layer(kind, attrs={"direction": direction, "layout": layout,
                              "return_sequences": return_sequences, "sequence_lens": lens},
                 weights=w)


@pytest.mark.parametrize("kind", ["lstm", "gru", "simple_rnn"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", ["batch_first", "time_major"])
def test_states_lens_and_time_major_float32_orders_within_bound(kind, direction, layout):
    """Initial states, sequence_lens and the time-major layout: the bound's reference is
    refcomp's output (shape and values), and float32 evaluations in four summation orders
    (tests/float32_eval.py, written from the ONNX semantics) land within the bound."""
    rng = np.random.default_rng(zlib.crc32(f"{kind} {direction} {layout}".encode()))
    N, T, F, H = 5, 7, 3, 4
    for rs in (True, False):
        layer = _states_lens_layer(rng, kind, direction, layout, rs, N, T, F, H)
        model = Model([layer])
        x = rng.standard_normal((N, T, F) if layout == "batch_first" else (T, N, F))
        x = x.astype(np.float32)
        v, bound = reference_and_bound(model, x)
        ref = model(x).astype(np.float64)
        assert v.shape == bound.shape == ref.shape
        assert np.all(np.abs(ref - v) <= bound)
        assert np.all(np.abs(model(x, precision="fast").astype(np.float64) - v) <= bound)
        for order in fe.ORDERS:
            y = fe.run_layer(layer, x, order).astype(np.float32).astype(np.float64)
            assert y.shape == v.shape
            assert np.all(np.abs(y - v) <= bound), (order, rs)
        if rs:                          # outputs past a length: exactly 0 with bound 0
            seq = v if layout == "batch_first" else v.transpose(1, 0, 2)
            eb = bound if layout == "batch_first" else bound.transpose(1, 0, 2)
            for n, length in enumerate(layer.attrs["sequence_lens"]):
                assert not np.any(seq[n, length:])
                assert np.all(eb[n, length:] <= 2.0 ** -126)


@pytest.mark.parametrize("kind", ["lstm", "gru", "simple_rnn"])
def test_wrong_initial_state_or_ignored_lengths_do_not_conform(kind):
    """Usefulness: zero states instead of the given ones, or every step run, are detected."""
    from refcomp.testing import assert_conforms
    rng = np.random.default_rng(3)
    N, T, F, H = 4, 6, 3, 4
    for direction in ("forward", "reverse", "bidirectional"):
        layer = _states_lens_layer(rng, kind, direction, "batch_first", True, N, T, F, H)
        model = Model([layer])
        x = rng.standard_normal((N, T, F)).astype(np.float32)
        assert_conforms(fe.run_layer(layer, x, "pairwise"), model, x)
        zero = Layer(kind, attrs=dict(layer.attrs),
                     weights={k: w for k, w in layer.weights.items() if k[:2] not in ("h0", "c0")})
        with pytest.raises(AssertionError):
            assert_conforms(fe.run_layer(zero, x, "sequential"), model, x)
        full = Layer(kind, attrs=dict(layer.attrs, sequence_lens=None), weights=layer.weights)
        with pytest.raises(AssertionError):
            assert_conforms(fe.run_layer(full, x, "sequential"), model, x)


def test_initial_states_bounded_for_a_coarser_evaluation_dtype():
    """float16 evaluation of a float32 model: the states are rounded too (bound u |h0|)."""
    rng = np.random.default_rng(4)
    layer = _states_lens_layer(rng, "gru", "forward", "batch_first", True, 3, 4, 2, 3)
    x = rng.standard_normal((3, 4, 2)).astype(np.float32)
    _, b32 = reference_and_bound(Model([layer]), x)
    _, b16 = reference_and_bound(Model([layer]), x, dtype="float16")
    assert np.all(b16 >= b32) and np.all(np.isfinite(b16))


@pytest.mark.frameworks
def test_onnxruntime_builder_refuses_states_lens_and_time_major_it_would_drop():
    """refcomp.validate's ORT graph reads x batch-first from zero states: it must say so,
    not run another computation against the bound."""
    pytest.importorskip("onnxruntime")
    from refcomp.validate._common import NotBuilt
    from refcomp.validate._onnx_run import onnxruntime_forward
    w = {"W_ih": np.ones((3, 2), np.float32), "W_hh": np.ones((3, 3), np.float32)}
    x = np.ones((2, 3, 2), np.float32)
    for extra_w, attrs in (({"h0": np.ones((1, 3), np.float32)}, {}),
                           ({}, {"sequence_lens": [1, 3]}), ({}, {"layout": "time_major"})):
        with pytest.raises(NotBuilt, match="not built here"):
            onnxruntime_forward(Model([Layer("simple_rnn", attrs=attrs,
                                             weights=dict(w, **extra_w))]), x)
