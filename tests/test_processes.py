"""Processes (issue 22): stale temporary files, staged output folders, fork safety,
the main-guard check, workers that end with their parent, and SIGINT/SIGTERM of the
CLI (exit 130/143, one line, no traceback, no orphan, no partial output)."""

import ast
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from refcomp import ParameterError
from refcomp.io._atomic import (COMPLETE_MARKER, atomic_directory, atomic_path, check_complete,
                                remove_stale_temps, temp_name)
from refcomp.study.executors import _guarded

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINUX = sys.platform.startswith("linux")


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.update(extra)
    return env


def _temps(d):
    return sorted(n for n in os.listdir(d) if n.startswith(".refcomp-") and n.endswith(".tmp"))


# -- stale temporary files ------------------------------------------------------------------

def _fake_temp(directory, pid, start, host=None, boot=None):
    mine = os.path.basename(temp_name(directory))[len(".refcomp-"):-len(".tmp")].split("-")
    host = mine[0] if host is None else host
    boot = mine[1] if boot is None else boot
    p = os.path.join(directory, f".refcomp-{host}-{boot}-{pid}-{start}-0badcafe.tmp")
    with open(p, "wb") as fh:
        fh.write(b"x" * 100)
    return os.path.basename(p)


def _start(pid):
    raw = open(f"/proc/{pid}/stat", "rb").read()
    return int(raw[raw.rfind(b")") + 2:].split()[19])


@pytest.mark.skipif(not LINUX, reason="owner check by /proc start time")
def test_stale_temps_removed_on_next_write_only_when_owner_gone(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    parent = os.getppid()
    gone = _fake_temp(tmp_path, dead.pid, 12345)                  # no such process
    reused = _fake_temp(tmp_path, parent, _start(parent) + 1)     # pid reused since
    alive = _fake_temp(tmp_path, parent, _start(parent))          # owner still running
    other_host = _fake_temp(tmp_path, dead.pid, 1, host="00000000")
    other_boot = _fake_temp(tmp_path, dead.pid, 1, boot="00000000")
    legacy = ".refcomp-k2j4h5.tmp"                                # mkstemp name, no owner
    (tmp_path / legacy).write_bytes(b"")
    assert os.path.exists(tmp_path / gone) and os.path.exists(tmp_path / reused)
    with atomic_path(tmp_path / "out.bin") as tmp:
        with open(tmp, "wb") as fh:
            fh.write(b"data")
    left = _temps(tmp_path)
    assert gone not in left and reused not in left
    assert set(left) == {alive, other_host, other_boot, legacy}
    assert (tmp_path / "out.bin").read_bytes() == b"data"
    assert remove_stale_temps(tmp_path) == []


def test_temp_name_encodes_this_process(tmp_path):
    name = os.path.basename(temp_name(tmp_path))
    host, boot, pid, start, rand = name[len(".refcomp-"):-len(".tmp")].split("-")
    assert int(pid) == os.getpid() and len(host) == 8 and len(rand) == 8
    if LINUX:
        assert int(start) == _start(os.getpid())
        assert boot == open("/proc/sys/kernel/random/boot_id").read().replace("-", "")[:8]
    assert not os.path.exists(os.path.join(tmp_path, name))


# -- staged output folders -----------------------------------------------------------------

def _write(stage, files):
    for n, data in files.items():
        with open(os.path.join(stage, n), "wb") as fh:
            fh.write(data)


def test_atomic_directory_new_existing_and_failure(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    with atomic_directory(out) as stage:
        assert not out.exists() and os.path.dirname(stage) == str(out.parent)
        _write(stage, {"runs.csv": b"1", "x.png": b"2"})
    assert sorted(os.listdir(out)) == [COMPLETE_MARKER, "runs.csv", "x.png"]
    assert check_complete(out) == ["runs.csv", "x.png"]
    (out / "notes.txt").write_bytes(b"mine")         # a user's entries are kept
    (out / "sub").mkdir()
    (out / "sub" / "f").write_bytes(b"deep")
    os.symlink("notes.txt", out / "link")
    with atomic_directory(out) as stage:
        assert os.path.dirname(stage) == str(out.parent)
        _write(stage, {"runs.csv": b"3"})
    assert check_complete(out) == ["runs.csv"]
    assert (out / "runs.csv").read_bytes() == b"3" and (out / "notes.txt").read_bytes() == b"mine"
    assert (out / "sub" / "f").read_bytes() == b"deep" and os.readlink(out / "link") == "notes.txt"
    assert (out / "x.png").read_bytes() == b"2"      # not rewritten: kept
    assert _temps(out.parent) == [] and _temps(out) == []
    before = _tree_hash(out)
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as stage:
            _write(stage, {"runs.csv": b"4"})
            raise RuntimeError("boom")
    assert _tree_hash(out) == before
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "new") as stage:
            raise RuntimeError("boom")
    assert not (tmp_path / "new").exists() and _temps(tmp_path) == []
    (out / "runs.csv").write_bytes(b"tampered")
    assert check_complete(out) is None


def test_atomic_directory_holding_the_working_directory_is_not_swapped(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "runs.csv").write_bytes(b"old")
    monkeypatch.chdir(out)
    with atomic_directory(".") as stage:
        _write(stage, {"runs.csv": b"new"})
    assert os.path.samefile(os.getcwd(), out) and (out / "runs.csv").read_bytes() == b"new"
    assert check_complete(out) == ["runs.csv"] and _temps(tmp_path) == []


def test_atomic_directory_without_exchange_moves_files_in(tmp_path, monkeypatch):
    import refcomp.io._atomic as atomic
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "runs.csv").write_bytes(b"old")
    (out / "notes.txt").write_bytes(b"mine")
    with atomic_directory(out) as stage:
        _write(stage, {"runs.csv": b"new", "t.md": b"t"})
    assert check_complete(out) == ["runs.csv", "t.md"]
    assert sorted(os.listdir(out)) == [COMPLETE_MARKER, "notes.txt", "runs.csv", "t.md"]
    assert (out / "runs.csv").read_bytes() == b"new" and _temps(tmp_path) == []
    with pytest.raises(ParameterError, match="not a directory"):
        with atomic_directory(out / "runs.csv"):
            pass


# -- fork safety ----------------------------------------------------------------------------

FORK_SCRIPT = textwrap.dedent("""
    import multiprocessing as mp, sys
    import numpy as np
    import refcomp
    from refcomp.data import default_data_dir, load_split
    from refcomp.quantize import kmeans
    from refcomp.sparse import CSR
    from refcomp.sparse.ops import spmm

    model = refcomp.load(default_data_dir() / "digits_cnn.h5")
    x, _ = load_split("test")
    x = x[:128]
    w = np.random.default_rng(0).standard_normal(300_000).astype(np.float32)
    W = np.random.default_rng(1).standard_normal((512, 512)).astype(np.float32)
    A = CSR.from_dense(W * (np.abs(W) > 1.0))
    X = np.random.default_rng(2).standard_normal((512, 64)).astype(np.float32)

    def work(i):
        if i == 0:
            return model(x, precision="fast")
        if i == 1:
            return model(x)
        if i == 2:
            return kmeans(w, bits=4).dequantize()
        return spmm(A, X)

    ref = [work(i) for i in range(4)]         # the parent uses the threading layer first
    import numba
    with mp.get_context("fork").Pool(2) as pool:
        got = pool.map_async(work, range(4)).get(timeout=240)
    same = all(np.array_equal(a.view(np.uint8), b.view(np.uint8)) and a.dtype == b.dtype
               for a, b in zip(ref, got))
    print(numba.threading_layer(), same)
""")


@pytest.mark.skipif(not LINUX, reason="fork start method")
def test_fork_pool_after_forward_kmeans_and_sparse_product(tmp_path):
    env = _env()
    env.pop("NUMBA_THREADING_LAYER", None)
    p = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True,
                       env=env, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "unsafe" not in p.stderr
    layer, same = p.stdout.split()
    assert layer in ("tbb", "workqueue") and same == "True", p.stdout


def test_user_threading_layer_is_kept():
    code = ("import numba; numba.config.THREADING_LAYER = 'workqueue'; import refcomp, "
            "numba.core.config as c; print(c.THREADING_LAYER)")
    env = _env()
    env.pop("NUMBA_THREADING_LAYER", None)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.stdout.strip() == "workqueue", p.stderr
    code = "import refcomp, numba.core.config as c; print(c.THREADING_LAYER)"
    for chosen, seen in (("omp", "omp"), (None, "forksafe")):
        env = _env()
        env.pop("NUMBA_THREADING_LAYER", None)
        if chosen:
            env["NUMBA_THREADING_LAYER"] = chosen
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=120)
        assert p.stdout.strip() == seen, p.stderr


# -- main guard -----------------------------------------------------------------------------

def test_guard_detection_on_source():
    src = textwrap.dedent("""
        import refcomp
        run()                                  # 3
        if __name__ == "__main__":
            run()                              # 5
        def f():
            run()                              # 7
        if "__main__" == __name__ and True:
            run()                              # 9
        if x:
            run()                              # 11
    """)
    tree = ast.parse(src)
    assert [ln for ln in (3, 5, 7, 9, 11) if _guarded(tree, ln)] == [5, 9]


UNGUARDED = textwrap.dedent("""
    import refcomp
    from refcomp.data import default_data_dir, load_split
    from refcomp.study import run_study
    m = refcomp.load(default_data_dir() / "digits_mlp.h5")
    x, y = load_split("test")
    run_study(m, x[:50], y[:50], methods=("uniform",), bits=(2,), experiments=("whole",),
              workers=2, progress=False)
""")


@pytest.mark.parametrize("how", ["script", "module"])
def test_workers_from_unguarded_script_fail_fast(tmp_path, how):
    script = tmp_path / "noguard.py"
    script.write_text(UNGUARDED)
    cmd = [sys.executable, str(script)] if how == "script" else [sys.executable, "-m", "noguard"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300,
                       cwd=tmp_path)
    assert p.returncode == 1 and time.monotonic() - t0 < 120
    assert "ParameterError" in p.stderr and 'if __name__ == "__main__":' in p.stderr
    assert "noguard.py" in p.stderr and "line 7" in p.stderr


# -- signals and orphans --------------------------------------------------------------------

def _children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                raw = open(f"/proc/{d}/stat", "rb").read()
            except OSError:
                continue
            if int(raw[raw.rfind(b")") + 2:].split()[1]) == pid:
                out.append(int(d))
    return out


def _descendants(pid):
    todo, out = [pid], []
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def _alive(pid):
    try:
        raw = open(f"/proc/{pid}/stat", "rb").read()
    except OSError:
        return False
    return raw[raw.rfind(b")") + 2:].split()[0] != b"Z"


def _catches(pid, sig):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except OSError:
        pass
    return False


def _wait(cond, timeout, what):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _tree_hash(path):
    if os.path.islink(path):
        return ("link", os.readlink(path))
    if not os.path.exists(path):
        return None
    if os.path.isfile(path):
        return hashlib.sha256(open(path, "rb").read()).hexdigest()
    return {n: _tree_hash(os.path.join(path, n)) for n in sorted(os.listdir(path))}


def _big_model(path):
    import refcomp
    from refcomp.model import Layer, Model
    rng = np.random.default_rng(0)
    n = 40_000
    m = Model([Layer("dense", weights={"W": rng.standard_normal((n, 64), dtype=np.float32),
                                       "b": np.zeros(n, np.float32)}),
               Layer("activation", attrs={"function": "relu"}),
               Layer("dense", weights={"W": rng.standard_normal((10, n), dtype=np.float32),
                                       "b": np.zeros(10, np.float32)})], input_shape=(64,))
    refcomp.save(m, path)


def _interrupt(cmd, sig, *, workers, cwd, group=False, after=1.0):
    """Start ``cmd``, signal it once its work runs, return (rc, stderr, seconds, pids)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=_env(), cwd=cwd, start_new_session=True)
    try:
        _wait(lambda: _catches(p.pid, signal.SIGTERM) or p.poll() is not None, 180,
              "the command to start")
        if workers:
            _wait(lambda: len(_children(p.pid)) >= workers + 1 or p.poll() is not None, 180,
                  "the worker processes")
        time.sleep(after)
        tree = _descendants(p.pid)
        if workers:
            # The study opens one worker pool per phase: one second on, a loaded
            # host may be between two pools. Signal only while workers run.
            def running():
                nonlocal tree
                tree = _descendants(p.pid)
                return len(tree) >= workers or p.poll() is not None
            _wait(running, 180, "the worker processes of a later phase")
        assert p.poll() is None, "finished before the signal: " + p.stderr.read()[-2000:]
        t0 = time.monotonic()
        if group:
            os.killpg(p.pid, sig)           # Ctrl-C in a terminal: the whole group
        else:
            os.kill(p.pid, sig)             # the parent alone
        _, err = p.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    _wait(lambda: not any(_alive(q) for q in tree), 30, f"descendants {tree} to end")
    return p.returncode, err, took, tree


CASES = [("study", signal.SIGINT, False), ("study", signal.SIGTERM, False),
         ("study2", signal.SIGINT, False), ("study2", signal.SIGTERM, False),
         ("study2", signal.SIGINT, True), ("compress", signal.SIGINT, False),
         ("compress", signal.SIGTERM, False)]


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="/proc process tree")
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("what,sig,group", CASES,
                         ids=[f"{w}-{s.name}{'-group' if g else ''}" for w, s, g in CASES])
def test_cli_signal_exits_cleanly(what, sig, group, existing, tmp_path):
    workers = 2 if what == "study2" else 0
    if what == "compress":
        _big_model(tmp_path / "big.h5")
        out = tmp_path / "c.h5"
        cmd = [sys.executable, "-m", "refcomp", "compress", str(tmp_path / "big.h5"), "-o",
               str(out), "--prune", "0.5", "--quiet", "--force"]
        if existing:
            out.write_bytes(b"previous version")
    else:
        out = tmp_path / "out"
        cmd = [sys.executable, "-m", "refcomp", "study", "--out", str(out), "--quiet",
               "--force", "--workers", str(max(workers, 1))]
        if existing:
            out.mkdir()
            for n in ("runs.csv", "runs.json", "tables.md", "notes.txt"):
                (out / n).write_text(f"previous {n}\n")
    before = _tree_hash(out)
    rc, err, took, tree = _interrupt(cmd, sig, workers=workers, cwd=tmp_path, group=group)
    assert rc == (130 if sig == signal.SIGINT else 143), err
    assert err.strip() in ("refcomp: interrupted", "refcomp: terminated"), err
    assert "Traceback" not in err and took < 30
    assert len(tree) >= workers
    assert _tree_hash(out) == before                  # absent, or as it was
    for d in (tmp_path, out if out.is_dir() else tmp_path):
        assert _temps(d) == []


DASK_SCRIPT = textwrap.dedent("""
    import sys, time
    from distributed import LocalCluster
    if __name__ == "__main__":
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            print(cluster.scheduler_address, flush=True)
            sys.stdin.read()
""")


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="/proc process tree")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_signal_with_dask_scheduler(sig, tmp_path):
    pytest.importorskip("distributed", reason="Dask 'distributed' not installed: skipped")
    (tmp_path / "cluster.py").write_text(DASK_SCRIPT)
    cluster = subprocess.Popen([sys.executable, str(tmp_path / "cluster.py")], text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=_env(), cwd=tmp_path)
    try:
        address = cluster.stdout.readline().strip()
        assert address.startswith("tcp://"), address
        for existing in (False, True):
            out = tmp_path / f"out{int(existing)}"
            if existing:
                out.mkdir()
                (out / "runs.csv").write_text("previous\n")
            before = _tree_hash(out)
            cmd = [sys.executable, "-m", "refcomp", "study", "--out", str(out), "--quiet",
                   "--force", "--scheduler", address]
            rc, err, took, _ = _interrupt(cmd, sig, workers=0, cwd=tmp_path, after=4.0)
            assert rc == (130 if sig == signal.SIGINT else 143), err
            assert err.strip() in ("refcomp: interrupted", "refcomp: terminated"), err
            assert "Traceback" not in err and took < 30
            assert _tree_hash(out) == before and _temps(tmp_path) == []
            from distributed import Client
            with Client(address, timeout=60) as c:    # the study's tasks are dropped
                _wait(lambda: not any(c.processing().values()), 120, "idle Dask workers")
    finally:
        cluster.stdin.close()
        cluster.wait(60)


UNTIL_KILLED = textwrap.dedent("""
    import refcomp
    from refcomp.data import default_data_dir, load_split
    from refcomp.study import run_study
    if __name__ == "__main__":
        m = refcomp.load(default_data_dir() / "digits_cnn.h5")
        x, y = load_split("test")
        while True:        # the study takes seconds: run it again until the test kills us
            run_study(m, x, y, workers=2, progress=False)
""")


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="/proc process tree")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_end_with_their_parent(sig, tmp_path):
    """A script running run_study(workers=2), killed outright: no worker outlives it (nor
    the resource tracker)."""
    (tmp_path / "study.py").write_text(UNTIL_KILLED)
    p = subprocess.Popen([sys.executable, str(tmp_path / "study.py")], env=_env(), cwd=tmp_path,
                         stderr=subprocess.PIPE, text=True)
    try:
        # Each experiment starts its own pool: take the tree the moment it is complete.
        tree = []

        def complete():
            tree[:] = _descendants(p.pid)
            return len(tree) >= 3 or p.poll() is not None
        _wait(complete, 180, "workers")
        assert p.poll() is None, p.stderr.read()[-2000:]
        os.kill(p.pid, sig)
        p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert len(tree) >= 3                 # two workers and the resource tracker
    _wait(lambda: not any(_alive(q) for q in tree), 15, f"workers {tree} to end")


def test_a_swallowed_signal_stops_the_next_commit_and_wait(tmp_path):
    # A SIGINT whose exception Python dropped (raised inside a weakref callback) must
    # still keep files from being published and stop the task loop.
    from refcomp import _interrupt
    from refcomp.io import write_arrays
    from refcomp.study.executors import run_tasks
    dest = tmp_path / "a.h5"
    _interrupt.set_pending(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        write_arrays(dest, {"x": np.zeros(3, np.float32)})
    assert not dest.exists() and os.listdir(tmp_path) == []
    _interrupt.set_pending(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run_tasks(lambda state, it: it, None, [1, 2], progress=False)
    _interrupt.check()                    # delivered once, then forgotten


SIGNAL_IN_CALLBACK = textwrap.dedent("""
    import ctypes, importlib, os, sys, time
    from refcomp import cli
    # A callback from C whose code lives in llvmlite's (or Numba's) folder, as LLVM's
    # object-cache callbacks and Numba's _numba_unpickle do; it signals itself.
    package = importlib.import_module(sys.argv[1])
    where = package.__file__ if sys.argv[2] == "itself" else \
        os.path.join(os.path.dirname(package.__file__), sys.argv[2])
    src = (
        "import os, signal\\n"
        "def compare(a, b):\\n"
        "    os.kill(os.getpid(), signal.SIGINT)\\n"
        "    x, y = a[0], b[0]\\n"
        "    return (x > y) - (x < y)\\n")
    ns = {}
    exec(compile(src, where, "exec"), ns)
    CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                           ctypes.POINTER(ctypes.c_int))
    values = (ctypes.c_int * 40)(*range(40, 0, -1))
    sorted_ok, got = None, None
    with cli._signals():
        try:
            ctypes.CDLL(None).qsort(values, 40, ctypes.sizeof(ctypes.c_int),
                                    CMP(ns["compare"]))
            sorted_ok = list(values) == list(range(1, 41))
            t0 = time.monotonic()
            while time.monotonic() - t0 < 20:
                time.sleep(0.001)
        except cli._Interrupted:
            got = "interrupted"
    print(sorted_ok, got)
""")


@pytest.mark.skipif(not LINUX, reason="libc qsort")
@pytest.mark.parametrize("package,where", [("llvmlite", "binding/refcomp_test_cb.py"),
                                           ("numba.core.serialize", "itself")])
def test_a_signal_inside_a_numba_callback_is_delivered_after_it(package, where, tmp_path):
    # Raised inside a ctypes callback, the exception cannot cross LLVM's C frames:
    # ctypes drops it and LLVM went on with an unset buffer (SIGSEGV of an interrupted
    # study during a Numba compilation), or compiled code returned "a result with an
    # exception set". The CLI sends it again once out of Numba and llvmlite.
    (tmp_path / "s.py").write_text(SIGNAL_IN_CALLBACK)
    res = subprocess.run([sys.executable, str(tmp_path / "s.py"), package, where], env=_env(),
                         cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["True", "interrupted"], res.stdout + res.stderr[-2000:]
    assert "Exception ignored" not in res.stderr, res.stderr[-2000:]


def test_only_callback_code_defers_a_signal():
    # Numba's compiler is plain Python: a signal raised there unwinds it like any
    # other code, so it must not wait for a whole (cold-cache) compilation.
    import llvmlite
    import numba.core.compiler
    import numba.core.serialize
    from refcomp import cli

    def frame_in(filename):
        ns = {}
        exec(compile("import sys\nf = sys._getframe()", filename, "exec"), ns)
        return ns["f"]
    llvm_cb = os.path.join(os.path.dirname(llvmlite.__file__), "binding", "executionengine.py")
    assert cli._in_foreign_callback(frame_in(llvm_cb))
    assert cli._in_foreign_callback(frame_in(numba.core.serialize.__file__))
    assert not cli._in_foreign_callback(frame_in(numba.core.compiler.__file__))
    assert not cli._in_foreign_callback(frame_in(__file__))


LOCK_HELD_BY_DEAD_CHILD = textwrap.dedent("""
    import os, signal
    import numpy as np
    import refcomp
    from numba.np.ufunc import parallel
    from refcomp.quantize import uniform
    w = np.linspace(-1, 1, 64, dtype=np.float32)
    uniform(w, 3)                              # the threading layer is up
    pid = os.fork()
    if pid == 0:                               # a child killed inside Numba's locked init
        parallel._backend_init_process_lock.acquire()
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(pid, 0)
    uniform(w, 3)                              # small: runs serial, sets the thread count
    print("ok")
""")


@pytest.mark.skipif(not LINUX, reason="fork")
def test_a_child_killed_holding_numbas_process_lock_does_not_hang_the_parent(tmp_path):
    # numba.set_num_threads takes a multiprocessing semaphore shared with forked
    # children; refcomp sets the count through the lock-free setter once the layer is up.
    (tmp_path / "s.py").write_text(LOCK_HELD_BY_DEAD_CHILD)
    res = subprocess.run([sys.executable, str(tmp_path / "s.py")], env=_env(), cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
