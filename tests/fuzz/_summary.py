"""Summaries of fuzz corpus results (JSON lines written by ``_run.py``)."""

import collections
import json

#: peak-memory bound of one case: 64 MB + 10 x the input size
BASE_BYTES = 64 << 20
PER_INPUT_BYTE = 10


def _target(how):
    """The HDF5 item a structural mutation targets, from its recorded name:
    ``("attr", holder, name)``, ``("dataset", path)``, ``("group", path)``, or None
    (byte mutations, combined edits, edits h5py refused, value edits)."""
    how = how.split("] ", 1)[-1]                  # "[base label] mutation"
    if "+" in how or ":" not in how:
        return None
    if how.startswith(("attr-", "drop-attr:")) and "@" in how:
        left, attr = how.rsplit("@", 1)
        return ("attr", left.rsplit(":", 1)[1], attr)
    op, path = how.rsplit(":", 1)
    if op == "rename":              # (a dropped group is absent: nothing can name it)
        return ("group", path)
    if op in ("drop-ds", "retype", "truncate") or op.startswith(("reshape-", "absurd-")):
        return ("dataset", path)
    return None


def names_target(msg, how):
    """The refusal of a mutation that targets a known HDF5 item names it: the attribute
    by its name; a dataset or group by its HDF5 path, or by its own name and the path
    of a group holding it below ``/layers`` (``/layers/0005/weights/W: missing dataset
    'codes'``, ``/layers/0005: ... missing parameter 'scale'``), or, for a dataset of
    an encoded weight, by the path of that weight's group (``/layers/0005/weights/W:
    packed codes ...``: the stored weight whose datasets disagree), or, for a weight's
    dataset, by the path of its layer followed by ":" (``/layers/0002/layers/0000:
    ... block output ... does not match``: the layer whose output the weight makes
    inconsistent).  None: no known item."""
    t = _target(how)
    if t is None:
        return None
    if t[0] == "attr":
        return t[2] in msg
    parts = t[1].strip("/").split("/")
    ancestors = ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]
    parent = ancestors[-1] if ancestors else None
    encoded = t[0] == "dataset" and parent is not None and (
        "/weights/" in parent + "/" or parent == "/weight") and not parent.endswith("/weights")
    layer = ("/" + "/".join(parts)).split("/weights/")[0] if "weights" in parts else None
    return "/" + "/".join(parts) in msg or (encoded and parent in msg) or (
        layer is not None and layer + ":" in msg) or (
        parts[-1] in msg and any(a in msg for a in ancestors if a != "/layers"))


def load(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh]


def violations(recs, time_limit=None):
    """Contract violations, one line each (empty: the corpus passed)."""
    out = []
    for r in recs:
        tag = f"{r['kind']}#{r['case']} {r['how']}"
        if r["outcome"].startswith("bad"):
            out.append(f"{tag}: {r['outcome']} {r.get('error')}: {r.get('message')}\n"
                       f"{r.get('trace', '')}")
        if r["outcome"] == "refused" and not r["names_item"]:
            out.append(f"{tag}: message does not name the input: {r['message']!r}")
        if r["outcome"] == "refused" and r.get("names_target") is False:
            out.append(f"{tag}: message does not name the mutated item: {r['message']!r}")
        if r.get("modified"):
            out.append(f"{tag}: the input file was modified")
        if time_limit is not None and r["seconds"] > time_limit:
            out.append(f"{tag}: took {r['seconds']:.2f} s")
        bound = BASE_BYTES + PER_INPUT_BYTE * r["size"]
        if r["peak_bytes"] is not None and r["peak_bytes"] > bound:
            out.append(f"{tag}: peak memory {r['peak_bytes'] >> 20} MiB over the bound "
                       f"{bound >> 20} MiB")
    return out


def table(recs):
    """{kind: {"cases", outcome counts..., "max_peak_mib", "max_seconds"}}."""
    out = {}
    for r in recs:
        d = out.setdefault(r["kind"], collections.Counter())
        d["cases"] += 1
        d[r["outcome"]] += 1
        d["max_peak_kib"] = max(d["max_peak_kib"], (r["peak_bytes"] or 0) >> 10)
        d["max_ms"] = max(d["max_ms"], int(1000 * r["seconds"]))
    return out
