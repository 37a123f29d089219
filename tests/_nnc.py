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


def call(op, arrays=None, payload=None, **params):
    """Run one bridge operation; returns (reply dict, output array or bytes)."""
    py, why = nnc_python()
    if py is None:
        raise RuntimeError(why)
    with tempfile.TemporaryDirectory() as d:
        req = dict(params, op=op)
        for k, a in (arrays or {}).items():
            req[k] = os.path.join(d, k + ".npy")
            np.save(req[k], a)
        if payload is not None:
            req["payload"] = os.path.join(d, "payload.bin")
            Path(req["payload"]).write_bytes(payload)
        out = os.path.join(d, "out.npy" if op in ("decode", "quant") else "out.bin")
        req["out"] = out
        rq = os.path.join(d, "req.json")
        Path(rq).write_text(json.dumps(req))
        r = subprocess.run([py, str(_BRIDGE), rq], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("NNCodec bridge failed: %s" % r.stderr[-2000:])
        reply = json.loads(r.stdout.strip().splitlines()[-1])
        if op == "encode":
            return reply, Path(out).read_bytes()
        if op in ("decode", "quant"):
            return reply, np.load(out)
        return reply, None


def nnc_encode(levels, *, dq, scan_order=0, cabac_unary_length_minus1=10, param_opt=True,
               general_profile_idc=1):
    return call("encode", {"levels": np.ascontiguousarray(levels, dtype=np.int32)},
                dq_flag=int(dq), scan_order=scan_order, general_profile_idc=general_profile_idc,
                num_gtx=cabac_unary_length_minus1 + 1, param_opt=int(param_opt))[1]


def nnc_decode(payload, shape, *, dq, scan_order=0, cabac_unary_length_minus1=10,
               general_profile_idc=1):
    reply, out = call("decode", payload=payload, shape=list(shape), dq_flag=int(dq),
                      scan_order=scan_order, general_profile_idc=general_profile_idc,
                      num_gtx=cabac_unary_length_minus1 + 1)
    return out, reply["bytes_read"]


def nnc_quantize(weights, *, qp, dq, qp_density=2, lambda_scale=0.0,
                 cabac_unary_length_minus1=10, scan_order=0):
    reply, out = call("quant", {"weights": np.ascontiguousarray(weights, dtype=np.float32)},
                      qp=qp, qp_density=qp_density, dq_flag=int(dq), lambda_scale=lambda_scale,
                      max_num_no_rem=cabac_unary_length_minus1, scan_order=scan_order)
    return out, reply["qp"]


if __name__ == "__main__":
    print(nnc_python())
    sys.exit(0)
