"""The same mutations driven by hypothesis, in-process (the contract without the memory
measurement, which needs a child process: test_fuzz_corpus.py).  Derandomized under the
"ci" profile of tests/conftest.py; HYPOTHESIS_PROFILE=dev explores new cases."""

import hashlib
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refcomp
from _kinds import KIND_NAMES, case_path, get_kind
from _summary import names_target_of

os.environ.setdefault("KERAS_BACKEND", "torch")
_PREPARED = {}


def _prepared(name, tmp_root):
    if name not in _PREPARED:
        kind = get_kind(name)
        work = tmp_root / name
        work.mkdir()
        _PREPARED[name] = (kind, kind.prepare(work), work)
    return _PREPARED[name]


@pytest.fixture(scope="module")
def tmp_root(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-hyp")


@pytest.mark.parametrize("name", KIND_NAMES)
def test_mutations_end_in_refcomp_error_or_valid_result(tmp_root, name):
    kind, bases, work = _prepared(name, tmp_root)

    @settings(max_examples=30, deadline=None, database=None)
    @given(st.integers(0, 2 ** 63 - 1))
    def run(seed):
        inp, how = kind.make(np.random.default_rng(seed), bases, work)
        path = case_path(inp)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path else None
        try:
            result = kind.read(inp, bases)
        except refcomp.RefcompError as exc:
            msg = str(exc)
            assert msg.strip() and "\n" not in msg, (how, msg)
            if path is not None:
                assert path.name in msg, (how, msg)
            # the mutated item (dataset, attribute, layer, node, key, field) is named
            assert names_target_of(name, msg, how) is not False, (how, msg)
        else:
            kind.same(result, inp)           # raises if the accepted result is invalid
        if path is not None:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, how
    run()
