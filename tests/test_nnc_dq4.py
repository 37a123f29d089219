"""The 4-state dependent-quantization variant (``dq_states=4``, VVC's machine).

NNCodec 2.1.3 has no 4-state mode (only ``Trellis8States``), so the ground
truth here is independent: VVC's transition table as H.266 writes it, a
plain-Python dynamic program over exact fractions for the trellis, the
greedy path, round trips, twins, and the storage and CLI plumbing.
"""
import subprocess
import sys
from fractions import Fraction

import h5py
import numpy as np
import pytest

import refcomp
from refcomp.coding.cabac import TRANS4, decode_levels, encode_levels
from refcomp.compress.nnc import nnc_compress
from refcomp.quantize import NNCCoded, nnc_levels, nnc_quantize, nnc_step_size
from refcomp.quantize import _nnc_kernels as QK

# H.266 (VVC) QStateTransTable: next = VVC[state][k & 1]; quantizer Q(state >> 1)
VVC = [[0, 2], [2, 0], [1, 3], [3, 1]]


def _vvc_path_ok(levels):
    """Walk VVC's machine over the levels (scan order): each must belong to
    its state's quantizer (Q0 even, Q1 odd or 0); returns True/False."""
    st = 0
    for lv in (int(x) for x in levels):
        q = st >> 1
        if lv != 0 and (lv & 1) != q:
            return False
        k = 0 if lv == 0 else (lv + (q if lv > 0 else -q)) // 2
        st = VVC[st][abs(k) & 1]
    return True


def _exact_optimum(w, step):
    """min over VVC-machine paths of sum (w/step - level)^2, exact (Fraction)."""
    st_cost = {0: Fraction(0)}
    for x in w:
        t = Fraction(float(x)) / Fraction(float(step))
        new = {}
        base = int(t)
        cands = {0} | set(range(base - 4, base + 5))
        for s, c in st_cost.items():
            q = s >> 1
            for lv in cands:
                if lv != 0 and (lv & 1) != q:
                    continue
                k = 0 if lv == 0 else (lv + (q if lv > 0 else -q)) // 2
                ns = VVC[s][abs(k) & 1]
                v = c + (t - lv) ** 2
                if ns not in new or v < new[ns]:
                    new[ns] = v
        st_cost = new
    return min(st_cost.values())


def _dist(w, levels, step):
    s = Fraction(float(step))
    return sum((Fraction(float(x)) / s - int(lv)) ** 2 for x, lv in zip(w, levels))


def test_trans4_is_vvcs_table_relabelled():
    # refcomp state r <-> VVC state perm[r]; refcomp's quantizer is r & 1
    perm = [0, 2, 1, 3]
    for r in range(4):
        assert perm[r] >> 1 == r & 1
        for par in (0, 1):
            assert perm[int(TRANS4[r, par])] == VVC[perm[r]][par]


@pytest.mark.parametrize("seed", range(6))
def test_dq4_trellis_is_optimal_against_python_dp(seed):
    rng = np.random.default_rng(seed)
    w = (rng.laplace(0, 0.05, 40) * [1, 3][seed % 2]).astype(np.float32)
    qp = -34 + 3 * seed
    step = nnc_step_size(qp)
    lv = nnc_levels(w, qp=qp, dq=True, dq_states=4)
    assert _vvc_path_ok(lv)
    d, opt = _dist(w, lv, step), _exact_optimum(w, step)
    assert opt <= d <= opt * (1 + Fraction(1, 10 ** 9)) + Fraction(1, 10 ** 12)


@pytest.mark.parametrize("seed", range(4))
def test_dq4_trellis_never_above_greedy(seed):
    rng = np.random.default_rng(100 + seed)
    w = rng.standard_normal((30, 20)).astype(np.float32) * 0.1
    step = nnc_step_size(-30)
    lv = nnc_levels(w, qp=-30, dq=True, dq_states=4).ravel()
    # greedy: the nearest level of the current state's quantizer (ties to the smaller |level|)
    st, greedy = 0, []
    for x in w.ravel():
        t = Fraction(float(x)) / Fraction(float(step))
        q = st >> 1
        cands = [v for v in range(int(t) - 3, int(t) + 4) if v == 0 or (v & 1) == q]
        g = min(cands, key=lambda v: ((t - v) ** 2, abs(v)))
        greedy.append(g)
        k = 0 if g == 0 else (g + (q if g > 0 else -q)) // 2
        st = VVC[st][abs(k) & 1]
    assert _dist(w.ravel(), lv, step) <= _dist(w.ravel(), greedy, step)


def test_dq4_round_trip_and_machine_matters():
    w = (np.random.default_rng(1).standard_normal((50, 40)) * 0.05).astype(np.float32)
    lv = nnc_levels(w, qp=-30, dq=True, dq_states=4)
    data = encode_levels(lv, dq=True, dq_states=4)
    assert np.array_equal(decode_levels(data, lv.shape, dq=True, dq_states=4), lv)
    # the 8-state machine reads the same bytes differently (or not at all)
    try:
        other = decode_levels(data, lv.shape, dq=True, dq_states=8)
    except refcomp.DecodeError:
        other = None
    assert other is None or not np.array_equal(other, lv)
    # the 4-state levels are not, in general, valid 8-state levels
    with pytest.raises(refcomp.ParameterError):
        encode_levels(lv, dq=True, dq_states=8)


@pytest.mark.parametrize("scan_order", [0, 1])
def test_dq4_coder_twin(scan_order):
    w = (np.random.default_rng(2).standard_normal((40, 30)) * 0.05).astype(np.float32)
    lv = nnc_levels(w, qp=-32, dq=True, dq_states=4, scan_order=scan_order)
    data = encode_levels(lv, dq=True, dq_states=4, scan_order=scan_order)
    assert encode_levels(lv, dq=True, dq_states=4, scan_order=scan_order, twin=True) == data
    a = decode_levels(data, lv.shape, dq=True, dq_states=4, scan_order=scan_order)
    b = decode_levels(data, lv.shape, dq=True, dq_states=4, scan_order=scan_order, twin=True)
    assert a.dtype == b.dtype == np.int32 and a.shape == b.shape
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_dq4_trellis_twin():
    rng = np.random.default_rng(3)
    w = (rng.standard_normal(400) * 0.1).astype(np.float64)
    g = 1.0 / float(nnc_step_size(-30))
    out = np.empty(w.size, dtype=np.int32)
    QK.tcq_kernel(w, g, 1.0, QK.BRANCHES4, out)
    tw = QK.tcq_twin(w, g, 1.0, QK.BRANCHES4)
    assert out.dtype == tw.dtype and np.array_equal(out.view(np.uint32), tw.view(np.uint32))
    QK.tcq_rd_kernel(w, 40.0, 5000.0, 10, QK.BRANCHES4, out)
    tw = QK.tcq_rd_twin(w, 40.0, 5000.0, 10, QK.BRANCHES4)
    assert np.array_equal(out.view(np.uint32), tw.view(np.uint32))


@pytest.mark.parametrize("bad", [3, 0, 16, -4, True, 4.0, "4", None])
def test_bad_dq_states(bad):
    w = np.ones((3, 3), np.float32) * 0.1
    lv = np.zeros((3, 3), np.int32)
    calls = [lambda: encode_levels(lv, dq_states=bad),
             lambda: decode_levels(encode_levels(lv), lv.shape, dq_states=bad),
             lambda: nnc_levels(w, qp=-20, dq_states=bad),
             lambda: nnc_quantize(w, qp=-20, dq_states=bad),
             lambda: NNCCoded(encode_levels(lv), (3, 3), qp=-20, dq_states=bad),
             lambda: nnc_compress(refcomp.load("data/digits_cnn.h5"), qp=-20, dq_states=bad)]
    for call in calls:
        with pytest.raises(refcomp.ParameterError):
            call()


def test_dq4_stored_in_hdf5(tmp_path):
    m = refcomp.load("data/digits_cnn.h5")
    out, rep = nnc_compress(m, qp=-20, dq_states=4)
    path = tmp_path / "m4.h5"
    refcomp.save(out, str(path))
    back = refcomp.load(str(path))
    for (_, l), (_, l2) in zip(out.named_layers(), back.named_layers()):
        for name, w in l.weights.items():
            assert w.dq_states == 4 and w == l2.weights[name]
            assert np.array_equal(w.dequantize().view(np.uint32),
                                  l2.weights[name].dequantize().view(np.uint32))
    # 8-state weights write no dq_states attribute (files as before); 4-state ones do
    out8, _ = nnc_compress(m, qp=-20)
    refcomp.save(out8, str(tmp_path / "m8.h5"))
    with h5py.File(tmp_path / "m8.h5", "r") as f8, h5py.File(path, "r") as f4:
        n8, n4 = [], []
        f8.visititems(lambda k, o: n8.append(k) if "dq_states" in o.attrs else None)
        f4.visititems(lambda k, o: n4.append(k) if "dq_states" in o.attrs else None)
    assert n8 == [] and len(n4) == sum(len(l.weights) for _, l in out.named_layers())
    # a bad stored value is a FormatError
    with h5py.File(path, "r+") as f:
        f[n4[0]].attrs["dq_states"] = np.int64(5)
    with pytest.raises(refcomp.FormatError):
        refcomp.load(str(path))


def test_cli_compress_nnc_dq_states(tmp_path):
    out = tmp_path / "o.h5"
    base = [sys.executable, "-m", "refcomp", "compress", "data/digits_cnn.h5"]
    r = subprocess.run(base + ["-o", str(out), "--codec", "nnc", "--qp", "-24", "--dq-states",
                               "4", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = refcomp.load(str(out))
    assert {w.dq_states for _, l in m.named_layers() for w in l.weights.values()} == {4}
    for extra in (["--codec", "nnc", "--dq-states", "5"], ["--dq-states", "4", "--prune", "0.5"]):
        r = subprocess.run(base + ["-o", str(tmp_path / "p.h5")] + extra, capture_output=True,
                           text=True)
        assert r.returncode != 0 and "Traceback" not in r.stderr and "dq" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
