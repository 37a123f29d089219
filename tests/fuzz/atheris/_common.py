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


def _seed_inputs(kind_name, bases):
    """Bytes of the valid inputs of ``kind_name`` (the pytest corpus's bases)."""
    out = []
    if kind_name == "cabac-levels":     # first byte: the base whose shape and options apply
        return [bytes([i]) + b["data"] for i, b in enumerate(bases)]
    for b in bases if isinstance(bases, list) else [bases]:
        for key in ("path", "legacy", "weights", "zip", "pt"):
            p = b.get(key)
            if isinstance(p, (str, os.PathLike)) and kind_name in _SEED_KEYS.get(key, ()):
                out.append(Path(p).read_bytes())
        if "data" in b:
            out.append(b["data"])
        if "bytes" in b and kind_name == "onnx":
            out.append(b["bytes"])
    return out


_SEED_KEYS = {"path": ("refcomp-model", "plain-arrays", "deep-compressed", "onnx",
                       "qdq-onnx"),
              "legacy": ("keras-legacy-h5",), "weights": ("keras-weights-h5",),
              "zip": ("keras-zip",), "pt": ("torch-pt-file",)}


def main(kind_name):
    import atheris                                  # only when run, never under pytest
    with atheris.instrument_imports():
        import refcomp
        from _kinds import get_kind
    kind = get_kind(kind_name)
    work = Path(tempfile.mkdtemp(prefix=f"refcomp-atheris-{kind_name}-"))
    bases = kind.prepare(work)
    args = [a for a in sys.argv[1:]]
    corpus = next((a for a in args if not a.startswith("-")), None)
    if corpus is None:
        corpus = str(work / "corpus")
        args.append(corpus)
    Path(corpus).mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(_seed_inputs(kind_name, bases)):
        (Path(corpus) / f"seed{i}").write_bytes(data)
    case = work / ("case" + EXT.get(kind_name, ".bin"))
    if kind_name == "keras-weights-h5":          # the config beside the weights
        (work / "case.config.json").write_text(bases[0]["config"])
    base0 = bases[0] if isinstance(bases, list) else bases

    def target(data):
        if kind_name == "relative-index":
            inp = (__import__("numpy").frombuffer(data, dtype="uint8").copy(),
                   len(data) * 4, base0["bits"], base0)
        elif kind_name == "cabac-levels":
            if not data:
                return
            b = bases[data[0] % len(bases)]
            inp = (bytes(data[1:]), b["levels"].shape, b["opts"], b)
        elif kind.files:
            case.write_bytes(data)
            inp = (case, base0)
        else:
            inp = (bytes(data), base0)
        try:
            kind.read(inp, bases)
        except refcomp.RefcompError:
            pass

    atheris.Setup([sys.argv[0]] + args, target)
    atheris.Fuzz()
