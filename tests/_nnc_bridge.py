"""Subprocess bridge to NNCodec 2.1.3's deepCABAC extension.

Runs inside the reference venv (tools/make_nnc_venv.sh), never inside
refcomp's: it needs only numpy<2 and the compiled extension, imported
directly (``nncodec.nnc`` would import a CUDA-only torchvision).

usage: python _nnc_bridge.py REQUEST.json

The request names one operation and its .npy/.bin files:

- ``encode``: ``levels`` (int32 .npy) -> ``out`` (payload bytes); keys
  ``dq_flag``, ``scan_order``, ``general_profile_idc``, ``num_gtx``
  (``initCtxModels``' unary length), ``param_opt``.
- ``decode``: ``payload`` (.bin) and ``shape`` -> ``out`` (int32 .npy).
- ``quant``: ``weights`` (float32 .npy), ``qp``, ``qp_density``, ``dq_flag``,
  ``lambda_scale``, ``max_num_no_rem``, ``scan_order`` -> ``out`` (int32
  .npy); the qp NNCodec actually used is printed in the JSON reply.
- ``dequant``: ``levels`` (int32 .npy), ``qp``, ``qp_density``, ``scan_order``
  -> ``out`` (float32 .npy, ``Decoder.dequantLayer``).
- ``time``: encode + decode once (warm-up), then ``repeat`` times; the reply
  has the best seconds (``encode_s``, ``decode_s``) and every run's
  (``encode_all_s``, ``decode_all_s``); optional ``out`` receives the last
  payload, ``decoded`` (.npy) the levels decoded from it.
- ``compress``: NNCodec's whole ``nnc.compress`` of the tensors in
  ``params`` (.npz, name -> float32) at ``qp`` (its other defaults) ->
  ``out`` (the NNC bitstream) and ``decoded`` (.npz, NNCodec's
  ``decompress`` of it).  ``nncodec.framework`` (torch/tensorflow glue, not
  used for a parameter dict) is replaced by empty modules so that the
  CUDA-only torchvision is never imported.
- ``batch``: ``items``, a list of the requests above, run in order in this
  one process (the interpreter and extension start once); the reply's
  ``replies`` lists theirs.

The reply is one JSON line on stdout.
"""
import json
import sys
import time

import numpy as np
from nncodec.extensions import deepCABAC


def _hdsp_off(shape):
    return deepCABAC.HdspMode.AlwaysOff, np.zeros(1, dtype=np.int8)


def encode(levels, r):
    enc = deepCABAC.Encoder()
    enc.initCtxModels(int(r["num_gtx"]), int(r["param_opt"]))
    chan = np.zeros(levels.shape[0] if levels.ndim else 1, dtype=np.int32)
    enc.encodeLayer(np.ascontiguousarray(levels, dtype=np.int32), int(r["dq_flag"]),
                    int(r["scan_order"]), int(r["general_profile_idc"]), 0, 0, chan,
                    *_hdsp_off(levels.shape), 0, 0)
    return enc.finish().tobytes()


def decode(payload, shape, r):
    dec = deepCABAC.Decoder()
    buf = np.frombuffer(payload, dtype=np.uint8).copy()
    dec.setStream(buf)
    dec.initCtxModels(int(r["num_gtx"]))
    out = np.zeros(shape, dtype=np.int32)
    dec.decodeLayer(out, int(r["dq_flag"]), int(r["scan_order"]),
                    int(r["general_profile_idc"]), 0, *_hdsp_off(shape), 0, 0)
    used = dec.finish()
    return out, int(used)


def _compression_module():
    import importlib.util
    import os
    import types
    for name in ("nncodec.framework", "nncodec.framework.tensorflow_model",
                 "nncodec.framework.pytorch_model", "nncodec.framework.use_case_init"):
        sys.modules.setdefault(name, types.ModuleType(name))
    fw = sys.modules["nncodec.framework"]
    for sub in ("tensorflow_model", "pytorch_model", "use_case_init"):
        setattr(fw, sub, sys.modules["nncodec.framework." + sub])
    import nncodec
    path = os.path.join(os.path.dirname(nncodec.__file__), "nnc", "compression.py")
    spec = importlib.util.spec_from_file_location("_nnc_compression", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(r):
    op = r["op"]
    reply = {"ok": True}
    if op == "encode":
        data = encode(np.load(r["levels"]), r)
        with open(r["out"], "wb") as f:
            f.write(data)
        reply["nbytes"] = len(data)
    elif op == "decode":
        with open(r["payload"], "rb") as f:
            payload = f.read()
        out, used = decode(payload, tuple(r["shape"]), r)
        np.save(r["out"], out)
        reply["bytes_read"] = used
    elif op == "quant":
        w = np.ascontiguousarray(np.load(r["weights"]), dtype=np.float32)
        q = np.zeros(w.shape, dtype=np.int32)
        enc = deepCABAC.Encoder()
        enc.initCtxModels(int(r["max_num_no_rem"]), 0)
        qp = enc.quantLayer(w, q, int(r["dq_flag"]), int(r["qp_density"]), int(r["qp"]),
                            float(r["lambda_scale"]), int(r["max_num_no_rem"]),
                            int(r["scan_order"]), 0)
        np.save(r["out"], q)
        reply["qp"] = int(qp)
    elif op == "dequant":
        levels = np.ascontiguousarray(np.load(r["levels"]), dtype=np.int32)
        w = np.zeros(levels.shape, dtype=np.float32)
        deepCABAC.Decoder().dequantLayer(w, levels, int(r["qp_density"]), int(r["qp"]),
                                         int(r["scan_order"]))
        np.save(r["out"], w)
    elif op == "time":
        levels = np.load(r["levels"])
        data = encode(levels, r)                      # warm-up (first touch, caches)
        decode(data, levels.shape, r)
        enc_s, dec_s = [], []
        for _ in range(int(r["repeat"])):
            t0 = time.perf_counter()
            data = encode(levels, r)
            t1 = time.perf_counter()
            out, _ = decode(data, levels.shape, r)
            t2 = time.perf_counter()
            enc_s.append(t1 - t0)
            dec_s.append(t2 - t1)
        if r.get("out"):
            with open(r["out"], "wb") as f:
                f.write(data)
        if r.get("decoded"):
            np.save(r["decoded"], out)
        reply.update(encode_s=min(enc_s), decode_s=min(dec_s), encode_all_s=enc_s,
                     decode_all_s=dec_s, nbytes=len(data),
                     roundtrip=bool(np.array_equal(out, levels)))
    elif op == "compress":
        comp = _compression_module()
        params = dict(np.load(r["params"]))
        bs = comp.compress(params, bitstream_path=r["out"] + ".tmp", qp=int(r["qp"]),
                           return_bitstream=True, verbose=False)
        with open(r["out"], "wb") as f:
            f.write(bytes(bs))
        dec = comp.decompress(bytearray(bs), verbose=False)
        if isinstance(dec, tuple):
            dec = dec[0]
        np.savez(r["decoded"], **{k: np.asarray(v) for k, v in (dec or {}).items()})
        reply["nbytes"] = len(bs)
    else:
        raise SystemExit("unknown op %r" % op)
    return reply


def main():
    with open(sys.argv[1]) as f:
        r = json.load(f)
    if r["op"] == "batch":
        reply = {"ok": True, "replies": [run(item) for item in r["items"]]}
    else:
        reply = run(r)
    print(json.dumps(reply))


if __name__ == "__main__":
    main()
