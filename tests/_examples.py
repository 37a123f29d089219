"""Run a script of examples/ as a user would: a subprocess from the repository root,
with this checkout first on PYTHONPATH."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_example(script, *args, timeout=300):
    """The finished process (stdout, stderr as text) of ``python examples/<script> args``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
