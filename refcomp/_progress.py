"""Progress reporting shared by long-running work (the study, ``deep_compress``).

Drawn on stderr only when enabled (default: when stderr is a terminal).  When
the optional dependency ``tqdm`` is installed it draws the bar (rates, ETA,
notebook and resize handling); otherwise a built-in one-line bar does.  No
result depends on it: it only counts steps.
"""

import os
import sys
import time

__all__ = ["Progress", "BACKENDS"]

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
        Draw the bar; default: only when stderr is a terminal.
    min_interval : float
        Seconds between two redraws (the first and the last step are always
        drawn), so that updating once per step costs nothing measurable.
    backend : {"auto", "tqdm", "plain"}, optional
        "tqdm" (falls back to "plain" when tqdm is not installed), "plain"
        (built-in bar: ``label [#####   ] done/total  elapsed s``), or
        "auto" (default, or the REFCOMP_PROGRESS environment variable):
        tqdm when installed.

    Attributes
    ----------
    total, label, done, enabled : the step counts and settings.
    """

    def __init__(self, total, label, *, enabled=None, min_interval=0.1, backend=None):
        self.total, self.label, self.done = int(total), label, 0
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self.min_interval = min_interval
        self.t0 = time.perf_counter()
        self._drawn = None
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
        sys.stderr.write(f"\r{self.label:<22} [{bar:<30}] {self.done}/{self.total} "
                         f"{now - self.t0:6.1f}s")
        if last:
            sys.stderr.write("\n")
        sys.stderr.flush()
