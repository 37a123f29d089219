"""Mutation operators of the fuzz harness: HDF5 structure, JSON text, ONNX graphs,
state dicts and raw bytes.

Every operator takes a ``numpy.random.Generator`` and returns the name of what it
did (recorded with the case); the corpus is reproducible from ``(kind, seed, k)``.
"""

import json

import numpy as np

#: declared sizes well beyond any budget (2^40 elements and more)
HUGE = (1 << 40, (1 << 31) + 1, (1 << 63) - 1, 1 << 32, 10 ** 12)


def pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


# -- bytes ---------------------------------------------------------------------------
def flip_bits(rng, data, n=None):
    b = bytearray(data)
    if not b:
        return bytes(b), "flip-empty"
    for _ in range(n or int(rng.integers(1, 4))):
        i = int(rng.integers(len(b)))
        b[i] ^= 1 << int(rng.integers(8))
    return bytes(b), "bit-flip"


def flip_bytes(rng, data):
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(len(b)))
        b[i] ^= int(rng.integers(1, 256))
    return bytes(b), "byte-flip"


def truncate(rng, data):
    return data[:int(rng.integers(len(data)))], "truncate"


def extend(rng, data):
    return data + rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes(), \
        "trailing-bytes"


def random_bytes(rng, data):
    n = int(rng.integers(0, 2 * len(data) + 2))
    out = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    if rng.random() < 0.5 and len(data) >= 4:        # a valid magic, garbage after it
        out = data[:4] + out
    return out, "random-bytes"


def lying_field(rng, data, header=32):
    """Overwrite a 1/2/4/8-byte field of the header with an absurd or edge value."""
    b = bytearray(data)
    if len(b) < 2:
        return bytes(b), "lying-field-short"
    width = pick(rng, (1, 2, 4, 8))
    i = int(rng.integers(0, max(1, min(header, len(b)) - 1)))
    width = min(width, len(b) - i)
    value = pick(rng, (0, 1, (1 << (8 * width)) - 1, 1 << (8 * width - 1),
                       min(1 << 40, (1 << (8 * width)) - 1), int(rng.integers(0, 1 << 31))))
    value &= (1 << (8 * width)) - 1
    order = pick(rng, ("big", "little"))
    b[i:i + width] = value.to_bytes(width, order)
    return bytes(b), f"lying-field@{i}w{width}"


BYTE_OPS = (flip_bits, flip_bytes, truncate, extend, random_bytes, lying_field)


def mutate_bytes(rng, data):
    return pick(rng, BYTE_OPS)(rng, data)


def vlen_descriptors(data):
    """Offsets of the 4-byte length of every variable-length descriptor that points at a
    global heap object (length, collection address, object index), as h5py writes them
    for string attributes; ``(offset, length, object size)``."""
    out = []
    pos = data.find(b"GCOL")
    while pos != -1:
        csize = int.from_bytes(data[pos + 8:pos + 16], "little")
        p = 16
        while p + 16 <= csize and pos + p + 16 <= len(data):
            idx = int.from_bytes(data[pos + p:pos + p + 2], "little")
            osz = int.from_bytes(data[pos + p + 8:pos + p + 16], "little")
            if idx == 0:
                break
            pat = pos.to_bytes(8, "little") + idx.to_bytes(4, "little")
            i = data.find(pat)
            while i != -1:
                out.append((i - 4, int.from_bytes(data[i - 4:i], "little"), osz))
                i = data.find(pat, i + 1)
            p += 16 + ((osz + 7) & ~7)
        pos = data.find(b"GCOL", pos + 4)
    return out


def vlen_length(rng, data):
    """The libhdf5 allocation: a variable-length string descriptor lying about its length."""
    descs = vlen_descriptors(data)
    if not descs:
        return flip_bytes(rng, data)
    off, _, _ = pick(rng, descs)
    b = bytearray(data)
    b[off + int(rng.integers(0, 4))] ^= int(rng.integers(1, 256))
    return bytes(b), "vlen-length"


# -- JSON ----------------------------------------------------------------------------
def _nodes(value, path=()):
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nodes(v, path + (i,))


def _wrong_value(rng):
    return pick(rng, (None, -1, 0, 1 << 40, -(1 << 40), 2.5, float("nan"), "", "zzz", [], {},
                      [1 << 40, 1 << 40], True, "NonExistentLayer", [[[]]], {"a": 1}))


def mutate_json_value(rng, value):
    """A random edit deep inside a JSON value: replace, delete a key, or drop an item."""
    value = json.loads(json.dumps(value))
    nodes = list(_nodes(value))
    path, _ = pick(rng, nodes)
    if not path:
        return _wrong_value(rng), "json-root"
    parent = value
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    op = pick(rng, ("replace", "replace", "delete", "dup"))
    if op == "delete":
        del parent[key]
    elif op == "dup" and isinstance(parent, list):
        parent.insert(key, parent[key])
    else:
        parent[key] = _wrong_value(rng)
    return value, f"json-{op}:{'/'.join(map(str, path))[-40:]}"


def mutate_json_text(rng, text):
    if rng.random() < 0.3:
        b, how = pick(rng, (truncate, flip_bytes))(rng, text.encode("utf-8"))
        return b.decode("utf-8", "replace"), "json-text-" + how
    try:
        value = json.loads(text)
    except ValueError:
        return text[::-1], "json-reverse"
    value, how = mutate_json_value(rng, value)
    return json.dumps(value, allow_nan=True), how


# -- HDF5 ----------------------------------------------------------------------------
def _members(f, h5py):
    groups, datasets = [], []

    def visit(name, obj):
        (datasets if isinstance(obj, h5py.Dataset) else groups).append(name)
    f.visititems(visit)
    return groups, datasets


def _attr_holders(f, groups, datasets):
    out = []
    for name in [None] + groups + datasets:
        obj = f if name is None else f[name]
        out.extend((name, a) for a in obj.attrs)
    return out


def _recreate(parent, key, data=None, attrs=None, **kw):
    old_attrs = dict(parent[key].attrs) if attrs is None else attrs
    del parent[key]
    ds = parent.create_dataset(key, data=data, **kw)
    for k, v in old_attrs.items():
        ds.attrs[k] = v
    return ds


_RETYPES = (np.int8, np.uint8, np.int32, np.int64, np.uint64, np.float16, np.float32,
            np.float64, np.complex64, bool, "S4")


def mutate_h5(rng, f, h5py):
    """One structural edit of an open (r+) HDF5 file; returns its name."""
    groups, datasets = _members(f, h5py)
    holders = _attr_holders(f, groups, datasets)
    ops = ["attr"] * 4 + ["drop-attr"]
    if datasets:
        ops += ["drop-ds", "retype", "reshape", "truncate", "absurd", "nan", "values"] * 2
    if groups:
        ops += ["drop-group", "rename"]
    op = pick(rng, ops)
    if op in ("attr", "drop-attr") and not holders:
        op = "noop"
    if op == "noop":
        return "noop"
    if op == "attr":
        name, a = pick(rng, holders)
        obj = f if name is None else f[name]
        v = obj.attrs[a]
        text = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        if isinstance(text, str) and text[:1] in "{[" and rng.random() < 0.7:
            new, how = mutate_json_text(rng, text)
        elif "version" in a and rng.random() < 0.5:
            new, how = pick(rng, (99, 0, -1, "9.9", 1 << 40)), "unknown-version"
        elif a in ("encoding", "coding", "index_coding", "variant", "dtype", "format", "kind") \
                and rng.random() < 0.5:
            new, how = pick(rng, ("zstd", "", "quantized", "raw", "<f2", "|O", "deep_compressed",
                                  "huffman", "fig3")), "unknown-name"
        else:
            new = pick(rng, (1 << 40, -1, 0, 2.5, np.nan, np.inf, "zzz", "",
                             np.array([1 << 40, 3]), np.array([-1, 2, 3]),
                             np.zeros((2, 2)), np.array([], np.int64), b"\xff\xfe",
                             np.uint64((1 << 64) - 1), np.array(["a", "b"], "S")))
            how = "wrong-value"
        try:
            obj.attrs[a] = new
        except (TypeError, ValueError):
            obj.attrs[a] = str(new)
        return f"attr-{how}:{name}@{a}"
    if op == "drop-attr":
        name, a = pick(rng, holders)
        del (f if name is None else f[name]).attrs[a]
        return f"drop-attr:{name}@{a}"
    if op in ("drop-group", "rename"):
        g = pick(rng, groups)
        if op == "drop-group":
            del f[g]
        else:
            f.move(g, g + pick(rng, ("x", "0", "_1")))
        return f"{op}:{g}"
    d = pick(rng, datasets)
    parent, key = f[d].parent, d.rsplit("/", 1)[-1]
    ds = f[d]
    if ds.size is None or ds.size * ds.dtype.itemsize > 1 << 24:   # an earlier absurd edit
        del parent[key]
        return f"drop-ds:{d}"
    data = ds[()]
    arr = np.asarray(data)
    if op == "drop-ds":
        del parent[key]
    elif op == "retype":
        t = pick(rng, _RETYPES)
        try:
            new = arr.astype(t)
        except (TypeError, ValueError):
            new = np.zeros(arr.shape, t)
        _recreate(parent, key, new)
    elif op == "reshape":
        how = pick(rng, ("flat", "extra", "transpose", "scalar"))
        first = arr.reshape(-1)[:1].sum() if arr.size and arr.dtype.kind in "uif" else 0
        new = {"flat": arr.reshape(-1), "extra": arr[None], "transpose": arr.T,
               "scalar": np.asarray(first)}[how]
        if how == "transpose" and arr.ndim < 2:
            new = arr.reshape(-1, 1)
        _recreate(parent, key, new)
        op = f"reshape-{how}"
    elif op == "truncate":
        flat = arr.reshape(-1)
        _recreate(parent, key, flat[:int(rng.integers(0, max(1, flat.size)))])
    elif op == "absurd":
        n = pick(rng, HUGE)
        shape = pick(rng, ((n,), (1 << 20, 1 << 20), (n, 1)))
        dtype = arr.dtype if arr.dtype.kind in "uif" else np.float32
        kw = pick(rng, ({}, {"chunks": (1,) * len(shape), "compression": "gzip"},
                        {"chunks": tuple(min(s, 64) for s in shape), "compression": "gzip"}))
        attrs = dict(ds.attrs)
        del parent[key]
        try:
            new = parent.create_dataset(key, shape=shape, dtype=dtype, **kw)
        except (ValueError, OSError, TypeError):
            shape = (1 << 20, 1 << 20)
            new = parent.create_dataset(key, shape=shape, dtype=dtype, chunks=(1, 1024),
                                        compression="gzip")
        for k, v in attrs.items():
            new.attrs[k] = v
        op = f"absurd-{shape}"
    elif op == "nan":
        if arr.dtype.kind == "f" and arr.size:
            new = arr.copy().reshape(-1)
            new[rng.integers(0, new.size, int(rng.integers(1, 4)))] = pick(
                rng, (np.nan, np.inf, -np.inf))
            ds[...] = new.reshape(arr.shape)
        else:
            op = "nan-skip"
    else:   # values: random garbage of the same dtype and shape
        if arr.dtype.kind in "uif" and arr.size:
            raw = rng.integers(0, 256, arr.nbytes, dtype=np.uint8)
            ds[...] = raw.view(arr.dtype).reshape(arr.shape)
        else:
            op = "values-skip"
    return f"{op}:{d}"
