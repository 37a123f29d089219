"""Shared driver of the atheris entry points (long coverage-guided runs outside CI).

Each ``fuzz_<reader>.py`` names one reader; this module turns atheris's bytes into
that reader's input (a file for the file readers, the stream itself for the
decoders), seeds the corpus directory with the valid inputs of the pytest corpus
(``tests/fuzz/_kinds.py``), and treats a :class:`refcomp.RefcompError` as the
expected outcome: any other exception is a finding (atheris stops and writes the
crashing input).  atheris is imported only here, when a script is run: it is not a
dependency of refcomp or of its test suite.
"""

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1]), str(HERE.parents[2])]
os.environ.setdefault("KERAS_BACKEND", "torch")

EXT = {"refcomp-model": ".h5", "plain-arrays": ".h5", "keras-legacy-h5": ".h5",
       "keras-weights-h5": ".weights.h5", "keras-zip": ".keras", "onnx": ".onnx",
       "torch-pt-file": ".pt", "deep-compressed": ".h5", "qdq-onnx": ".onnx"}


#: Kinds whose reader needs a base's side information (shape and options, size and
#: index width, the Keras config beside the weights, the PyTorch module spec): an
#: input's first byte picks the base (modulo their number), the rest is the payload.
SELECTOR = ("cabac-levels", "relative-index", "keras-weights-h5", "torch-pt-file")


def _dedup(seq):
    return list(dict.fromkeys(seq))                  # first occurrences, in order


def _seed_inputs(kind_name, bases):
    """Bytes of the valid inputs of ``kind_name`` (the pytest corpus's bases), each
    once (the ONNX bases hold the same file as a path and as bytes)."""
    bases = bases if isinstance(bases, list) else [bases]
    if kind_name == "cabac-levels":
        return _dedup(bytes([i]) + b["data"] for i, b in enumerate(bases))
    if kind_name == "relative-index":
        return _dedup(bytes([i]) + b["diffs"].tobytes() for i, b in enumerate(bases))
    if kind_name in ("keras-weights-h5", "torch-pt-file"):
        key = "weights" if kind_name == "keras-weights-h5" else "pt"
        return _dedup(bytes([i]) + Path(b[key]).read_bytes() for i, b in enumerate(bases))
    out = []
    for b in bases:
        for key in ("path", "legacy", "zip"):
            p = b.get(key)
            if isinstance(p, (str, os.PathLike)) and kind_name in _SEED_KEYS.get(key, ()):
                out.append(Path(p).read_bytes())
        if "data" in b:
            out.append(b["data"])
        if "bytes" in b and kind_name in ("onnx", "qdq-onnx"):
            out.append(b["bytes"])
    return _dedup(out)


_SEED_KEYS = {"path": ("refcomp-model", "plain-arrays", "deep-compressed", "onnx",
                       "qdq-onnx"),
              "legacy": ("keras-legacy-h5",), "zip": ("keras-zip",)}


def setup(kind_name, work):
    """``(seeds, target)`` of one entry point, without atheris: the seed inputs'
    bytes, and ``target(data)``, which runs the reader on ``data`` and returns True
    (accepted) or False (a RefcompError); any other exception propagates."""
    import numpy as np
    import refcomp
    from _kinds import get_kind
    kind = get_kind(kind_name)
    work = Path(work)
    bases = kind.prepare(work)
    case = work / ("case" + EXT.get(kind_name, ".bin"))
    blist = bases if isinstance(bases, list) else [bases]

    def target(data):
        data = bytes(data)
        if kind_name in SELECTOR:
            if not data:
                return False
            b, data = blist[data[0] % len(blist)], data[1:]
        else:
            b = blist[0]
        if kind_name == "relative-index":
            inp = (np.frombuffer(data, dtype=b["diffs"].dtype).copy(), b["size"], b["bits"], b)
        elif kind_name == "cabac-levels":
            inp = (data, b["levels"].shape, b["opts"], b)
        elif kind.files:
            if kind_name == "keras-weights-h5":         # the config beside the weights
                (work / "case.config.json").write_text(b["config"])
            case.write_bytes(data)
            inp = (case, b)
        else:
            inp = (data, b)
        try:
            kind.read(inp, bases)
        except refcomp.RefcompError:
            return False
        return True

    return _seed_inputs(kind_name, bases), target


def main(kind_name):
    import atheris                                  # only when run, never under pytest
    with atheris.instrument_imports():
        import refcomp  # noqa: F401 (instrumented for coverage)
        import _kinds  # noqa: F401
    work = Path(tempfile.mkdtemp(prefix=f"refcomp-atheris-{kind_name}-"))
    seeds, target = setup(kind_name, work)
    args = [a for a in sys.argv[1:]]
    corpus = next((a for a in args if not a.startswith("-")), None)
    if corpus is None:
        corpus = str(work / "corpus")
        args.append(corpus)
    Path(corpus).mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(seeds):
        (Path(corpus) / f"seed{i}").write_bytes(data)
    atheris.Setup([sys.argv[0]] + args, target)
    atheris.Fuzz()
