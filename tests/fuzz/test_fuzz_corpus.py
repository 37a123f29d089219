"""The fixed fuzz corpus: every input kind mutated CASES times, each kind in one child
process (``_run.py``), at most two children at a time.

The contract, per case (``_summary.violations``): a RefcompError whose one-line message
names the input file (decoders: a non-empty one-line message), or an accepted result
that is valid (and equal to the unmutated one when the mutation was benign); never
another exception, a crash or a hang (the child exits on a case running longer than
HANG_S, and the case is named); never a peak resident memory over 64 MB + 10 x the
input size; never a modified input file.  The corpus is derandomized: case k of a
kind is drawn from ``numpy.random.default_rng([SEED, k])``.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import _summary
from _kinds import KIND_NAMES

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CASES = int(os.environ.get("REFCOMP_FUZZ_CASES", "500"))
SEED = int(os.environ.get("REFCOMP_FUZZ_SEED", "1"))
HANG_S = 20.0
PARALLEL = 2


def _selected(request):
    """The kinds whose test this session runs (``-k`` deselects the others' children)."""
    kinds = {item.callspec.params["kind"] for item in request.session.items
             if getattr(item, "originalname", None) == "test_fuzz_corpus"
             and hasattr(item, "callspec")}
    return [k for k in KIND_NAMES if k in kinds] or list(KIND_NAMES)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, request):
    out_dir = tmp_path_factory.mktemp("fuzz")
    env = dict(os.environ, KERAS_BACKEND="torch",
               PYTHONPATH=os.pathsep.join([str(ROOT)] + os.environ.get("PYTHONPATH", "")
                                          .split(os.pathsep)))
    pending, running, done = _selected(request), {}, {}
    while pending or running:
        while pending and len(running) < PARALLEL:
            kind = pending.pop(0)
            out = out_dir / f"{kind}.jsonl"
            log = open(out_dir / f"{kind}.log", "w")
            proc = subprocess.Popen([sys.executable, str(HERE / "_run.py"), kind, str(CASES),
                                     str(SEED), str(out), str(HANG_S)],
                                    stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            running[kind] = (proc, out, log, time.monotonic())
        for kind, (proc, out, log, t0) in list(running.items()):
            if proc.poll() is not None or time.monotonic() - t0 > 900:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                log.close()
                current = Path(str(out) + ".current")
                done[kind] = {"rc": proc.returncode,
                              "records": _summary.load(out) if out.exists() else [],
                              "current": current.read_text() if current.exists() else None,
                              "log": (out_dir / f"{kind}.log").read_text()[-3000:],
                              "seconds": time.monotonic() - t0}
                del running[kind]
        time.sleep(0.05)
    summary = {k: dict(_summary.table(v["records"]).get(k, {}), seconds=round(v["seconds"], 1))
               for k, v in done.items()}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return done


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_fuzz_corpus(corpus, kind):
    res = corpus[kind]
    assert res["rc"] == 0, (f"{kind}: the child died (rc {res['rc']}) during case "
                            f"{res['current']!r} (a crash, a hang over {HANG_S} s, or a "
                            f"harness error):\n{res['log']}")
    recs = res["records"]
    assert len(recs) == CASES
    bad = _summary.violations(recs, time_limit=HANG_S)
    assert not bad, f"{len(bad)} contract violations:\n" + "\n".join(bad[:10])
    outcomes = {r["outcome"] for r in recs}
    assert "refused" in outcomes                 # the mutations do reach the checks
