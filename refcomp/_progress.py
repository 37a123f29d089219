"""Progress reporting shared by long-running work (the study, ``deep_compress``,
``refcomp apply``...).

On stderr, in one of three ways:

- on a terminal, a live bar with the time left: drawn by the optional
  dependency ``tqdm`` when installed (rates, ETA, resize handling),
  otherwise by a built-in one-line bar;
- off a terminal (CI logs, ``nohup``, notebooks' captured stderr), one line
  at most every :data:`LINE_INTERVAL` seconds: ``label: done/total, elapsed,
  about N s left``, so that long work never looks hung, and nothing at all
  for work shorter than that;
- nothing, when disabled (``--quiet``).

No result depends on it: it only counts steps.
"""

import os
import sys
import time

__all__ = ["Progress", "BACKENDS", "LINE_INTERVAL"]

#: Seconds between two progress lines off a terminal.
LINE_INTERVAL = 15.0

#: "auto": tqdm when importable, else "plain".  The environment variable
#: REFCOMP_PROGRESS (auto/tqdm/plain) sets the default.
BACKENDS = ("auto", "tqdm", "plain")


def _tqdm():
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """A progress bar on stderr, silent unless enabled.

    Parameters
    ----------
    total : int
        Number of steps.
    label : str
        Text before the bar.
    enabled : bool, optional
        True: the live bar; False: nothing; None (default): the live bar on
        a terminal, periodic lines (every ``line_interval`` seconds) off one.
    min_interval : float
        Seconds between two redraws (the first and the last step are always
        drawn), so that updating once per step costs nothing measurable.
    backend : {"auto", "tqdm", "plain"}, optional
        "tqdm" (falls back to "plain" when tqdm is not installed), "plain"
        (built-in bar: ``label [#####   ] done/total  elapsed s``), or
        "auto" (default, or the REFCOMP_PROGRESS environment variable):
        tqdm when installed.
    line_interval : float, optional
        Seconds between progress lines off a terminal (default
        :data:`LINE_INTERVAL`).

    Attributes
    ----------
    total, label, done, enabled : the step counts and settings.
    """

    def __init__(self, total, label, *, enabled=None, min_interval=0.1, backend=None,
                 line_interval=None):
        self.total, self.label, self.done = int(total), label, 0
        tty = _isatty()
        self.enabled = tty if enabled is None else bool(enabled)
        # Off a terminal and not forced on: periodic plain lines instead of a bar.
        self.lines = enabled is None and not tty
        self.line_interval = LINE_INTERVAL if line_interval is None else float(line_interval)
        self.min_interval = min_interval
        self.t0 = time.perf_counter()
        self._drawn = None
        self._line = self.t0
        self._bar = None
        backend = backend or os.environ.get("REFCOMP_PROGRESS", "auto")
        if self.enabled and backend != "plain":
            tqdm = _tqdm()
            if tqdm is not None:
                self._bar = tqdm(total=self.total, desc=label, file=sys.stderr,
                                 mininterval=min_interval, leave=True)

    def update(self, n=1):
        """Advance by ``n`` steps and redraw if enabled and due.

        Parameters
        ----------
        n : int
            Steps completed since the last call.
        """
        self.done += n
        if self.lines:
            self._maybe_line()
            return
        if not self.enabled:
            return
        last = self.done >= self.total
        if self._bar is not None:
            self._bar.update(n)
            if last:
                self._bar.close()
            return
        now = time.perf_counter()
        if not last and self._drawn is not None and now - self._drawn < self.min_interval:
            return
        self._drawn = now
        frac = self.done / max(1, self.total)
        bar = "#" * int(30 * frac)
        left = "" if last else _left(now - self.t0, self.done, self.total)
        sys.stderr.write(f"\r{self.label:<22} [{bar:<30}] {self.done}/{self.total} "
                         f"{now - self.t0:6.1f}s{left}")
        if last:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def _maybe_line(self):
        now = time.perf_counter()
        if now - self._line < self.line_interval:
            return
        self._line = now
        sys.stderr.write(f"{self.label}: {self.done}/{self.total}, {now - self.t0:.0f} s"
                         f"{_left(now - self.t0, self.done, self.total, sep=', ')}\n")
        sys.stderr.flush()


def _isatty():
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):      # replaced or closed stderr
        return False


def _left(elapsed, done, total, sep="  "):
    """``"  ~12 s left"``: the remaining steps at the mean rate so far."""
    if not done or done >= total:
        return ""
    return f"{sep}about {elapsed / done * (total - done):.0f} s left"
