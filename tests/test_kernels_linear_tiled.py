"""The vector register-tile reference kernels (issue 23) against the NumPy twins.

Every path (16-lane tiles = AVX-512 vectors, 8-lane tiles = AVX2 vectors,
the scalar fallback) on 1 and 2 threads must give the bits of
``matmul_acc64_twin`` / ``conv_acc64_twin`` (NumPy, one ordered addition per
reduction step), on shapes that do not fill a tile: odd channel counts,
1x1, a single output, fewer rows than a tile, reductions cut into blocks.
"""

import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refcomp.kernels.linear import (conv_acc64, conv_acc64_twin, conv_rounded, matmul_acc64,
                                    matmul_acc64_twin)
from refcomp.kernels.linear_tiled import conv_tiled, matmul_tiled
from refcomp.kernels._tilevec import LANES, ROWS, VECTOR
from refcomp.testing import assert_bits_equal

PATHS = (16, 8, 0)          # tile widths; 0 = the scalar kernel


class _threads:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = numba.get_num_threads()
        numba.set_num_threads(min(self.n, numba.config.NUMBA_NUM_THREADS))

    def __exit__(self, *exc):
        numba.set_num_threads(self.old)


def _operands(rng, shape, exact):
    # exact: float32 values widened (the FMA path); else full float64 values,
    # products rounded (the separate multiply-add path).
    a = rng.standard_normal(shape)
    if exact:
        a = a.astype(np.float32).astype(np.float64)
    # a few exact zeros of both signs and tiny/huge magnitudes
    flat = a.reshape(-1)
    if flat.size > 3:
        flat[0], flat[-1] = -0.0, 0.0
        flat[flat.size // 2] *= 2.0 ** 60
    return a


def test_host_choice_matches_cpu_features():
    from refcomp.kernels._host import has_feature
    if has_feature("avx512f"):
        assert (VECTOR, LANES) == (8, 16)
    elif has_feature("avx2") and has_feature("fma"):
        assert (VECTOR, LANES) == (4, 8)
    else:
        assert LANES == 0


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2 * ROWS + 1), k=st.integers(0, 40), m=st.integers(1, 37),
       exact=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_matmul_paths_twin_and_threads(n, k, m, exact, seed):
    rng = np.random.default_rng(seed)
    x, wt = _operands(rng, (n, k), exact), _operands(rng, (k, m), exact)
    want = matmul_acc64_twin(x, wt)
    for lanes in PATHS:
        for threads in (1, 2):
            with _threads(threads):
                got = matmul_acc64(x, wt, exact_products=exact, lanes=lanes)
            assert_bits_equal(got, want)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 14), k=st.integers(1, 30), m=st.integers(1, 20),
       chunk=st.integers(1, 13), kc=st.integers(1, 9), lanes=st.sampled_from([16, 8]),
       exact=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_matmul_tiled_twin_blocking(n, k, m, chunk, kc, lanes, exact, seed):
    # Reductions cut into blocks of kc steps (accumulators stored and
    # reloaded between blocks) and any rows-per-job: same bits.
    rng = np.random.default_rng(seed)
    x, wt = _operands(rng, (n, k), exact), _operands(rng, (k, m), exact)
    for threads in (1, 2):
        with _threads(threads):
            got = matmul_tiled(x, wt, lanes, exact_products=exact, chunk=chunk, kc=kc)
        assert_bits_equal(got, matmul_acc64_twin(x, wt))


def test_matmul_twin_single_output_and_independent_sum():
    # 1x1x1 and an independent Python-float definition of one output.
    x = np.array([[3.0]])
    w = np.array([[0.1]])
    for lanes in PATHS:
        assert_bits_equal(matmul_acc64(x, w, lanes=lanes), np.array([[0.30000000000000004]]))
    rng = np.random.default_rng(5)
    x, wt = rng.standard_normal((3, 700)), rng.standard_normal((700, 19))
    acc = 0.0
    for i in range(700):
        acc = acc + float(x[2, i]) * float(wt[i, 18])
    for lanes in PATHS:
        assert matmul_acc64(x, wt, lanes=lanes)[2, 18] == acc


_conv_shapes = st.fixed_dictionaries({
    "n": st.integers(1, 2), "groups": st.integers(1, 3), "cg": st.integers(1, 3),
    "og": st.integers(1, 19), "h": st.integers(1, 7), "w": st.integers(1, 7),
    "kh": st.integers(1, 3), "kw": st.integers(1, 3), "sh": st.integers(1, 3),
    "sw": st.integers(1, 2), "dh": st.integers(1, 2), "dw": st.integers(1, 2),
    "pad": st.integers(0, 2)})


def _conv_case(p, rng, exact):
    c, o = p["groups"] * p["cg"], p["groups"] * p["og"]
    hp, wp = p["h"] + 2 * p["pad"], p["w"] + 2 * p["pad"]
    # make the kernel fit the padded input
    kh = min(p["kh"], (hp - 1) // p["dh"] + 1)
    kw = min(p["kw"], (wp - 1) // p["dw"] + 1)
    xp = np.zeros((p["n"], c, hp, wp))
    xp[:, :, p["pad"]:p["pad"] + p["h"], p["pad"]:p["pad"] + p["w"]] = \
        _operands(rng, (p["n"], c, p["h"], p["w"]), exact)
    w = _operands(rng, (o, p["cg"], kh, kw), exact)
    return xp, w, (p["sh"], p["sw"]), (p["dh"], p["dw"])


@settings(max_examples=40, deadline=None)
@given(p=_conv_shapes, exact=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_conv_paths_twin_and_threads(p, exact, seed):
    # conv_acc64's default for each width (16: implicit im2col; 8: im2col tile).
    rng = np.random.default_rng(seed)
    xp, w, stride, dil = _conv_case(p, rng, exact)
    want = conv_acc64_twin(xp, w, stride, dil, p["groups"])
    for lanes in PATHS:
        for threads in (1, 2):
            with _threads(threads):
                got = conv_acc64(xp, w, stride, dil, p["groups"], exact_products=exact,
                                 lanes=lanes)
            assert_bits_equal(got, want)


@settings(max_examples=30, deadline=None)
@given(p=_conv_shapes, bias=st.booleans(), out32=st.booleans(), chunk=st.integers(1, 20),
       kc=st.integers(1, 12), seed=st.integers(0, 2 ** 16))
def test_conv_rounded_twin_float32_input_bias_blocking(p, bias, out32, chunk, kc, seed):
    # float32 input read directly (widened exactly), bias added in float64
    # and one rounding in the store: the bits of twin + bias + astype.
    rng = np.random.default_rng(seed)
    xp, w, stride, dil = _conv_case(p, rng, True)
    g = p["groups"]
    b = rng.standard_normal(w.shape[0]).astype(np.float32) if bias else None
    dt = np.float32 if out32 else np.float64
    want = conv_acc64_twin(xp, w, stride, dil, g)
    if b is not None:
        want = want + b.astype(np.float64)[None, :, None, None]
    want = want.astype(dt)
    x32, w32 = xp.astype(np.float32), w.astype(np.float32)
    for lanes in PATHS:
        for threads in (1, 2):
            with _threads(threads):
                got = conv_rounded(x32, w32, b, stride, dil, g, dt, exact_products=True,
                                   lanes=lanes)
            assert_bits_equal(got, want)
    from refcomp.kernels.linear import _grouped_kernel_matrix
    for lanes in (16, 8):
        for gathered in (False, True):         # im2col tile / implicit im2col
            out = np.empty(want.shape, dtype=dt)
            conv_tiled(x32, _grouped_kernel_matrix(w, g), out, stride, dil, w.shape[2],
                       w.shape[3], lanes, bias=None if b is None else b.astype(np.float64),
                       exact_products=True, chunk=chunk, kc=kc, gathered=gathered)
            assert_bits_equal(out, want)


@pytest.mark.parametrize("lanes", PATHS)
def test_conv_twin_nonfinite_and_padding_terms(lanes):
    # Padded zeros are real terms: 0 * inf = NaN reaches the outputs whose
    # window covers the padding, exactly as in the twin.
    xp = np.zeros((1, 2, 5, 5))
    xp[0, :, 1:4, 1:4] = 1.5
    w = np.ones((3, 2, 3, 3))
    w[1, 0, 0, 0] = np.inf
    w[2, 1, 2, 2] = -np.inf
    got = conv_acc64(xp, w, (1, 1), (1, 1), 1, lanes=lanes)
    with np.errstate(invalid="ignore"):
        want = conv_acc64_twin(xp, w, (1, 1), (1, 1), 1)
    assert_bits_equal(got, want)
    assert np.isnan(got[0, 1, 0, 0]) and got[0, 0, 1, 1] == 2 * 9 * 1.5


# -- whole-sequence recurrent cells (kernels.rnn_tiled) against the NumPy step ----------
@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(["lstm", "gru"]), n=st.integers(1, 2 * ROWS + 3),
       t=st.integers(0, 4), f=st.integers(1, 5), h=st.integers(1, 21),
       f32=st.booleans(), biases=st.booleans(), states=st.booleans(), seq=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_recurrent_tiled_twin_and_threads(kind, n, t, f, h, f32, biases, states,
                                          seq, seed):
    import refcomp.layers.recurrent as R
    rng = np.random.default_rng(seed)
    dt = np.float32 if f32 else np.float64
    g = 4 if kind == "lstm" else 3

    def r(*s, scale=1.0):
        return (rng.standard_normal(s) * scale).astype(dt)

    args = (r(n, t, f), r(g * h, f, scale=0.5), r(g * h, h, scale=0.5))
    kw = {"b_ih": r(g * h) if biases else None, "b_hh": r(g * h) if biases else None,
          "h0": r(n, h) if states else None, "return_sequences": seq}
    if kind == "lstm":
        kw["c0"] = r(n, h) if states else None
    fn = R.lstm if kind == "lstm" else R.gru
    old = R._TILED_LANES
    try:
        R._TILED_LANES = 0
        want = fn(*args, **kw)
        for lanes in (16, 8):
            R._TILED_LANES = lanes
            for threads in (1, 2):
                with _threads(threads):
                    got = fn(*args, **kw)
                assert_bits_equal(got[0], want[0])
                assert len(got[1]) == len(want[1])
                for a, b in zip(got[1], want[1]):
                    assert_bits_equal(a, b)
    finally:
        R._TILED_LANES = old


def test_recurrent_tiled_twin_gru_reset_before_keeps_numpy_step(monkeypatch):
    # reset_after=False multiplies h by r before the product: the NumPy step
    # runs (its product is still the tiled matmul); same bits on every path.
    import refcomp.layers.recurrent as R
    rng = np.random.default_rng(7)
    x, wi, wh = (rng.standard_normal(s).astype(np.float32) for s in ((3, 4, 5), (21, 5), (21, 7)))
    outs = []
    for lanes in (16, 8, 0):
        monkeypatch.setattr(R, "_TILED_LANES", lanes)
        outs.append(R.gru(x, wi, wh, reset_after=False)[0])
    assert_bits_equal(outs[0], outs[2])
    assert_bits_equal(outs[1], outs[2])
