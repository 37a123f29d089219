"""Locate NNCodec's reference venv and call it through tests/_nnc_bridge.py.

The venv's python comes from ``$REFCOMP_NNC_PYTHON`` (set by .ci/run, which
builds it with tools/make_nnc_venv.sh), else ``/work/nnc-venv/bin/python``,
else ``.nnc-venv/bin/python`` at the repository root.  When none works,
:func:`nnc_python` returns None and the reason, and the interoperability
tests skip with a warning and a line in pytest's terminal summary.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parent.parent
_BRIDGE = Path(__file__).resolve().parent / "_nnc_bridge.py"
_CANDIDATES = ("/work/nnc-venv/bin/python", str(_ROOT / ".nnc-venv" / "bin" / "python"))
_cache = {}
#: Reasons the reference was unavailable (read by conftest's summary hook).
UNAVAILABLE = []


def nnc_python():
    """(path, None) of a python that imports nncodec's deepCABAC, or (None, reason)."""
    if "py" in _cache:
        return _cache["py"]
    env = os.environ.get("REFCOMP_NNC_PYTHON")
    tried = [env] if env else list(_CANDIDATES)
    why = []
    for py in tried:
        if not py or not Path(py).exists():
            why.append("%s: not found" % py)
            continue
        r = subprocess.run([py, "-c", "from nncodec.extensions import deepCABAC"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            _cache["py"] = (py, None)
            return _cache["py"]
        why.append("%s: %s" % (py, r.stderr.strip().splitlines()[-1:]))
    reason = ("NNCodec 2.1.3 reference venv unavailable (%s); build it with "
              "tools/make_nnc_venv.sh DIR and set REFCOMP_NNC_PYTHON=DIR/bin/python"
              % "; ".join(why))
    _cache["py"] = (None, reason)
    UNAVAILABLE.append(reason)
    return _cache["py"]


def _request(d, tag, op, arrays, payload, params):
    req = dict(params, op=op)
    for k, a in (arrays or {}).items():
        req[k] = os.path.join(d, "%s%s.npy" % (tag, k))
        np.save(req[k], a)
    if payload is not None:
        req["payload"] = os.path.join(d, tag + "payload.bin")
        Path(req["payload"]).write_bytes(payload)
    req["out"] = os.path.join(d, tag + ("out.npy" if op in _ARRAY_OPS else "out.bin"))
    return req


_ARRAY_OPS = ("decode", "quant", "dequant")


def _result(op, req, reply):
    if op == "encode":
        return reply, Path(req["out"]).read_bytes()
    if op in _ARRAY_OPS:
        return reply, np.load(req["out"])
    return reply, None


def _run(d, req):
    py, why = nnc_python()
    if py is None:
        raise RuntimeError(why)
    rq = os.path.join(d, "req.json")
    Path(rq).write_text(json.dumps(req))
    r = subprocess.run([py, str(_BRIDGE), rq], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("NNCodec bridge failed: %s" % r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def call(op, arrays=None, payload=None, **params):
    """Run one bridge operation; returns (reply dict, output array or bytes)."""
    with tempfile.TemporaryDirectory() as d:
        req = _request(d, "", op, arrays, payload, params)
        return _result(op, req, _run(d, req))


def call_batch(items):
    """Run several operations in one bridge process (the interpreter and NNCodec's
    extension start once: about 1 s saved per operation under load).  ``items``: a list
    of ``(op, arrays, payload, params)`` (the ``*_item`` helpers below); returns
    ``[(reply, output), ...]`` as :func:`call` does."""
    if not items:
        return []
    with tempfile.TemporaryDirectory() as d:
        reqs = [_request(d, "i%d_" % i, op, arrays, payload, params)
                for i, (op, arrays, payload, params) in enumerate(items)]
        replies = _run(d, {"op": "batch", "items": reqs})["replies"]
        return [_result(it[0], req, rep) for it, req, rep in zip(items, reqs, replies)]


def encode_item(levels, *, dq, scan_order=0, cabac_unary_length_minus1=10, param_opt=True,
                general_profile_idc=1):
    return ("encode", {"levels": np.ascontiguousarray(levels, dtype=np.int32)}, None,
            dict(dq_flag=int(dq), scan_order=scan_order,
                 general_profile_idc=general_profile_idc,
                 num_gtx=cabac_unary_length_minus1 + 1, param_opt=int(param_opt)))


def decode_item(payload, shape, *, dq, scan_order=0, cabac_unary_length_minus1=10,
                general_profile_idc=1):
    return ("decode", None, payload,
            dict(shape=list(shape), dq_flag=int(dq), scan_order=scan_order,
                 general_profile_idc=general_profile_idc,
                 num_gtx=cabac_unary_length_minus1 + 1))


def quant_item(weights, *, qp, dq, qp_density=2, lambda_scale=0.0,
               cabac_unary_length_minus1=10, scan_order=0):
    return ("quant", {"weights": np.ascontiguousarray(weights, dtype=np.float32)}, None,
            dict(qp=qp, qp_density=qp_density, dq_flag=int(dq), lambda_scale=lambda_scale,
                 max_num_no_rem=cabac_unary_length_minus1, scan_order=scan_order))


def dequant_item(levels, *, qp, qp_density=2, scan_order=0):
    return ("dequant", {"levels": np.ascontiguousarray(levels, dtype=np.int32)}, None,
            dict(qp=qp, qp_density=qp_density, scan_order=scan_order))


def nnc_encode(levels, **opts):
    op, arrays, payload, params = encode_item(levels, **opts)
    return call(op, arrays, payload, **params)[1]


def nnc_decode(payload, shape, **opts):
    op, arrays, payload, params = decode_item(payload, shape, **opts)
    reply, out = call(op, arrays, payload, **params)
    return out, reply["bytes_read"]


def nnc_quantize(weights, **opts):
    op, arrays, payload, params = quant_item(weights, **opts)
    reply, out = call(op, arrays, payload, **params)
    return out, reply["qp"]


def nnc_compress(params, *, qp):
    """NNCodec's whole ``compress`` of ``params`` (name -> float32 array) at ``qp``, its
    other defaults; returns (bitstream bytes, {name: NNCodec's decompressed array})."""
    with tempfile.TemporaryDirectory() as d:
        req = {"op": "compress", "params": os.path.join(d, "p.npz"), "qp": int(qp),
               "out": os.path.join(d, "bs.nnc"), "decoded": os.path.join(d, "dec.npz")}
        np.savez(req["params"], **params)
        _run(d, req)
        with np.load(req["decoded"]) as z:
            dec = {k: z[k] for k in z.files}
        return Path(req["out"]).read_bytes(), dec


if __name__ == "__main__":
    print(nnc_python())
    sys.exit(0)
