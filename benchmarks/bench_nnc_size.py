"""NNC coding of digits_cnn: refcomp vs NNCodec 2.1.3 bytes at equal accuracy (issue 25).

For every qp in -38 .. -8 (NNCodec's other defaults: qp_density 2, nonweight_qp -75,
dependent quantization, lambda_scale 0, param_opt, 11 greater-than flags):
refcomp's :func:`refcomp.compress.nnc.nnc_compress` (compressed bits =
CABAC payloads + 32-bit qp per tensor) against NNCodec's whole ``compress``
bitstream (NNC high-level syntax included) of the same float32 tensors, run
in its venv through tests/_nnc_bridge.py.  Accuracy on the 360 test images
(refcomp's forward pass), of refcomp's model and of NNCodec's decoded
tensors.  Then, per accuracy level of the issue's table (98.6, 98, 97, 95
%), the smallest output reaching it, beside the smallest Deep Compression
output reaching it, measured here on the same model and test images (the
issue's table defines that column as refcomp's best bytes): a sweep of
``deep_compress`` (magnitude pruning at sparsity 0, 0.02, ..., 0.98 x
k-means bits 1..8, linear init, Huffman-coded value and relative-index
streams; biases stay float32) and of k-means + Huffman without pruning or
index stream (``kmeans(bits=1..8)`` of each dense/conv weight, its codes as one
canonical Huffman stream + the float32 codebook; biases float32).  Sizes are
whole bytes (every stream's header and padding counted).

Run: python benchmarks/bench_nnc_size.py
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

import refcomp
import refcomp.coding as rc
from refcomp.compress.deep import deep_compress
from refcomp.compress.nnc import nnc_compress
from refcomp.data import load_split
from refcomp.metrics import accuracy
from refcomp.quantize.kmeans import kmeans

HERE = os.path.dirname(os.path.abspath(__file__))
LEVELS = (0.986, 0.98, 0.97, 0.95)
#: The figures of issue 25's table (a coarser sweep), printed for reference only.
DC_ISSUE = {0.986: 26022, 0.98: 24911, 0.97: 16452, 0.95: 13964}


def nncodec(params, qp, py):
    with tempfile.TemporaryDirectory() as d:
        np.savez(os.path.join(d, "p.npz"), **params)
        req = dict(op="compress", params=os.path.join(d, "p.npz"), qp=qp,
                   out=os.path.join(d, "bs.nnc"), decoded=os.path.join(d, "dec.npz"))
        with open(os.path.join(d, "r.json"), "w") as f:
            json.dump(req, f)
        r = subprocess.run([py, os.path.join(HERE, "..", "tests", "_nnc_bridge.py"),
                            os.path.join(d, "r.json")], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-3000:])
        n = json.loads(r.stdout.strip().splitlines()[-1])["nbytes"]
        dec = dict(np.load(os.path.join(d, "dec.npz")))
    return n, dec


def kmeans_huffman(m, bits):
    """k-means (``bits``) of every dense/conv ``W``, its codes as one Huffman
    stream + the float32 codebook; other weights float32.  (model, bytes)."""
    updates, total = {}, 0
    for p, l in m.named_layers():
        for wn, w in l.weights.items():
            if l.kind in ("dense", "conv2d") and wn == "W":
                q = kmeans(w, bits=bits)
                stream = rc.huffman_encode(np.asarray(q.codes).ravel())
                total += 8 * len(stream) + 32 * np.asarray(q.params["codebook"]).size
                updates[(p, wn)] = q.dequantize()
            else:
                total += 32 * w.size
    return m.replace_weights(updates), (total + 7) // 8


def dc_sweep(m, x, y):
    """(bytes, accuracy, setting) of every Deep Compression setting swept."""
    rows = []
    for bits in range(1, 9):
        out, nb = kmeans_huffman(m, bits)
        rows.append((nb, accuracy(out(x), y), "k-means %d bits + Huffman" % bits))
        for sp in range(0, 100, 2):
            out, rep = deep_compress(m, sparsity=sp / 100, bits=bits)
            rows.append(((rep.compressed_bits + 7) // 8, accuracy(out(x), y),
                         "deep_compress %.2f / %d bits" % (sp / 100, bits)))
    return rows


def main():
    py = os.environ.get("REFCOMP_NNC_PYTHON", "/work/nnc-venv/bin/python")
    m = refcomp.load(os.path.join(HERE, "..", "data", "digits_cnn.h5"))
    x, y = load_split("test")
    base = accuracy(m(x), y)
    names = {}
    params = {}
    for p, l in m.named_layers():
        for wn, w in l.weights.items():
            key = "l%s.%s" % (p, "weight" if wn == "W" else "bias")
            names[key] = (p, wn)
            params[key] = w
    rows = []
    print("float accuracy %.4f" % base)
    print("%5s %10s %10s %7s %9s %9s %6s" % ("qp", "refcomp B", "NNCodec B", "ratio",
                                            "acc ref", "acc NNC", "same"))
    for qp in range(-38, -7):
        out, rep = nnc_compress(m, qp=qp)
        rb = (rep.compressed_bits + 7) // 8
        acc_r = accuracy(out(x), y)
        nb, dec = nncodec(params, qp, py)
        nm = m.replace_weights({names[k]: v.astype(np.float32) for k, v in dec.items()
                                if k in names})
        acc_n = accuracy(nm(x), y)
        same = all(np.array_equal(out.get_layer(p).weights[wn].dequantize(), dec[k])
                   for k, (p, wn) in names.items() if k in dec)
        rows.append((qp, rb, nb, acc_r, acc_n))
        print("%5d %10d %10d %7.3f %9.4f %9.4f %6s" % (qp, rb, nb, rb / nb, acc_r, acc_n, same))
    dc = dc_sweep(m, x, y)
    print()
    print("Deep Compression sweep: %d settings; smallest bytes per accuracy level:" % len(dc))
    dc_best = {}
    for level in LEVELS:
        ok = [r for r in dc if r[1] >= level - 1e-9]
        dc_best[level] = min(ok) if ok else None
        if ok:
            print("  >= %.1f %%: %d bytes, accuracy %.4f (%s); issue 25's table: %d"
                  % (100 * level, dc_best[level][0], dc_best[level][1], dc_best[level][2],
                     DC_ISSUE[level]))
    print()
    print("| accuracy kept | NNCodec bytes (qp) | refcomp NNC bytes | refcomp / NNCodec | "
          "Deep Compression best (measured) | DC / NNCodec |")
    print("|---|---|---|---|---|---|")
    for level in LEVELS:
        ok_n = [(nb, qp) for qp, rb, nb, ar, an in rows if an >= level - 1e-9]
        ok_r = [(rb, qp) for qp, rb, nb, ar, an in rows if ar >= level - 1e-9]
        d = dc_best[level]
        dtxt = "%d (%s)" % (d[0], d[2]) if d else "-"
        if not ok_n or not ok_r:
            print("| %.1f %% | - | - | - | %s | - |" % (100 * level, dtxt))
            continue
        nb, qn = min(ok_n)
        rb, qr = min(ok_r)
        print("| %.1f %% | %d (qp %d) | %d (qp %d) | %.3f | %s | %s |"
              % (100 * level, nb, qn, rb, qr, rb / nb, dtxt,
                 "%.2f" % (d[0] / nb) if d else "-"))


if __name__ == "__main__":
    sys.exit(main())
