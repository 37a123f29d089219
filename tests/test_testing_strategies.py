"""Meta-tests of refcomp.testing.strategies: each strategy keeps its promises.

Every test draws examples with an inner ``@given`` function, records what
was drawn, then checks that the corner cases the strategy's docstring
promises were all reached (and that every example is valid: it runs
through refcomp).  Deterministic under the ``ci`` profile (derandomize).
"""

import collections

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import refcomp
from refcomp.layers import conv2d
from refcomp.model import LAYER_KINDS
from refcomp.testing.strategies import (affine_params, affine_tie_cases, conv1d_configs,
                                        conv2d_configs, dense_configs, fixed_point_params,
                                        float32_values, layers, minifloat_params, models,
                                        pool2d_configs, pool_nd_configs, quantizer_params,
                                        recurrent_configs, uniform_params, weight_arrays)

N = 120


def _collect(strategy, body, n=N):
    seen = collections.Counter()

    @settings(max_examples=n, derandomize=True, deadline=None)
    @given(strategy)
    def run(example):
        body(example, seen)
    run()
    return seen


def test_float32_values_are_float32_and_reach_specials_and_subnormals():
    def body(v, seen):
        assert np.isnan(v) or float(np.float32(v)) == v
        seen["nan" if np.isnan(v) else "inf" if np.isinf(v) else
             "sub" if 0 < abs(v) < 2.0 ** -126 else "zero" if v == 0 else "normal"] += 1
    seen = _collect(float32_values(allow_subnormal=True, allow_special=True), body, 300)
    assert all(seen[k] for k in ("nan", "inf", "sub", "zero", "normal")), seen


def test_weight_arrays_always_options_are_kept():
    def body(w, seen):
        assert w.dtype == np.float32
        a = np.abs(w[np.isfinite(w)])
        assert np.unique(a).size < a.size                                    # a tie
        assert (w == 0).any() and (np.signbit(w) & (w == 0)).any()           # 0.0 and -0.0
        assert ((np.abs(w) > 0) & (np.abs(w) < np.finfo(np.float32).tiny)).any()
        assert (~np.isfinite(w)).any()
        seen["nan"] += bool(np.isnan(w).any())
        seen["inf"] += bool(np.isinf(w).any())
    seen = _collect(weight_arrays(st.sampled_from([(16,), (4, 8), (2, 3, 3)]), ties="always",
                                  zeros="always", subnormals="always", specials="always"), body)
    assert seen["nan"] and seen["inf"]


def test_weight_arrays_defaults_vary_and_stay_finite():
    def body(w, seen):
        assert np.isfinite(w).all() and w.ndim in (1, 2, 3, 4)
        flat = np.abs(w.reshape(-1))
        seen["ties" if np.unique(flat).size < flat.size else "distinct"] += 1
        seen["zeros" if (w == 0).any() else "nonzero"] += 1
        seen[f"ndim{w.ndim}"] += 1
    seen = _collect(weight_arrays(), body)
    for k in ("ties", "distinct", "zeros", "nonzero", "ndim1", "ndim4"):
        assert seen[k], (k, seen)


def test_weight_arrays_distributions_and_scales():
    def body(w, seen):
        v = w.astype(np.float64)
        kurt = np.mean(v ** 4) / np.mean(v ** 2) ** 2
        seen["laplacian" if kurt > 4.5 else "gaussian"] += 1
        seen["std"] = max(seen["std"], float(v.std()))
    seen = _collect(weight_arrays((4000,), ties=False, zeros=False), body, 40)
    assert seen["laplacian"] and seen["gaussian"]
    # a fixed scale gives that standard deviation
    _collect(weight_arrays((4000,), scale=0.25, ties=False, zeros=False),
             lambda w, s: np.testing.assert_allclose(w.std(), 0.25, rtol=0.1), 10)


def test_conv2d_configs_run_and_cover_strides_dilations_groups_paddings():
    def body(cfg, seen):
        rng = np.random.default_rng(0)
        kh, kw = cfg["kernel"]
        W = rng.standard_normal((cfg["O"], cfg["C"] // cfg["groups"], kh, kw)).astype("f4")
        shape = (cfg["N"], cfg["C"], cfg["H"], cfg["W"])
        if cfg["layout"] == "NHWC":
            shape = (cfg["N"], cfg["H"], cfg["W"], cfg["C"])
        y = conv2d(np.ones(shape, np.float32), W, None, **cfg["attrs"])
        assert y.size > 0
        (t, b), (le, r) = cfg["pads"]
        seen["groups>1"] += cfg["groups"] > 1
        seen["stride>1"] += max(cfg["stride"]) > 1
        seen["dilation>1"] += max(cfg["dilation"]) > 1
        seen["asymmetric"] += t != b or le != r
        seen["same odd"] += cfg["padding"] == "same" and (t != b or le != r)
        seen["valid"] += cfg["padding"] == "valid"
        seen["NHWC"] += cfg["layout"] == "NHWC"
        seen["1x1"] += (kh, kw) == (1, 1)
    seen = _collect(conv2d_configs(), body, 200)
    assert all(seen[k] for k in ("groups>1", "stride>1", "dilation>1", "asymmetric",
                                 "same odd", "valid", "NHWC", "1x1")), seen


def test_pool2d_configs_run_and_cover_both_kinds_and_divisors():
    def body(cfg, seen):
        shape = (cfg["N"], cfg["C"], cfg["H"], cfg["W"])
        if cfg["layout"] == "NHWC":
            shape = (cfg["N"], cfg["H"], cfg["W"], cfg["C"])
        layer = refcomp.Layer(cfg["kind"], attrs=cfg["attrs"])
        assert refcomp.Model([layer])(np.ones(shape, np.float32)).size > 0
        seen[cfg["kind"]] += 1
        seen["padded"] += any(cfg["pads"][0] + cfg["pads"][1])
        seen[f"cip={cfg['count_include_pad']}"] += cfg["kind"] == "avg_pool2d"
    seen = _collect(pool2d_configs(), body)
    assert all(seen[k] for k in ("max_pool2d", "avg_pool2d", "padded", "cip=True",
                                 "cip=False")), seen


def test_conv1d_configs_run_and_reach_groups_dilation_and_same_lower():
    from refcomp.layers import conv1d

    def body(cfg, seen):
        W = np.ones((cfg["O"], cfg["C"] // cfg["groups"]) + cfg["kernel"], np.float32)
        a = cfg["attrs"]
        y = conv1d(np.ones((cfg["N"], cfg["C"], cfg["L"]), np.float32), W,
                   stride=a["stride"], padding=a["padding"], dilation=a["dilation"],
                   groups=a["groups"])
        assert y.shape[:2] == (cfg["N"], cfg["O"]) and y.shape[2] >= 1
        seen["groups>1"] += cfg["groups"] > 1
        seen["dilation>1"] += a["dilation"] > 1
        seen["stride>1"] += a["stride"] > 1
        seen[f"padding={a['padding'] if isinstance(a['padding'], str) else 'explicit'}"] += 1
    seen = _collect(conv1d_configs(), body, 150)
    for k in ("groups>1", "dilation>1", "stride>1", "padding=same_lower",
              "padding=same_upper", "padding=valid", "padding=explicit"):
        assert seen[k], (k, seen)


def test_pool_nd_configs_run_and_reach_dilations_ceil_mode_1d_and_3d():
    def body(cfg, seen):
        a = cfg["attrs"]
        layer = refcomp.Layer(cfg["kind"], attrs=a)
        assert refcomp.Model([layer])(np.ones(cfg["shape"], np.float32)).size > 0
        nd = len(cfg["shape"]) - 2
        seen[cfg["kind"]] += 1
        seen[f"{nd}-D"] += 1
        seen["dilation>1"] += max(a["dilation"]) > 1
        seen["ceil_mode"] += bool(a["ceil_mode"])
        seen["asymmetric"] += any(lo != hi for lo, hi in a["padding"])
        seen["cip"] += bool(a.get("count_include_pad"))
    seen = _collect(pool_nd_configs(), body, 150)
    for k in ("max_pool", "avg_pool", "1-D", "2-D", "3-D", "dilation>1", "ceil_mode",
              "asymmetric", "cip"):
        assert seen[k], (k, seen)


def test_dense_configs_reach_gemm_alpha_beta():
    def body(cfg, seen):
        a = cfg["attrs"]
        seen["alpha!=1"] += a["alpha"] != 1.0
        seen["beta!=1"] += a["beta"] != 1.0
        seen["negative"] += min(a["alpha"], a["beta"]) < 0
        seen["inexact 0.1"] += 0.1 in (a["alpha"], a["beta"])
        seen["both 1"] += a["alpha"] == a["beta"] == 1.0
    seen = _collect(dense_configs(gemm=True), body, 150)
    assert all(seen[k] for k in ("alpha!=1", "beta!=1", "negative", "inexact 0.1",
                                 "both 1")), seen

    def plain(cfg, seen):                                   # no Gemm attributes by default
        assert cfg["attrs"] == {}, cfg
    _collect(dense_configs(), plain, 20)


def test_affine_params_reach_axes_narrow_range_roundings_and_scale_ops():
    from refcomp.quantize import affine
    from refcomp.testing.strategies._quantizers import _DETERMINISTIC
    w = np.random.default_rng(1).standard_normal((3, 4, 2)).astype(np.float32)

    def body(kw, seen):
        assert affine(w, **kw).codes.shape == w.shape          # every draw runs
        seen[f"axis={kw['axis']}"] += 1
        seen["narrow_range"] += kw["narrow_range"]
        seen[f"rounding={kw['rounding']}"] += 1
        seen[f"scale_op={kw['scale_op']}"] += 1
    seen = _collect(affine_params(ndim=3), body, 200)
    wanted = (["axis=None", "axis=0", "axis=1", "axis=2", "narrow_range"]
              + [f"rounding={r}" for r in _DETERMINISTIC]
              + [f"scale_op={o}" for o in ("divide", "reciprocal", "reciprocal_add_zp",
                                           "reciprocal_fma_zp")])
    missing = [k for k in wanted if not seen[k]]
    assert not missing, (missing, seen)


def test_recurrent_configs_cover_every_kind_and_formula():
    def body(cfg, seen):
        seen[cfg["kind"]] += 1
        seen[f"reset_after={cfg['reset_after']}"] += cfg["kind"] == "gru"
        seen[f"act={cfg['activation']}"] += cfg["kind"] == "simple_rnn"
        seen[f"bias={cfg['bias_ih']},{cfg['bias_hh']}"] += 1
        seen[f"seq={cfg['return_sequences']}"] += 1
    seen = _collect(recurrent_configs(), body)
    for k in ("lstm", "gru", "mgu", "simple_rnn", "reset_after=True", "reset_after=False",
              "act=tanh", "act=relu", "bias=True,True", "bias=False,False", "seq=True",
              "seq=False"):
        assert seen[k], (k, seen)


def test_layers_and_models_cover_every_layer_kind_and_run():
    def body(case, seen):
        model, x = case
        y = model(x)
        assert np.isfinite(y).all()
        for _, layer in model.named_layers():
            seen[layer.kind] += 1
    seen = _collect(models(), body, 150)
    from refcomp.testing.strategies._models import LAYER_KINDS_DRAWN, LAYER_KINDS_NOT_DRAWN
    assert set(LAYER_KINDS_DRAWN) | set(LAYER_KINDS_NOT_DRAWN) == set(LAYER_KINDS)
    for kind in LAYER_KINDS_DRAWN:
        _collect(layers(kinds=(kind,)), lambda c, s: body((refcomp.Model([c[0]]), c[1]), s), 5)
    missing = [k for k in LAYER_KINDS_DRAWN if not seen[k]]
    assert not missing, missing


def test_quantizer_params_run():
    w = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)

    def body(pair, seen):
        name, kw = pair
        kw = {k: v for k, v in kw.items() if k != "name"}
        q = getattr(refcomp.quantize, name)(w, **kw)
        assert q.dequantize().shape == w.shape
        seen[name] += 1
    seen = _collect(quantizer_params(), body, 80)
    assert all(seen[k] for k in ("affine", "uniform", "minifloat", "fixed_point")), seen
    named = _collect(minifloat_params(), lambda p, s: s.update([p.get("name")]), 80)
    assert {"bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", None} <= set(named)
    _collect(affine_params(ndim=2), lambda p, s: refcomp.quantize.affine(w, **p), 40)
    _collect(uniform_params(), lambda p, s: refcomp.quantize.uniform(w, **p), 20)
    _collect(fixed_point_params(), lambda p, s: refcomp.quantize.fixed_point(w, **p), 20)


def test_affine_tie_cases_hold_exact_ties():
    def body(case, seen):
        w, kw = case
        t = w.astype(np.float64) / kw["scale"]
        ties = (t - np.floor(t)) == 0.5
        seen["ties"] += bool(ties.any())
        refcomp.quantize.affine(w, **kw)
    seen = _collect(affine_tie_cases(), body, 60)
    assert seen["ties"] >= 50


def test_strategies_are_deterministic_under_derandomize():
    def draws():
        out = []

        @settings(max_examples=10, derandomize=True, deadline=None, database=None)
        @given(st.tuples(weight_arrays(), conv2d_configs()))
        def run(ex):
            out.append((ex[0].tobytes(), repr(sorted(ex[1].items()))))
        run()
        return out
    assert draws() == draws()


def test_layers_draw_batch_norm_axes_and_onnx_hard_sigmoid():
    """The audit's two gaps stay covered: batch norm with an explicit axis on rank-3
    and rank-5 inputs (ONNX BatchNormalization) and ONNX HardSigmoid with alpha / beta
    other than the defaults; models draw batch norm on axis 1 after conv1d."""
    def bn(case, seen):
        layer, x = case
        if layer.attrs.get("axis") is not None:
            seen[("axis", x.ndim)] += 1

    def act(case, seen):
        a = case[0].attrs
        if a["function"] == "hard_sigmoid" and a["variant"] == "onnx":
            seen["onnx"] += 1
            seen["alpha"] += a["alpha"] not in (np.float32(0.2), np.float32(1 / 6))

    def cnn1d(case, seen):
        for _, layer in case[0].named_layers():
            if layer.kind == "batch_norm" and layer.attrs.get("axis") == 1:
                seen["bn"] += 1
    s = _collect(layers(kinds=("batch_norm",)), bn, 120)
    assert s[("axis", 3)] and s[("axis", 5)], s
    s = _collect(layers(kinds=("activation",)), act, 200)
    assert s["onnx"] and s["alpha"], s
    assert _collect(models(families=("cnn1d",)), cnn1d, 60)["bn"]
