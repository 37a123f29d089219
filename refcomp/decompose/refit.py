"""Closed-form refit of the PCA coordinates on calibration data: the NumPy
counterpart of the retraining of seed 004 §3.2 (Fernandez Brillet et al.:
the basis and the mean stay fixed, only the coordinates change).

The paper retrains the coordinates by gradient descent on the task loss
(Table 3, Figures 4-5); here each layer's coordinates are refitted, in
order from the first layer, by linear least squares so that the layer's
output on the calibration activations matches the original layer's output
(``examples/pca_retrain_torch.py`` does the paper's actual retraining).
"""

import math

import numpy as np

from .._errors import ParameterError, ShapeError
from .._validate import as_float_array, check_choice, describe
from ..layers import conv2d
from ..model import Model
from ._common import seq_matmul
from ._factorized import conv_geometry
from .pca import PCAWeight

__all__ = ["refit_coordinates"]


def _sub_input(model, path, x):
    """The activation entering the layer at ``path`` (reference forward)."""
    parts = [int(p) for p in path.split("/")]
    seq, a = model.layers, x
    for depth, i in enumerate(parts):
        if i:
            a = Model(seq[:i], name="prefix")(a, precision="reference")
        if depth < len(parts) - 1:
            seq = seq[i].layers
    return a


def _layer_out(layer, W, a):
    lay = layer.copy()
    lay.weights["W"] = W
    return Model([lay], name="layer")(a, precision="reference")


def _sq_error(y, z):
    d = y.astype(np.float64) - z.astype(np.float64)
    return math.fsum((d * d).reshape(-1).tolist())


def _features(layer, w, a):
    """(B, m, groups): basis responses (rows = samples x positions, per group),
    mean responses, exactly as the factorized reference pass forms them."""
    a64 = a.astype(np.float64)
    if layer.kind == "dense":
        B = seq_matmul(a64, w.basis.T)
        m = seq_matmul(a64, w.mean[:, None])
        return [B], [m[:, 0]], 1
    at = layer.attrs
    n_out, cg, kh, kw = w.weight_shape
    q, g = w.n_components, at["groups"]
    stand_in = np.broadcast_to(np.zeros((), w.dtype), w.weight_shape)
    xc, st, dil, g, pads = conv_geometry(a, stand_in, None, at["stride"], at["padding"],
                                         at["dilation"], at["groups"], at["layout"])
    kb = np.tile(w.basis.reshape(q, cg, kh, kw), (g, 1, 1, 1)).astype(np.float64)
    km = np.tile(w.mean.reshape(1, cg, kh, kw), (g, 1, 1, 1)).astype(np.float64)
    kw_ = dict(stride=st, padding=pads, dilation=dil, groups=g)
    x64 = xc.astype(np.float64)
    T = conv2d(x64, kb, None, **kw_)                 # (N, g Q, OH, OW)
    M = conv2d(x64, km, None, **kw_)                 # (N, g, OH, OW)
    Bs, ms = [], []
    for j in range(g):
        Tj = T[:, j * q:(j + 1) * q]
        Bs.append(np.ascontiguousarray(Tj.transpose(0, 2, 3, 1).reshape(-1, q)))
        ms.append(M[:, j].reshape(-1))
    return Bs, ms, g


def _targets(layer, z, b, g):
    """Per group, the (rows, outputs of the group) float64 target minus the bias."""
    z64 = z.astype(np.float64)
    if layer.kind == "dense":
        t = z64 - (0.0 if b is None else b.astype(np.float64)[None, :])
        return [t]
    if layer.attrs["layout"] == "NHWC":
        z64 = z64.transpose(0, 3, 1, 2)
    n_out = z64.shape[1]
    og = n_out // g
    out = []
    for j in range(g):
        zj = z64[:, j * og:(j + 1) * og]
        if b is not None:
            zj = zj - b[j * og:(j + 1) * og].astype(np.float64)[None, :, None, None]
        out.append(np.ascontiguousarray(zj.transpose(0, 2, 3, 1).reshape(-1, og)))
    return out


def _solve(B, R, rcond):
    """Minimum-norm least-squares solution of B X = R through the Gram matrix.

    G = B^T B and B^T R by refcomp's fixed-order float64 products; G = V L V^T
    by LAPACK syevd (numpy.linalg.eigh); eigenvalues <= rcond * max are
    dropped (their directions keep the PCA coordinates);
    X = V diag(1/L) V^T (B^T R), products in that order by fixed-order sums.
    """
    Bt = np.ascontiguousarray(B.T)
    G = seq_matmul(Bt, B)
    c = seq_matmul(Bt, R)
    lam, V = np.linalg.eigh(G)
    keep = lam > rcond * (lam[-1] if lam.size else 0.0)
    if not np.any(keep):
        return np.zeros((B.shape[1], R.shape[1]), np.float64)
    Vk = V[:, keep]
    return seq_matmul(Vk, seq_matmul(Vk.T, c) / lam[keep][:, None])


def refit_coordinates(model_pca, x_calib, *, original, inputs="compressed", rcond=1e-12):
    """Refit the coordinates Y_cQ of every PCA layer by linear least squares.

    NumPy counterpart of the coordinate retraining of seed 004 §3.2: with
    the basis P_Q and the mean fixed, each layer's coordinates are the
    closed-form least-squares fit of the original layer's output, layer by
    layer in model order from the first.

    Parameters
    ----------
    model_pca : refcomp.Model
        A model whose decomposed layers hold :class:`PCAWeight` ``W`` (e.g.
        :func:`pca_model`); not modified.
    x_calib : ndarray (N, *input_shape)
        Calibration inputs, the models' float dtype.
    original : refcomp.Model
        The uncompressed model, of the same structure (same layer paths and
        kinds, the decomposed layers' ``W`` of the PCA weights' shape).
    inputs : {"compressed", "original"}
        The activations a layer is refitted on: ``"compressed"`` (default)
        the calibration activations of ``model_pca`` with every earlier
        layer already refitted (so a layer also compensates the errors of
        the layers before it), ``"original"`` those of ``original``.
    rcond : float in [0, 1)
        Gram eigenvalues at or below ``rcond * largest`` are dropped
        (minimum-norm solution: those directions keep the PCA coordinates).

    Returns
    -------
    refcomp.Model
        A copy of ``model_pca`` with new PCAWeights (same basis and mean,
        refitted coords); each new weight's ``info["refit"]`` holds
        ``error_before``, ``error_after`` and ``accepted``.

    Arithmetic
    ----------
    For a layer with input activations A (per ``inputs``), target Z = the
    original layer's reference output (bias included, before any
    activation) on the original model's activations, and the features of the
    factorized reference pass (:class:`PCAWeight`): F = responses of the Q
    basis filters (rows = sample x output position; per group for grouped
    convolutions), m = the mean filter's response.  The correction D
    minimises ``||F (Y0 + D)^T + m + b - Z||_F`` with the smallest norm
    (``_solve``: Gram matrix and right-hand side by fixed-order float64
    sums, LAPACK eigh, eigenvalue cutoff ``rcond``), Y = Y0 + D in float64,
    rounded once to the weight dtype.  The layer's output error
    ``E(Y) = sum (layer(A; Y) - Z)^2`` (refcomp's reference forward of the
    layer, rounded as a model computes it; squares in float64, exactly
    rounded sum) is computed for Y0 and Y; Y is kept only if ``E(Y) <=
    E(Y0)``, so the refit never increases a layer's output error on the
    calibration set.  Deterministic for a given machine and thread count
    (LAPACK eigh).

    Raises
    ------
    ParameterError
        ``original`` or ``model_pca`` not a Model, structures that differ,
        no PCA layer, a bad ``inputs`` or ``rcond``.
    ShapeError, DTypeError
        ``x_calib`` of the wrong shape, dtype or empty.
    """
    for name, m in (("model_pca", model_pca), ("original", original)):
        if not isinstance(m, Model):
            raise ParameterError(f"{name} must be a refcomp.Model, got {type(m).__name__}")
    check_choice("inputs", inputs, ("compressed", "original"))
    if isinstance(rcond, bool) or not isinstance(rcond, (int, float)) or not 0 <= rcond < 1:
        raise ParameterError(f"rcond must be a number in [0, 1), got {rcond!r}")
    as_float_array("x_calib", x_calib, allow_empty=False)
    dtype = model_pca._dtype()
    if dtype is not None and x_calib.dtype != dtype:
        raise ShapeError(f"x_calib must have the model dtype {dtype}, got {describe(x_calib)}")
    for m in (model_pca, original):
        if m.input_shape is not None and tuple(x_calib.shape[1:]) != m.input_shape:
            raise ShapeError(f"x_calib must have shape (N, {', '.join(map(str, m.input_shape))})"
                             f" for model {m.name!r}, got {describe(x_calib)}")
    named_p = [(p, l.kind) for p, l in model_pca.named_layers()]
    named_o = [(p, l.kind) for p, l in original.named_layers()]
    if named_p != named_o:
        raise ParameterError("model_pca and original differ in structure (layer paths and kinds)")
    paths = [p for p, l in model_pca.named_layers() if isinstance(l.weights.get("W"), PCAWeight)]
    if not paths:
        raise ParameterError(f"model {model_pca.name!r} has no PCAWeight layer to refit")
    for p in paths:
        ws = model_pca.get_layer(p).weights["W"].weight_shape
        wo = original.get_layer(p).w("W").shape
        if tuple(ws) != tuple(wo):
            raise ParameterError(f"layer {p}: PCA weight_shape {tuple(ws)} differs from the "
                                 f"original W {tuple(wo)}")
    current = model_pca
    for p in paths:
        layer = current.get_layer(p)
        w = layer.weights["W"]
        b = layer.w("b")
        a_orig = _sub_input(original, p, x_calib)
        z = _layer_out(original.get_layer(p), original.get_layer(p).weights["W"], a_orig)
        a = a_orig if inputs == "original" else _sub_input(current, p, x_calib)
        Bs, ms, g = _features(layer, w, a)
        Ts = _targets(layer, z, b, g)
        Y0 = w.coords.astype(np.float64)
        Y = Y0.copy()
        og = Y.shape[0] // g
        if w.n_components:
            for j in range(g):
                rows = slice(j * og, (j + 1) * og)
                R = Ts[j] - ms[j][:, None] - seq_matmul(Bs[j], Y0[rows].T)
                Y[rows] = Y0[rows] + _solve(Bs[j], R, rcond).T
        cand = PCAWeight(w.basis, Y.astype(w.dtype), w.mean, w.weight_shape,
                         forward=w.forward, info=dict(w.info))
        e0 = _sq_error(_layer_out(layer, w, a), z)
        e1 = _sq_error(_layer_out(layer, cand, a), z)
        accepted = e1 <= e0
        new = cand if accepted else PCAWeight(w.basis, w.coords, w.mean, w.weight_shape,
                                              forward=w.forward, info=dict(w.info))
        new.info["refit"] = {"error_before": e0, "error_after": min(e0, e1),
                             "accepted": bool(accepted), "inputs": inputs}
        new.info.pop("mse", None)       # no longer the PCA reconstruction
        current = current.replace_weights({(p, "W"): new})
    return current
