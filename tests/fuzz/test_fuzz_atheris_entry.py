"""The atheris entry points (``atheris/fuzz_<kind>.py``) cannot rot: each one's target
function runs, without atheris, on every seed of its corpus (all accepted: they are
the valid inputs) and on a few byte mutations of each (accepted or a RefcompError),
in-process, each call bounded by a hang guard.  Only ``atheris.Setup``/``Fuzz`` and
the coverage instrumentation (``atheris.instrument_imports``) are not exercised.
"""

import ast
import faulthandler
import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from _kinds import KIND_NAMES
from _mutate import mutate_bytes

ATHERIS = Path(__file__).resolve().parent / "atheris"
sys.path.insert(0, str(ATHERIS))
import _common  # noqa: E402

#: seconds one call of a target may take before the process exits with its stack
HANG_S = 120
#: kinds without an entry point: the reader takes Python objects, not bytes
NO_ENTRY = {"torch-state-dict"}


def _entry_kind(path):
    """The kind an entry point passes to ``main`` under ``if __name__ == "__main__"``."""
    tree = ast.parse(path.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", None) == "main"]
    assert len(calls) == 1 and len(calls[0].args) == 1, path
    return ast.literal_eval(calls[0].args[0])


ENTRIES = sorted(ATHERIS.glob("fuzz_*.py"))


def test_every_byte_reader_has_an_entry_point():
    kinds = [_entry_kind(p) for p in ENTRIES]
    assert len(kinds) == len(set(kinds))
    assert set(kinds) == set(KIND_NAMES) - NO_ENTRY


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda p: p.stem)
def test_entry_point_target_runs_on_its_seeds(entry, tmp_path):
    kind = _entry_kind(entry)
    seeds, target = _common.setup(kind, tmp_path)
    assert seeds, f"{entry.name}: no seed inputs"
    digests = [hashlib.sha256(s).hexdigest() for s in seeds]
    assert len(set(digests)) == len(digests), f"{entry.name}: duplicate seeds"
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        for i, data in enumerate(seeds):
            assert target(data) is True, f"{entry.name}: seed {i} refused"
            for k in range(3):
                mutated, _ = mutate_bytes(np.random.default_rng([i, k]), data)
                assert target(mutated) in (True, False)
        assert target(b"") in (True, False)
    finally:
        faulthandler.cancel_dump_traceback_later()
