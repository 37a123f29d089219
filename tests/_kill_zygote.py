"""Kill-test driver (tests/test_kill_writes.py): ``python _kill_zygote.py WRITERS N SEED DIR``.

One process imports refcomp and warms the writer up once; then, N times, it
forks a child that runs the writer in a loop (alternating two versions of the
output), sleeps a seeded random delay and SIGKILLs the child.  Forking an
interpreter that has already imported and compiled everything costs about a
millisecond, where a fresh ``python -m refcomp`` costs seconds, so each kill
gets its own child cheaply.  After each kill it classifies the destination:

- ``absent``: not written yet;
- ``complete``: byte for byte one of the two versions (a study folder: its
  completion marker matches and every file is one version's);
- ``mixed``: a study folder caught while its files were being moved in (no
  marker; each file complete, old or new) -- reported, expected ~never;
- anything else is a failure (partial or unknown bytes), printed as ``BAD``.

It prints one JSON line: counts per outcome, kills that found a temporary
file (the child was inside the write), the most temporaries ever present at
once, and the temporaries left after one final clean write (must be 0).
"""

import hashlib
import json
import os
import random
import shutil
import signal
import sys
import time

import numpy as np

import refcomp
from refcomp.cli import main as cli
from refcomp.data import default_data_dir
from refcomp.io._atomic import COMPLETE_MARKER, check_complete
from refcomp.io.hdf5 import read_arrays, write_arrays

DATA = str(default_data_dir())


def sha(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def temps(directory):
    out = []
    for root, dirs, files in os.walk(directory):
        out += [n for n in dirs + files if n.startswith(".refcomp-") and n.endswith(".tmp")]
    return out


def quiet(fn):
    """Run ``fn`` with stdout/stderr sent to /dev/null (the CLI prints tables)."""
    def run(*a):
        saved = os.dup(1), os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        try:
            return fn(*a)
        finally:
            sys.stdout.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in (*saved, null):
                os.close(fd)
    return run


def writers(work, name):
    """name -> (write(version, dest), kind): two versions 0 and 1 of each output."""
    model = refcomp.load(f"{DATA}/digits_cnn.h5")
    model1 = model.replace_weights({(p, n): w * np.float32(0.5) for p, layer in
                                    model.named_layers() for n, w in layer.weights.items()
                                    if isinstance(w, np.ndarray) and w.dtype == np.float32})
    rng = np.random.default_rng(5)
    arrays = [{f"a{i}": rng.standard_normal((256, 1024), dtype=np.float32) for i in range(4)}]
    arrays.append({k: v + np.float32(1) for k, v in arrays[0].items()})
    onnx = [f"{DATA}/golden/digits_cnn.onnx", f"{DATA}/golden/digits_gru.onnx"]
    mlp = f"{DATA}/digits_mlp.h5"
    split = __import__("refcomp.data", fromlist=["load_split"]).load_split
    xt, yt = split("test")
    xc, yc = split("calib")
    small = {}                      # small splits: a whole CLI run of about a second
    for key, x, y in (("test", xt, yt), ("calib", xc, yc)):
        small[key] = os.path.join(work, f"{key}_small.h5")
        write_arrays(small[key], {"x": x[:40], "y": y[:40]})
    inputs = [os.path.join(work, f"x{v}.h5") for v in (0, 1)]   # `refcomp run` inputs
    for v, path in enumerate(inputs):
        write_arrays(path, {"x": xt[64 * v:64 * v + 64]})
    study_small = ["study", mlp, "--methods", "uniform", "--experiments", "whole", "--no-plots",
                   "--quiet", "--force"]
    out = {
        "save": (lambda v, d: refcomp.save((model, model1)[v], d), "file"),
        "write_arrays": (lambda v, d: write_arrays(d, arrays[v]), "file"),
        "compress": (lambda v, d: cli(["compress", mlp, "-o", d, "--prune", ("0.5", "0.7")[v],
                                       "--quiet", "--force"]), "file"),
        "apply": (lambda v, d: cli(["apply", "uniform", mlp, "-o", d, "--param",
                                    f"bits={3 + v}", "--quiet", "--force"]), "file"),
        "convert": (lambda v, d: cli(["convert", onnx[v], d, "--force"]), "file"),
        "study": (lambda v, d: cli(study_small + ["--bits", ("2-3", "2-4")[v], "--out", d]),
                  "study"),
        # the curve / ONNX graph is the destination; the model each run also writes goes
        # to a sibling file in the same directory (its temporaries counted too)
        "slim_curve": (lambda v, d: cli(["slim", mlp, "-o", d + ".slim.h5", "--target",
                                         ("0.9", "0.8")[v], "--precision", "fast", "--quiet",
                                         "--curve", d, "--force"]), "file"),
        "quantize_onnx": (lambda v, d: cli(["quantize", mlp, "--int8", "--no-eval", "-o",
                                            d + ".q.h5", "--onnx", d, "--onnx-form",
                                            ("qlinear", "qdq")[v], "--force"]), "file"),
        # `refcomp study --compare` (one method, the small splits): the compare folder
        "compare": (lambda v, d: cli(["study", "--compare", mlp, "--methods",
                                      ("uniform", "magnitude")[v], "--data", small["test"],
                                      "--calib", small["calib"], "--no-plots", "--quiet",
                                      "--force", "--out", d]), "compare"),
        "validate_report": (lambda v, d: cli(["validate", "--framework", "onnxruntime",
                                              "--suite", "quantizers", "--examples", "1", "--seed",
                                              str(v), "--quiet", "--report", d, "--force"]),
                            "file"),
        "run_output": (lambda v, d: cli(["run", mlp, inputs[v], "-o", d, "--force"]), "file"),
    }
    if name.startswith("study_report"):
        from refcomp.study.report import write_report
        from refcomp.study.run import run_study
        x, y = __import__("refcomp.data", fromlist=["load_split"]).load_split("test")
        res = [run_study(refcomp.load(mlp), x[:300], y[:300], methods=("uniform",),
                         bits=b, experiments=("whole",), progress=False)
               for b in ((2, 3), (2, 3, 4))]
        plots = name == "study_report_plots"
        out[name] = (lambda v, d: write_report(res[v], d, plots=plots), "dir")
    return out


def check_readable(name, dest):
    """Read a complete destination back with the reader of its kind."""
    if name == "write_arrays":
        read_arrays(dest)
    elif name == "slim_curve":
        with open(dest, encoding="utf-8") as fh:
            assert fh.readline().startswith("step,layer,flops"), name
    elif name == "validate_report":
        with open(dest, encoding="utf-8") as fh:
            text = fh.read()
        assert text.startswith("# refcomp validate") and text.endswith("\n"), name
    elif name == "run_output":
        read_arrays(dest)["y"]
    elif name == "quantize_onnx":
        __import__("onnx").checker.check_model(__import__("onnx").load(dest))
    else:
        refcomp.load(dest)


def fingerprint(dest, kind):
    """A comparable digest of the destination, or None when it is absent."""
    if not os.path.exists(dest):
        return None
    if kind == "file":
        return sha(dest)
    names = sorted(n for n in os.listdir(dest) if not n.startswith("."))
    if kind == "study":         # runs.json holds the elapsed time: compare runs.csv
        names = ["runs.csv"]
    elif kind == "compare":     # compare.json holds the runs' seconds: compare.csv
        names = ["compare.csv"]
    return tuple((n, sha(os.path.join(dest, n))) for n in names if
                 os.path.exists(os.path.join(dest, n)))


def classify(dest, kind, refs):
    fp = fingerprint(dest, kind)
    if fp is None:
        return "absent" if kind == "file" or not os.path.exists(dest) else "BAD empty folder"
    if kind == "file":
        return "complete" if fp in refs else "BAD bytes"
    marked = check_complete(dest)
    if marked is not None:
        listed = set(marked)
        visible = {n for n in os.listdir(dest) if not n.startswith(".")}
        if listed == visible and fp in refs:
            return "complete"
        return "BAD marker"
    if not os.path.exists(os.path.join(dest, COMPLETE_MARKER)):
        allowed = {pair for r in refs for pair in r}
        if all(pair in allowed for pair in fp):
            return "mixed"
    return "BAD unmarked"


def main():
    """``WRITER[=N][,WRITER[=N]...] N SEED DIR``: one JSON line per writer, each in
    its own sub-directory of DIR."""
    plan, n, seed, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    for item in plan.split(","):
        name, _, count = item.partition("=")
        run(name, int(count or n), seed, os.path.join(work, name))
        sys.stdout.flush()


def run(name, n, seed, work):
    os.makedirs(work, exist_ok=True)
    write, kind = writers(work, name)[name]
    write = quiet(write)
    dest = os.path.join(work, "out.h5" if kind == "file" else "out")
    refs = []
    for v in (0, 1):                 # warm up (compile, caches) and record both versions
        write(v, dest)
        refs.append(fingerprint(dest, kind))
        if kind == "file":
            check_readable(name, dest)
    # Time a forked child's first run (slower than the parent's: copy-on-
    # write faults) and when its first temporary file appears: the CLI
    # commands compute before they write.  Half the kills land anywhere in
    # the run, half in its writing phase.
    from refcomp.io import _atomic
    temp_name = _atomic.temp_name
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        def noted(directory):
            os.write(w, b"%f\n" % (time.perf_counter() - t0))
            _atomic.temp_name = temp_name
            return temp_name(directory)
        _atomic.temp_name = noted
        try:
            write(0, dest)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    t_write = time.perf_counter() - t0
    os.close(w)
    stamps = os.read(r, 100).split()
    os.close(r)
    t_enter = min(float(stamps[0]), t_write) if stamps else 0.0
    assert refs[0] != refs[1], name
    shutil.rmtree(dest) if os.path.isdir(dest) else os.unlink(dest)
    rng = random.Random(seed)
    counts, during, most = {}, 0, 0
    for k in range(n):
        if kind != "file" and k % 2 == 0 and os.path.exists(dest):
            shutil.rmtree(dest)      # half the kills write a new folder, half an existing one
        first = rng.randrange(2)
        pid = os.fork()
        if pid == 0:                 # child: write for ever, alternating the versions
            try:
                v = first
                while True:
                    write(v, dest)
                    v ^= 1
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.0, 1.3 * t_write) if k % 2 else
                   rng.uniform(0.9 * t_enter, 1.1 * t_write))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        left = temps(work)
        during += bool(left)
        most = max(most, len(left))
        outcome = classify(dest, kind, refs)
        if outcome == "mixed" and os.environ.get("KILL_DEBUG"):
            print("mixed:", sorted(os.listdir(dest)), fingerprint(dest, kind), file=sys.stderr)
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome == "complete" and kind == "file" and k % 10 == 0:
            check_readable(name, dest)
    write(0, dest)                   # the next write removes what the killed writers left
    final = classify(dest, kind, refs)
    print(json.dumps({"writer": name, "kills": n, "outcomes": counts, "during_write": during,
                      "most_temps": most, "temps_after_next_write": len(temps(work)),
                      "final": final, "seconds_per_run": round(t_write, 4),
                      "write_starts_at": round(t_enter, 4)}))


if __name__ == "__main__":
    main()
