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
skipped with a message when absent).  Both timed in the same run; NNCodec's
time is measured inside its process (no subprocess or file overhead).

Run: python benchmarks/bench_coding.py
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import timeit  # noqa: E402

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


def cabac_main():
    import json
    import subprocess
    import tempfile
    from refcomp.coding.cabac import decode_levels, encode_levels
    from refcomp.quantize.nnc import nnc_levels
    w = np.random.default_rng(0).standard_normal((1180, 1000)).astype(np.float32)
    lv = nnc_levels(w, qp=-8, dq=True)
    data = encode_levels(lv, dq=True)
    assert np.array_equal(decode_levels(data, lv.shape, dq=True), lv)
    te = timeit(lambda: encode_levels(lv, dq=True), 5)
    td = timeit(lambda: decode_levels(data, lv.shape, dq=True), 5)
    floor = np.empty_like(lv)
    t_copy = timeit(lambda: np.copyto(floor, lv), 20)
    print()
    print("DeepCABAC, N = %d levels (dq, qp -8, max |level| %d), %d payload bytes (%.4f bits/level)"
          % (lv.size, int(np.abs(lv).max()), len(data), 8 * len(data) / lv.size))
    print("memory floor (np.copyto of the levels): %.3f ms" % (1e3 * t_copy))
    print("%-40s %10s %10s %10s %8s" % ("coder", "enc ms", "dec ms", "total ms", "x refcomp"))
    print("%-40s %10.2f %10.2f %10.2f %8.2f" % ("refcomp cabac (Numba)", 1e3 * te, 1e3 * td,
                                                1e3 * (te + td), 1.0))
    py = os.environ.get("REFCOMP_NNC_PYTHON", "/work/nnc-venv/bin/python")
    if not os.path.exists(py):
        print("NNCodec reference venv not found (%s): build it with tools/make_nnc_venv.sh" % py)
        return
    bridge = os.path.join(os.path.dirname(__file__), "..", "tests", "_nnc_bridge.py")
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "lv.npy"), lv)
        req = dict(op="time", levels=os.path.join(d, "lv.npy"), repeat=5, dq_flag=1,
                   scan_order=0, general_profile_idc=1, num_gtx=11, param_opt=1)
        with open(os.path.join(d, "r.json"), "w") as f:
            json.dump(req, f)
        r = subprocess.run([py, bridge, os.path.join(d, "r.json")], capture_output=True,
                           text=True, check=True)
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    ne, nd = rep["encode_s"], rep["decode_s"]
    print("%-40s %10.2f %10.2f %10.2f %8.2f" % ("NNCodec 2.1.3 deepCABAC (C++)", 1e3 * ne,
                                                1e3 * nd, 1e3 * (ne + nd), (ne + nd) / (te + td)))
    print("NNCodec payload %d bytes (identical bytes: %s); speed ratio NNCodec/refcomp: encode "
          "%.2f, decode %.2f" % (rep["nbytes"], rep["nbytes"] == len(data), ne / te, nd / td))


if __name__ == "__main__":
    main()
    cabac_main()
