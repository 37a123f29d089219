"""Strategies of layer configurations whose shapes fit together."""

from hypothesis import strategies as st

__all__ = ["dense_configs", "conv2d_configs", "conv1d_configs", "pool2d_configs",
           "pool_nd_configs", "recurrent_configs", "PADDING_STYLES", "RECURRENT_KINDS"]

#: Padding specifications drawn by :func:`conv2d_configs` / :func:`pool2d_configs`.
PADDING_STYLES = ("int", "pair", "explicit", "same", "valid")
RECURRENT_KINDS = ("lstm", "gru", "mgu", "simple_rnn")


def _same_1d(size, k, stride, dilation):
    # TensorFlow SAME (FACTS.md §3.3): odd extra pixel at the end
    out = (size + stride - 1) // stride
    total = max(0, (out - 1) * stride + (k - 1) * dilation + 1 - size)
    return total // 2, total - total // 2


@st.composite
def dense_configs(draw, *, max_batch=4, max_features=16, bias=None, gemm=False):
    """(N, in, out, bias) of a dense layer: ``{"N", "in", "out", "bias", "attrs"}``.

    Parameters
    ----------
    max_batch, max_features : int, keyword-only
        Upper bounds of N and of both feature counts (all >= 1).
    bias : bool or None, keyword-only
        None draws it.
    gemm : bool, keyword-only
        Also draw ONNX Gemm's ``alpha`` / ``beta`` (``attrs``): 1.0, a
        power of two, a negative value or a float32 value that is not
        exact in binary (0.1); default False (``attrs`` empty).

    Examples
    --------
    Your own dense layer (float32 ``x @ W.T + b``) against refcomp's derived
    bound::

        @given(dense_configs(), st.data())
        def test_my_dense(cfg, data):
            W = data.draw(weight_arrays((cfg["out"], cfg["in"]), specials=False))
            b = data.draw(weight_arrays((cfg["out"],), specials=False)) if cfg["bias"] else None
            x = data.draw(weight_arrays((cfg["N"], cfg["in"]), specials=False))
            weights = {"W": W} if b is None else {"W": W, "b": b}
            model = refcomp.Model([refcomp.Layer("dense", weights=weights)])
            assert_conforms(my_dense(x, W, b), model, x)
    """
    cfg = {"N": draw(st.integers(1, max_batch)), "in": draw(st.integers(1, max_features)),
           "out": draw(st.integers(1, max_features)),
           "bias": draw(st.booleans()) if bias is None else bool(bias), "attrs": {}}
    if gemm:
        scales = st.sampled_from((1.0, 0.5, 2.0, -1.0, 0.1, -3.7))
        cfg["attrs"] = {"alpha": draw(scales), "beta": draw(scales)}
    return cfg


@st.composite
def conv1d_configs(draw, *, max_batch=3, max_channels=6, max_groups=3, max_length=12,
                   max_kernel=4, max_stride=3, max_dilation=3, bias=None):
    """A conv1d configuration that runs (ONNX ``Conv`` on (N, C, L)).

    Returns
    -------
    SearchStrategy of dict
        ``N, C, L`` (input), ``O``, ``kernel`` (k,), ``groups`` (dividing C
        and O), ``bias``, and ``attrs`` (stride, dilation, padding: an int,
        a (begin, end) pair, "same_upper", "same_lower" or "valid").  The
        padded input holds one dilated kernel.

    Examples
    --------
    Your own 1-D convolution, given the layer attributes as they are::

        @given(conv1d_configs(), st.data())
        def test_my_conv1d(cfg, data):
            W = data.draw(weight_arrays((cfg["O"], cfg["C"] // cfg["groups"], *cfg["kernel"]),
                                        specials=False))
            x = data.draw(weight_arrays((cfg["N"], cfg["C"], cfg["L"]), specials=False))
            model = refcomp.Model([refcomp.Layer("conv1d", weights={"W": W},
                                                 attrs=cfg["attrs"])])
            assert_conforms(my_conv1d(x, W, **cfg["attrs"]), model, x)
    """
    g = draw(st.integers(1, max_groups))
    cg = draw(st.integers(1, max(1, max_channels // g)))
    og = draw(st.integers(1, max(1, max_channels // g)))
    k = draw(st.integers(1, max_kernel))
    s = draw(st.integers(1, max_stride))
    d = draw(st.integers(1, max_dilation))
    eff = (k - 1) * d + 1
    style = draw(st.sampled_from(("int", "pair", "same_upper", "same_lower", "valid")))
    if style == "int":
        p = draw(st.integers(0, eff - 1))
        spec, tot = p, 2 * p
    elif style == "pair":
        spec = [draw(st.integers(0, eff - 1)), draw(st.integers(0, eff - 1))]
        tot = sum(spec)
    else:
        spec, tot = style, 0
    L = draw(st.integers(max(1, eff - tot if style in ("int", "pair", "valid") else 1),
                         max(max(1, eff - tot), max_length)))
    b = draw(st.booleans()) if bias is None else bool(bias)
    return {"N": draw(st.integers(1, max_batch)), "C": g * cg, "L": L, "O": g * og,
            "kernel": (k,), "groups": g, "bias": b,
            "attrs": {"stride": s, "dilation": d, "padding": spec, "groups": g}}


def _padding(draw, style, k, d, stride, max_pad):
    """(attrs padding spec, ((t, b), (l, r)) or None for "same") for kernel k, dilation d."""
    if style == "valid":
        return "valid", ((0, 0), (0, 0))
    if style == "same":
        return "same", None
    lim = [min(max_pad, k[i] - 1) if max_pad is not None else (k[i] - 1) * d[i]
           for i in (0, 1)]
    if style == "int":
        p = draw(st.integers(0, min(lim)))
        return p, ((p, p), (p, p))
    if style == "pair":
        ph, pw = draw(st.integers(0, lim[0])), draw(st.integers(0, lim[1]))
        return [ph, pw], ((ph, ph), (pw, pw))
    pads = tuple(tuple(draw(st.integers(0, lim[i])) for _ in range(2)) for i in (0, 1))
    return [list(pads[0]), list(pads[1])], pads


@st.composite
def conv2d_configs(draw, *, max_batch=3, max_channels=6, max_groups=3, max_size=9,
                   max_kernel=4, max_stride=3, max_dilation=3, paddings=PADDING_STYLES,
                   layouts=("NCHW", "NHWC"), bias=None):
    """A conv2d configuration that runs: shapes, stride, padding, dilation, groups.

    Returns
    -------
    SearchStrategy of dict
        ``N, C, H, W`` (input), ``O`` (output channels), ``kernel`` (kh, kw),
        ``stride``, ``dilation`` (pairs), ``groups`` (dividing C and O),
        ``padding`` (an int, a pair, a pair of (before, after) pairs,
        "same" or "valid", exactly as :class:`refcomp.Layer` attrs take it),
        ``pads`` (the resolved ((top, bottom), (left, right))), ``layout``,
        ``bias`` (bool), and ``attrs`` (the conv2d layer attributes).  The
        input is large enough for the dilated kernel after padding, so the
        output has at least one pixel; explicit pads may be asymmetric and
        "same" may put an odd pixel at the end (strides > 1 included).

    Examples
    --------
    Your own NCHW convolution, given the resolved pads (``padding`` keeps
    the spelling the layer attributes use)::

        @given(conv2d_configs(layouts=("NCHW",), bias=False), st.data())
        def test_my_conv2d(cfg, data):
            W = data.draw(weight_arrays((cfg["O"], cfg["C"] // cfg["groups"], *cfg["kernel"]),
                                        specials=False))
            x = data.draw(weight_arrays((cfg["N"], cfg["C"], cfg["H"], cfg["W"]),
                                        specials=False))
            model = refcomp.Model([refcomp.Layer("conv2d", weights={"W": W},
                                                 attrs=cfg["attrs"])])
            y = my_conv2d(x, W, stride=cfg["stride"], pads=cfg["pads"],
                          dilation=cfg["dilation"], groups=cfg["groups"])
            assert_conforms(y, model, x)
    """
    g = draw(st.integers(1, max_groups))
    cg = draw(st.integers(1, max(1, max_channels // g)))
    og = draw(st.integers(1, max(1, max_channels // g)))
    k = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    s = (draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride)))
    d = (draw(st.integers(1, max_dilation)), draw(st.integers(1, max_dilation)))
    style = draw(st.sampled_from(tuple(paddings)))
    spec, pads = _padding(draw, style, k, d, s, None)
    hw = []
    for i in (0, 1):
        eff = (k[i] - 1) * d[i] + 1
        lo = 1 if pads is None else max(1, eff - sum(pads[i]))
        hw.append(draw(st.integers(lo, max(lo, max_size))))
    if pads is None:
        pads = tuple(_same_1d(hw[i], k[i], s[i], d[i]) for i in (0, 1))
    layout = draw(st.sampled_from(tuple(layouts)))
    b = draw(st.booleans()) if bias is None else bool(bias)
    attrs = {"stride": list(s), "padding": spec, "dilation": list(d), "groups": g,
             "layout": layout}
    return {"N": draw(st.integers(1, max_batch)), "C": g * cg, "H": hw[0], "W": hw[1],
            "O": g * og, "kernel": k, "stride": s, "dilation": d, "groups": g,
            "padding": spec, "pads": pads, "layout": layout, "bias": b, "attrs": attrs}


@st.composite
def pool2d_configs(draw, *, kinds=("max_pool2d", "avg_pool2d"), max_batch=3, max_channels=4,
                   max_size=9, max_pool=3, max_stride=3, paddings=PADDING_STYLES,
                   layouts=("NCHW", "NHWC")):
    """A max / average pooling configuration that runs.

    Returns
    -------
    SearchStrategy of dict
        ``kind``, ``N, C, H, W``, ``size`` (pair), ``stride`` (pair or None
        = the size), ``padding`` (spec), ``pads`` (resolved), ``layout``,
        ``count_include_pad`` (average pooling), and ``attrs``.  Pads are
        smaller than the window (no window of padding only: refcomp refuses
        it, as PyTorch does) and the padded input holds one window.

    Examples
    --------
    Your own pooling in either layout; max pooling must also be bit-exact
    (a maximum rounds nothing)::

        @given(pool2d_configs(), st.data())
        def test_my_pool2d(cfg, data):
            c, h, w = cfg["C"], cfg["H"], cfg["W"]
            shape = (cfg["N"], c, h, w) if cfg["layout"] == "NCHW" else (cfg["N"], h, w, c)
            x = data.draw(weight_arrays(shape, specials=False, zeros=False))
            model = refcomp.Model([refcomp.Layer(cfg["kind"], attrs=cfg["attrs"])])
            y = my_pool2d(x, cfg["kind"], **cfg["attrs"])
            assert_conforms(y, model, x)
            if cfg["kind"] == "max_pool2d":
                assert_bitexact(y, model(x).astype(np.float32))
    """
    kind = draw(st.sampled_from(tuple(kinds)))
    k = (draw(st.integers(1, max_pool)), draw(st.integers(1, max_pool)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, max_stride),
                                                 st.integers(1, max_stride))))
    s = k if stride is None else stride
    style = draw(st.sampled_from(tuple(paddings)))
    spec, pads = _padding(draw, style, k, (1, 1), s, max_pad=max(k) - 1)
    hw = []
    for i in (0, 1):
        lo = max(1, k[i] - (0 if pads is None else sum(pads[i])))
        hw.append(draw(st.integers(lo, max(lo, max_size))))
    if pads is None:
        pads = tuple(_same_1d(hw[i], k[i], s[i], 1) for i in (0, 1))
        if any(p >= k[i] for i in (0, 1) for p in pads[i]) or any(
                hw[i] + sum(pads[i]) < k[i] for i in (0, 1)):
            spec, pads = "valid", ((0, 0), (0, 0))
            hw = [max(h, k[i]) for i, h in enumerate(hw)]
    layout = draw(st.sampled_from(tuple(layouts)))
    attrs = {"size": list(k), "stride": None if stride is None else list(stride),
             "padding": spec, "layout": layout}
    cip = None
    if kind == "avg_pool2d":
        cip = draw(st.booleans())
        attrs["count_include_pad"] = cip
    return {"kind": kind, "N": draw(st.integers(1, max_batch)),
            "C": draw(st.integers(1, max_channels)), "H": hw[0], "W": hw[1], "size": k,
            "stride": stride, "padding": spec, "pads": pads, "layout": layout,
            "count_include_pad": cip, "attrs": attrs}


@st.composite
def pool_nd_configs(draw, *, kinds=("max_pool", "avg_pool"), max_dims=3, max_batch=2,
                    max_channels=3, max_size=7, max_pool=3, max_stride=3, max_dilation=2):
    """N-D max / average pooling (ONNX MaxPool / AveragePool attributes) that runs.

    Returns
    -------
    SearchStrategy of dict
        ``kind`` ("max_pool" / "avg_pool"), ``shape`` (N, C, D1[, D2[,
        D3]]), and ``attrs``: ``size``, ``stride``, ``dilation`` (one int
        per axis), ``padding`` (per-axis (begin, end) pairs smaller than
        the dilated window), ``ceil_mode`` (both), ``count_include_pad``
        (average).  Every window holds a real element (a drawn padding that
        would leave a window of padding only is replaced by none).

    Examples
    --------
    Your own ONNX-style MaxPool / AveragePool over 1 to 3 spatial axes::

        @given(pool_nd_configs(), st.data())
        def test_my_pool_nd(cfg, data):
            x = data.draw(weight_arrays(cfg["shape"], specials=False))
            model = refcomp.Model([refcomp.Layer(cfg["kind"], attrs=cfg["attrs"])])
            assert_conforms(my_pool_nd(x, cfg["kind"], **cfg["attrs"]), model, x)
    """
    from ...layers._pool_nd import pool_geometry

    kind = draw(st.sampled_from(tuple(kinds)))
    nd = draw(st.integers(1, max_dims))
    k = tuple(draw(st.integers(1, max_pool)) for _ in range(nd))
    s = tuple(draw(st.integers(1, max_stride)) for _ in range(nd))
    d = tuple(draw(st.integers(1, max_dilation)) for _ in range(nd))
    eff = [(k[i] - 1) * d[i] + 1 for i in range(nd)]
    pads = tuple((draw(st.integers(0, eff[i] - 1)), draw(st.integers(0, eff[i] - 1)))
                 for i in range(nd))
    sizes = tuple(draw(st.integers(max(1, eff[i] - sum(pads[i])), max(eff[i], max_size)))
                  for i in range(nd))
    ceil_mode = draw(st.booleans())
    try:
        pool_geometry(sizes, k, s, d, pads, ceil_mode, None)
    except Exception:                     # a window of padding only: drop the padding
        pads = tuple((0, 0) for _ in range(nd))
        sizes = tuple(max(sizes[i], eff[i]) for i in range(nd))
    attrs = {"size": list(k), "stride": list(s), "dilation": list(d),
             "padding": [list(p) for p in pads], "ceil_mode": ceil_mode}
    if kind == "avg_pool":
        attrs["count_include_pad"] = draw(st.booleans())
    return {"kind": kind, "shape": (draw(st.integers(1, max_batch)),
                                    draw(st.integers(1, max_channels))) + sizes,
            "attrs": attrs}


#: ONNX recurrent activations drawn by ``recurrent_configs(onnx_options=True)``, with
#: (alpha, beta) values (None: the function takes none).
ONNX_ACTIVATIONS = {"Sigmoid": (None, None), "Tanh": (None, None), "Relu": (None, None),
                    "Affine": (0.5, 0.1), "LeakyRelu": (0.1, None),
                    "ThresholdedRelu": (0.3, None), "ScaledTanh": (1.5, 0.7),
                    "HardSigmoid": (0.2, 0.5), "Elu": (0.8, None), "Softsign": (None, None),
                    "Softplus": (None, None)}


def _onnx_options(draw, kind, cfg, attrs):
    per = {"lstm": 3, "gru": 2, "simple_rnn": 1}[kind]
    direction = draw(st.sampled_from(("forward", "reverse", "bidirectional")))
    attrs["direction"] = direction
    ndir = 2 if direction == "bidirectional" else 1
    if draw(st.booleans()):
        attrs["clip"] = draw(st.sampled_from((0.25, 1.0, 3.0)))
    if draw(st.booleans()):
        names = [draw(st.sampled_from(tuple(ONNX_ACTIVATIONS))) for _ in range(per * ndir)]
        attrs["activations"] = names
        al = [ONNX_ACTIVATIONS[n][0] for n in names if ONNX_ACTIVATIONS[n][0] is not None]
        be = [ONNX_ACTIVATIONS[n][1] for n in names if ONNX_ACTIVATIONS[n][1] is not None]
        if al:
            attrs["activation_alpha"] = al
        if be:
            attrs["activation_beta"] = be
    if kind == "lstm":
        attrs["input_forget"] = draw(st.booleans())
        cfg["peepholes"] = draw(st.booleans())
    if kind == "gru" and draw(st.booleans()):
        attrs["update"] = "seed000"
    cfg["directions"] = ndir


@st.composite
def recurrent_configs(draw, *, kinds=RECURRENT_KINDS, max_batch=3, max_steps=5,
                      max_features=5, max_hidden=5, onnx_options=False):
    """A recurrent layer configuration (refcomp's canonical, PyTorch layout).

    Returns
    -------
    SearchStrategy of dict
        ``kind`` (lstm, gru, mgu, simple_rnn), ``N, T, F, H``, ``gates`` (4,
        3, 2, 1), ``reset_after`` (gru: both formulas, FACTS.md §2.4),
        ``activation`` (simple_rnn: tanh or relu), ``return_sequences``,
        ``bias_ih``, ``bias_hh`` (each present or not), and ``attrs``.
        With ``onnx_options`` (lstm, gru, simple_rnn): ``attrs`` also draws
        ONNX's ``direction`` (forward, reverse, bidirectional), ``clip``,
        ``activations`` lists of :data:`ONNX_ACTIVATIONS` with their
        ``activation_alpha`` / ``activation_beta``, LSTM ``input_forget``
        and GRU ``update="seed000"``; ``peepholes`` (LSTM: draw a ``P``
        weight) and ``directions`` (1 or 2: draw the ``*_reverse``
        weights) are set.

    Examples
    --------
    Your own GRU (both formulas) against refcomp's derived bound, weights
    drawn in refcomp's layout (gates r, z, n stacked on axis 0)::

        @given(recurrent_configs(kinds=("gru",)), st.data())
        def test_my_gru(cfg, data):
            G, H, F = cfg["gates"], cfg["H"], cfg["F"]
            weights = {"W_ih": data.draw(weight_arrays((G * H, F), scale=0.5, specials=False)),
                       "W_hh": data.draw(weight_arrays((G * H, H), scale=0.5, specials=False))}
            for name in ("b_ih", "b_hh"):
                if cfg["bias_" + name[2:]]:
                    weights[name] = data.draw(weight_arrays((G * H,), scale=0.5,
                                                            specials=False))
            x = data.draw(weight_arrays((cfg["N"], cfg["T"], F), scale=1.0, specials=False))
            model = refcomp.Model([refcomp.Layer("gru", weights=weights, attrs=cfg["attrs"])])
            assert_conforms(my_gru(x, weights, **cfg["attrs"]), model, x)
    """
    kind = draw(st.sampled_from(tuple(kinds)))
    attrs = {"return_sequences": draw(st.booleans())}
    cfg = {"kind": kind, "N": draw(st.integers(1, max_batch)),
           "T": draw(st.integers(1, max_steps)), "F": draw(st.integers(1, max_features)),
           "H": draw(st.integers(1, max_hidden)),
           "gates": {"lstm": 4, "gru": 3, "mgu": 2, "simple_rnn": 1}[kind],
           "reset_after": None, "activation": None,
           "bias_ih": draw(st.booleans()), "bias_hh": draw(st.booleans())}
    if kind == "gru":
        cfg["reset_after"] = attrs["reset_after"] = draw(st.booleans())
    if kind == "simple_rnn":
        cfg["activation"] = attrs["activation"] = draw(st.sampled_from(("tanh", "relu")))
    cfg["peepholes"], cfg["directions"] = False, 1
    if onnx_options and kind != "mgu":
        _onnx_options(draw, kind, cfg, attrs)
    cfg["return_sequences"] = attrs["return_sequences"]
    cfg["attrs"] = attrs
    return cfg
