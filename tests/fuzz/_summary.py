"""Summaries of fuzz corpus results (JSON lines written by ``_run.py``)."""

import collections
import json
import re

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


# -- the other kinds: what a mutation targets, by kind (``names_target_of(kind, msg, how)``)
_ROOTS = {"model_weights", "layers", "vars", "cell", "_layer_checkpoint_dependencies"}


def _keras_h5(msg, how, base=None):
    """A Keras HDF5 item: the existing HDF5 rule, or the Keras layer that holds it
    (``layer 'dense1'``: a path component quoted, or, in a Keras 3 weights file of the
    base ``base``, the layer name Keras stored for the group)."""
    res = names_target(msg, how)
    if res is not False:
        return res
    t = _target(how)
    parts = [c for c in (t[1] or "").strip("/").split("/") if c]
    comps = [c for c in parts if c not in _ROOTS] + parts[-1:]    # a renamed root too
    names = {_v3_layer_names(base).get(c) for c in comps} if base else set()
    return any(f"'{c}'" in msg for c in comps + sorted(n for n in names if n))


def _v3_layer_names(base):
    """{group key under /layers: layer name} of a Keras 3 weights file, as Keras writes
    it (the ``name`` attribute of each ``layers/<key>/vars`` group)."""
    if base not in _V3_NAMES:
        import h5py
        from refcomp.data import default_data_dir
        with h5py.File(default_data_dir() / "golden" / f"{base}.weights.h5", "r") as f:
            _V3_NAMES[base] = {k: (v.decode() if isinstance(v, bytes) else str(v))
                               for k in f["layers"] if "vars" in f["layers"][k]
                               for v in [f["layers"][k]["vars"].attrs.get("name", "")]}
    return _V3_NAMES[base]


_V3_NAMES = {}


def _json_target(msg, path, root_names):
    """A JSON edit at ``path`` (``a/b/3/c``): the last key (not a list index) or another
    key of the path is named, or, for an edit inside a list entry, the entry
    (``spec[3]``, ``layers[3]``, a layer by name, ``layer 3``).  Deleting or duplicating
    a whole list entry is exempt (None, in ``_json_how``): nothing is left to name, or
    the duplicate is itself valid."""
    comps = path.split("/") if path else []
    keys = [c for c in comps if not c.lstrip("-").isdigit()]
    if not comps:
        return any(r in msg for r in root_names)
    if keys and keys[-1] in msg:
        return True
    if any(k in msg for k in keys if k not in ("config", "layers")):
        return True              # (the recorded path keeps its last 40 characters)
    idx = [c for c in comps if c.isdigit()]
    return bool(idx) and (f"[{idx[0]}]" in msg or "layer '" in msg or f"layer {idx[0]}" in msg)


def _json_how(msg, how, root_names):
    op, _, path = how.partition(":")
    if op.startswith("json-text") or op == "json-reverse":
        return None                  # bytes of the JSON text: a byte mutation
    if op in ("json-delete", "json-dup") and (not path or path.split("/")[-1].isdigit()):
        return None
    if op == "json-root":
        return any(r in msg for r in root_names)
    return _json_target(msg, path, root_names)


def _keras(msg, how):
    base = how[1:].split("]", 1)[0] if how.startswith("[") else None
    how = how.split("] ", 1)[-1]
    if "+" in how:
        return None
    for prefix, roots in (("model_config-", ("model_config",)), ("config-", ("config",)),
                          ("weights-", None)):
        if how.startswith(prefix):
            rest = how[len(prefix):]
            return _keras_h5(msg, rest, base) if roots is None else \
                _json_how(msg, rest, roots)
    if how.startswith("json"):                        # .keras: config.json edited
        return _json_how(msg, how, ("config",))
    if how.startswith("missing-"):
        return how[len("missing-"):] in msg
    if how == "metadata":
        return "metadata" in msg
    if how.startswith("zip-"):
        return None
    return _keras_h5(msg, how, base)


def _onnx(msg, how):
    """An ONNX item: the operator type (old or new) of a retyped node; the initializer
    by name; the attribute by name; the graph input/output by name; the opset.  A
    shape/type inconsistency may surface at the node that consumes the item (an
    initializer reshaped, an input dropped or rewired, an attribute changed): naming
    that node (``node '/3/Conv' (op Conv): input W has shape ...``) is accepted too."""
    op, _, item = how.partition(":")
    node = "node '" in msg or "nodes ('" in msg
    if op == "op":
        old, new = item.split("->")
        return old in msg or new in msg or node
    if op == "absurd-init":
        return f"'{item}'" in msg
    if op in ("drop-init", "dtype-init", "reshape-init"):
        return f"'{item}'" in msg or node
    if op == "attr":
        return item.rsplit(".", 1)[-1] in msg or node
    if op in ("drop-input", "rewire"):
        return item in msg or node
    if op == "io-shape":
        return node or re.search(r"(?<![\w/.])" + re.escape(item) + r"(?![\w/.])",
                                 msg) is not None
    if op == "opset":
        return "opset" in msg
    return None          # byte mutations, NaN initializers, a dropped node (nothing left)


def _torch(msg, how):
    """A state-dict entry by its key (or its module's prefix, ``'5'`` of ``5.weight``);
    a spec edit by the entry (``spec[3]``) or key; an edit that leaves a valid spec (an
    optional key deleted, its default then applying; ``return_sequences`` set to true)
    surfaces where the spec stops fitting the tensors (``layer 1 (dense 'fc'): ...``)."""
    if how.startswith("spec-"):
        res = _json_how(msg, how[len("spec-"):], ("spec",))
        if res is False:
            return re.search(r"layer \d+ \(", msg) is not None
        return res
    op, _, key = how.partition(":")
    if not op.startswith("sd-") or op == "sd-nan":
        return None
    return f"'{key}" in msg or f"'{key.rsplit('.', 1)[0]}'" in msg


#: stream formats: words that name a field of the format (header fields, lengths,
#: payload parts) -- the refusal of a structural mutation (truncation, trailing bytes,
#: a lying header field) must name one; and the bytes of the fixed header (a lying
#: field past it edits payload values: exempt, as byte flips are)
_STREAM_FIELDS = {
    "huffman": ("magic", "header", "version", "dtype", "symbols", "distinct", "alphabet",
                "code length", "Kraft", "padding", "payload", "trailing", "followed by",
                "field widths"),
    "rans": ("magic", "header", "version", "dtype", "symbols", "distinct", "alphabet",
             "frequenc", "padding", "state", "truncated", "trailing", "followed by",
             "field widths"),
    "universal": ("magic", "header", "code id", "parameter", "values", "count", "payload",
                  "padding", "trailing", "truncated", "value "),
    "webgraph": ("magic", "header", "version", "origin", "parameters", "rows", "entries",
                 "pattern", "payload", "padding", "trailing", "truncated", "row "),
}
_STREAM_FIELDS["webgraph-mask"] = _STREAM_FIELDS["webgraph"]
_STREAM_HEADER = {"huffman": 32, "rans": 32, "universal": 12, "webgraph": 33,
                  "webgraph-mask": 33}


def _stream(kind):
    fields = _STREAM_FIELDS[kind]

    def check(msg, how):
        if how.startswith("lying-field@"):
            if int(how[len("lying-field@"):].split("w")[0]) >= _STREAM_HEADER[kind]:
                return None
        elif how not in ("truncate", "trailing-bytes"):
            return None          # bit/byte flips and random bytes: payload values
        return any(f in msg for f in fields)
    return check


def _relative(msg, how):
    """decode_relative's arguments: ``size``, ``index_bits``, ``diffs`` (a value edit
    inside diffs, or raw bytes, is exempt)."""
    return {"size": "size" in msg, "bits": "index_bits" in msg, "dtype": "diffs" in msg,
            "truncate": "diffs" in msg, "extend": "diffs" in msg}.get(how)


def _cabac(msg, how):
    """A lying declared shape names the shape; a truncated or extended payload, or a
    lying field in it, names the payload.  Flipped options are exempt (nothing in the
    payload records them), as are combined edits and bit/byte flips."""
    if "+" in how:
        return None
    if how.startswith("shape"):
        return "shape" in msg
    if how in ("truncate", "trailing-bytes") or how.startswith("lying-field"):
        return "payload" in msg
    return None


_BY_KIND = {"keras-legacy-h5": _keras, "keras-weights-h5": _keras, "keras-zip": _keras,
            "onnx": _onnx, "qdq-onnx": _onnx, "torch-state-dict": _torch,
            "relative-index": _relative, "cabac-levels": _cabac,
            **{k: _stream(k) for k in _STREAM_FIELDS}}


def names_target_of(kind, msg, how):
    """``names_target`` for any kind: True / False, or None when the mutation has no
    nameable item (byte flips, value edits, combined edits, dropped items)."""
    if kind in _BY_KIND:
        return _BY_KIND[kind](msg, how)
    return names_target(msg, how)


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
