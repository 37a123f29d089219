"""Huffman encode+decode of 1.18M k-means codes: refcomp vs dahuffman and constriction.

Symbols: 5-bit k-means codes (refcomp.quantize.kmeans, linear init) of
1,180,000 float32 N(0, 1) weights (seed 0), as uint8.  Prints wall times
(median of a few runs after a warm-up), speed ratios, and sizes against the
Shannon entropy bound and the optimal Huffman payload + header.

A second table (issue 25): DeepCABAC encode + decode of 1.18M NNC levels
(8-state dependent quantization of N(0, 1) float32 weights at qp = -8, a
(1180, 1000) tensor, NNCodec's default coder options), refcomp's Numba coder
against NNCodec 2.1.3's C++ deepCABAC run in its own venv through
tests/_nnc_bridge.py ($REFCOMP_NNC_PYTHON or /work/nnc-venv/bin/python;
skipped with a message when absent).  Both timed in the same run, in
alternating rounds (3 x 5 timed runs each after a warm-up) so that load
changes hit both; best and median of all runs are reported for both sides.
NNCodec's time is measured inside its process (no subprocess or file
overhead).  The payload NNCodec wrote is compared byte for byte with
refcomp's, and the levels NNCodec decoded (and refcomp's decoding of
NNCodec's payload) with the input levels.

Run: python benchmarks/bench_coding.py
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import timeit, timings  # noqa: E402

import refcomp.coding as rc  # noqa: E402
from refcomp.quantize.kmeans import kmeans  # noqa: E402

N = 1_180_000


def symbols():
    w = np.random.default_rng(0).standard_normal(N).astype(np.float32)
    q = kmeans(w, bits=5, max_iter=20)
    return np.asarray(q.codes).reshape(-1).astype(np.uint8)


def main():
    x = symbols()
    counts = np.bincount(x, minlength=32).astype(np.int64)
    p = counts[counts > 0] / N
    entropy_bits = -math.fsum(float(c) * math.log2(float(pp)) for c, pp in zip(counts[counts > 0], p))
    opt = rc.huffman_cost(counts)
    rows = []

    def ref():
        return rc.huffman_decode(rc.huffman_encode(x))
    assert np.array_equal(ref(), x)
    enc = rc.huffman_encode(x)
    hb, pb = rc.huffman_sizes(enc)
    t_enc = timeit(lambda: rc.huffman_encode(x), 5)
    t_dec = timeit(lambda: rc.huffman_decode(enc), 5)
    rows.append(("refcomp huffman", t_enc, t_dec, 8 * len(enc)))
    for prec in (12, 14):
        r_enc = rc.rans_encode(x, precision=prec)
        assert np.array_equal(rc.rans_decode(r_enc), x)
        te = timeit(lambda: rc.rans_encode(x, precision=prec), 5)
        td = timeit(lambda: rc.rans_decode(r_enc), 5)
        rows.append(("refcomp rANS precision %d (stream)" % prec, te, td, 8 * len(r_enc)))

    try:
        import dahuffman
        xl = x.tolist()
        codec = dahuffman.HuffmanCodec.from_data(xl)
        d_enc = codec.encode(xl)
        assert codec.decode(d_enc) == xl
        te = timeit(lambda: codec.encode(xl), 1)
        td = timeit(lambda: codec.decode(d_enc), 1)
        rows.append(("dahuffman (codec given)", te, td, 8 * len(d_enc)))
    except ImportError:
        print("dahuffman not installed")

    try:
        import constriction
        probs = (counts / N).astype(np.float64)
        xi = x.astype(np.int32)
        tree_e = constriction.symbol.huffman.EncoderHuffmanTree(probs)
        tree_d = constriction.symbol.huffman.DecoderHuffmanTree(probs)

        def c_huff_enc():
            e = constriction.symbol.QueueEncoder()
            for s in xi:
                e.encode_symbol(int(s), tree_e)
            return e.get_compressed_and_bitrate()

        comp, bitrate = c_huff_enc()

        def c_huff_dec():
            d = constriction.symbol.QueueDecoder(comp)
            return [d.decode_symbol(tree_d) for _ in range(N)]
        te = timeit(c_huff_enc, 1)
        td = timeit(c_huff_dec, 1)
        rows.append(("constriction huffman (per-symbol API)", te, td, bitrate))

        model = constriction.stream.model.Categorical(probs, perfect=False)

        def c_ans_enc():
            c = constriction.stream.stack.AnsCoder()
            c.encode_reverse(xi, model)
            return c.get_compressed()
        ans = c_ans_enc()

        def c_ans_dec():
            return constriction.stream.stack.AnsCoder(ans).decode(model, N)
        assert np.array_equal(c_ans_dec(), xi)
        te = timeit(c_ans_enc, 5)
        td = timeit(c_ans_dec, 5)
        rows.append(("constriction ANS (model given)", te, td, 32 * ans.size))
    except ImportError:
        print("constriction not installed")

    floor = np.empty_like(x)
    t_copy = timeit(lambda: np.copyto(floor, x), 20)
    base = rows[0][1] + rows[0][2]
    print("N = %d symbols, %d distinct, uint8 (5-bit k-means codes of N(0,1) float32)"
          % (N, int((counts > 0).sum())))
    print("memory floor (np.copyto of the symbols): %.3f ms" % (1e3 * t_copy))
    print("%-40s %10s %10s %10s %8s %12s %8s" % ("coder", "enc ms", "dec ms", "total ms",
                                                 "x ref", "bits", "bits/sym"))
    for name, te, td, bits in rows:
        print("%-40s %10.2f %10.2f %10.2f %8.2f %12d %8.4f"
              % (name, 1e3 * te, 1e3 * td, 1e3 * (te + td), (te + td) / base, bits, bits / N))
    print("entropy bound: %.0f bits (%.4f bits/sym)" % (entropy_bits, entropy_bits / N))
    print("optimal Huffman payload: %d bits (%.4f bits/sym); refcomp stream = header %d + "
          "payload %d + padding %d bits = %d bytes"
          % (opt, opt / N, hb, pb, 8 * len(enc) - hb - pb, len(enc)))
    assert pb == opt


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def _nncodec_round(py, lv, repeat, d):
    """One NNCodec process: its in-process times, its payload and its decoded levels."""
    import json
    import subprocess
    paths = {k: os.path.join(d, k) for k in ("lv.npy", "r.json", "nnc.bin", "nnc_dec.npy")}
    np.save(paths["lv.npy"], lv)
    req = dict(op="time", levels=paths["lv.npy"], repeat=repeat, dq_flag=1, scan_order=0,
               general_profile_idc=1, num_gtx=11, param_opt=1, out=paths["nnc.bin"],
               decoded=paths["nnc_dec.npy"])
    with open(paths["r.json"], "w") as f:
        json.dump(req, f)
    bridge = os.path.join(os.path.dirname(__file__), "..", "tests", "_nnc_bridge.py")
    r = subprocess.run([py, bridge, paths["r.json"]], capture_output=True, text=True, check=True)
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    with open(paths["nnc.bin"], "rb") as f:
        payload = f.read()
    return rep["encode_all_s"], rep["decode_all_s"], payload, np.load(paths["nnc_dec.npy"])


def cabac_main(rounds=3, repeat=5):
    """refcomp's and NNCodec's DeepCABAC in alternating rounds (``rounds`` x
    ``repeat`` timed runs each, one warm-up per round), so that a change of
    the host's load hits both; best and median of all runs for both."""
    import hashlib
    import tempfile
    from refcomp.coding.cabac import decode_levels, encode_levels
    from refcomp.quantize.nnc import nnc_levels
    w = np.random.default_rng(0).standard_normal((1180, 1000)).astype(np.float32)
    lv = nnc_levels(w, qp=-8, dq=True)
    data = encode_levels(lv, dq=True)
    assert np.array_equal(decode_levels(data, lv.shape, dq=True), lv)
    floor = np.empty_like(lv)
    t_copy = timeit(lambda: np.copyto(floor, lv), 20)
    print()
    print("DeepCABAC, N = %d levels (dq, qp -8, max |level| %d), %d payload bytes (%.4f bits/level)"
          % (lv.size, int(np.abs(lv).max()), len(data), 8 * len(data) / lv.size))
    print("memory floor (np.copyto of the levels): %.3f ms" % (1e3 * t_copy))
    py = os.environ.get("REFCOMP_NNC_PYTHON", "/work/nnc-venv/bin/python")
    have_nnc = os.path.exists(py)
    if not have_nnc:
        print("NNCodec reference venv not found (%s): build it with tools/make_nnc_venv.sh" % py)
    load0 = _loadavg()
    re_, rd_, ne_, nd_ = [], [], [], []
    nnc_payload = nnc_dec = None
    with tempfile.TemporaryDirectory() as d:
        for _ in range(rounds if have_nnc else 1):
            re_ += timings(lambda: encode_levels(lv, dq=True), repeat)
            rd_ += timings(lambda: decode_levels(data, lv.shape, dq=True), repeat)
            if have_nnc:
                e, dd, nnc_payload, nnc_dec = _nncodec_round(py, lv, repeat, d)
                ne_ += e
                nd_ += dd
    print("load average (1, 5, 15 min) before: %s, after: %s; %d rounds of %d timed runs each"
          % (load0, _loadavg(), rounds if have_nnc else 1, repeat))
    print("%-34s %9s %9s %9s %9s %9s %9s" % ("coder (ms)", "enc best", "enc med", "dec best",
                                            "dec med", "tot best", "tot med"))

    def row(name, e, dd):
        st = (min(e), float(np.median(e)), min(dd), float(np.median(dd)))
        print("%-34s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f" % (
            (name,) + tuple(1e3 * x for x in st) + (1e3 * (st[0] + st[2]), 1e3 * (st[1] + st[3]))))
        return st
    r = row("refcomp cabac (Numba)", re_, rd_)
    if not have_nnc:
        return
    n = row("NNCodec 2.1.3 deepCABAC (C++)", ne_, nd_)
    print("speed ratio NNCodec / refcomp (> 1: refcomp faster): encode best %.2f median %.2f, "
          "decode best %.2f median %.2f, total best %.2f median %.2f"
          % (n[0] / r[0], n[1] / r[1], n[2] / r[2], n[3] / r[3], (n[0] + n[2]) / (r[0] + r[2]),
             (n[1] + n[3]) / (r[1] + r[3])))
    same_bytes = nnc_payload == data
    print("payload bytes: refcomp %d, NNCodec %d; identical bytes: %s (sha256 refcomp %s, "
          "NNCodec %s)" % (len(data), len(nnc_payload), same_bytes,
                           hashlib.sha256(data).hexdigest()[:16],
                           hashlib.sha256(nnc_payload).hexdigest()[:16]))
    print("decoded levels: NNCodec's decoder on its payload == input: %s; refcomp's decoder on "
          "NNCodec's payload == input: %s"
          % (bool(np.array_equal(nnc_dec, lv)),
             bool(np.array_equal(decode_levels(nnc_payload, lv.shape, dq=True), lv))))
    assert same_bytes and np.array_equal(nnc_dec, lv)


if __name__ == "__main__":
    main()
    cabac_main()
