"""Run one kind's fuzz corpus in this (child) process and write one JSON line per case.

Usage: ``python tests/fuzz/_run.py KIND N SEED OUT.jsonl [TIMEOUT_S]``

Per case: the mutated input is built (not measured), its SHA-256 taken, then the
reader runs with

* a hang guard: :func:`faulthandler.dump_traceback_later` exits the process with the
  stack if the case runs longer than TIMEOUT_S (it works even inside C code, where
  a Python signal handler would never run); the parent sees the case id of
  ``OUT.jsonl.current`` and reports the hang;
* the peak resident memory of the case: the kernel's high-water mark (VmHWM) is
  reset before the case (``/proc/self/clear_refs`` = 5) and read after it, so the
  figure is this case's peak minus the resident size when it started.

A Numba compilation that happens inside a case (a kernel the warm-up did not reach,
first met by an accepted mutation; with a cold cache it took 20 s under load) is
the JIT's cost, not the reader's: :class:`_JitClock` pauses the hang guard while it
runs, takes its time out of the case's seconds (recorded as ``jit_seconds``) and its
resident growth out of the peak, so the contract's bounds judge the same work on a
cold and a warm cache.

Outcome classes: ``refused`` (a RefcompError), ``ok-same`` (accepted, equal to the
unmutated input's result), ``ok-changed`` (accepted, different: a change the format
cannot detect), ``bad-exception`` (anything else), ``bad-result`` (accepted but invalid).
Crashes and hangs are seen by the parent (the process dies).
"""

import faulthandler
import hashlib
import json
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
from numba.core import event as numba_event

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import refcomp  # noqa: E402
from _kinds import case_path, get_kind  # noqa: E402
from _summary import names_target_of  # noqa: E402


def _status():
    d = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            d[k] = v
    return int(d["VmHWM"].split()[0]) * 1024, int(d["VmRSS"].split()[0]) * 1024


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _cap_address_space(extra=4 << 30):
    """A runaway allocation fails (MemoryError, reported) instead of exhausting the
    machine: address space capped at the current size + ``extra``."""
    import resource
    with open("/proc/self/status") as fh:
        vm = next(int(x.split()[1]) * 1024 for x in fh if x.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + extra, resource.RLIM_INFINITY))


class _JitClock(numba_event.Listener):
    """A Numba event listener (``numba:compile``) that takes compilations out of a
    measured case: see the module docstring.  ``start`` arms it for one case."""

    def __init__(self):
        self.start(None, 0)

    def start(self, timeout, rss0):
        self.timeout, self.base = timeout, rss0
        self.depth, self.seconds, self.seg_peak = 0, 0.0, 0
        self.t0 = self.rss_at_start = 0

    def on_start(self, event):
        if self.depth == 0:
            self.t0 = time.perf_counter()
            if self.timeout:
                faulthandler.cancel_dump_traceback_later()
            peak, self.rss_at_start = _status()
            self.seg_peak = max(self.seg_peak, peak - self.base)
        self.depth += 1

    def on_end(self, event):
        self.depth -= 1
        if self.depth == 0:
            self.seconds += time.perf_counter() - self.t0
            _, rss = _status()
            self.base += rss - self.rss_at_start      # the compiler's memory stays resident
            _reset_peak()
            if self.timeout:
                faulthandler.dump_traceback_later(self.timeout, exit=True)

    def peak(self):
        """This case's peak above its start, without the compilations."""
        peak, _ = _status()
        return max(self.seg_peak, peak - self.base)


def _names_item(msg, path):
    """The message names the offending input: for a file, its path; a decoder's
    message must say what is wrong in one non-empty line."""
    if "\n" in msg or not msg.strip():
        return False
    return path is None or str(path) in msg or Path(path).name in msg


def run(kind_name, n, seed, out, timeout):
    warnings.simplefilter("ignore")
    kind = get_kind(kind_name)
    exact_peak = _reset_peak()
    with tempfile.TemporaryDirectory(prefix="refcomp-fuzz-") as work:
        bases = kind.prepare(work)
        # warm up (imports, JIT compilation of every base's forward pass), unmeasured
        for k in range(8):
            inp, _ = kind.make(np.random.default_rng([seed, 10 ** 6 + k]), bases, work)
            try:
                kind.same(kind.read(inp, bases), inp)
            except Exception:  # noqa: BLE001 (judged in the measured loop, not here)
                pass
        _cap_address_space()
        clock = _JitClock()
        numba_event.register("numba:compile", clock)
        with open(out, "w") as fo:
            for k in range(n):
                rng = np.random.default_rng([seed, k])
                inp, how = kind.make(rng, bases, work)
                path = case_path(inp)
                size = path.stat().st_size if path is not None else \
                    (len(inp[0]) if isinstance(inp[0], bytes) else
                     int(getattr(inp[0], "nbytes", 0)) or 100_000)
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if path else None
                with open(out + ".current", "w") as fc:
                    fc.write(f"{k} {how}")
                faulthandler.dump_traceback_later(timeout, exit=True)
                _reset_peak()
                _, rss0 = _status()
                clock.start(timeout, rss0)
                t0 = time.perf_counter()
                rec = {"kind": kind_name, "case": k, "how": how, "size": size}
                try:
                    result = kind.read(inp, bases)
                except refcomp.RefcompError as exc:
                    msg = str(exc)
                    rec.update(outcome="refused", error=type(exc).__name__, message=msg[:300],
                               names_item=_names_item(msg, path))
                    rec["names_target"] = names_target_of(kind_name, msg, how)
                except BaseException as exc:  # noqa: B902 (the contract forbids these)
                    rec.update(outcome="bad-exception", error=type(exc).__name__,
                               message=str(exc)[:300],
                               trace=traceback.format_exc()[-1500:])
                else:
                    try:
                        rec["outcome"] = "ok-same" if kind.same(result, inp) else "ok-changed"
                    except BaseException as exc:  # noqa: B902
                        rec.update(outcome="bad-result", error=type(exc).__name__,
                                   message=str(exc)[:300],
                                   trace=traceback.format_exc()[-1500:])
                    del result
                rec["seconds"] = time.perf_counter() - t0 - clock.seconds
                faulthandler.cancel_dump_traceback_later()
                if clock.seconds:
                    rec["jit_seconds"] = clock.seconds
                rec["peak_bytes"] = max(0, clock.peak()) if exact_peak else None
                clock.start(None, 0)
                if path is not None:
                    rec["modified"] = hashlib.sha256(path.read_bytes()).hexdigest() != digest
                fo.write(json.dumps(rec) + "\n")
                fo.flush()
    os.unlink(out + ".current")


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "torch")
    run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
        float(sys.argv[5]) if len(sys.argv) > 5 else 20.0)
