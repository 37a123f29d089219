"""The Python code blocks of README.md and docs/*.md run as written.

Each file's ```python blocks run in order, in one fresh interpreter per file,
with the repository root as working directory (the blocks name shipped files
of data/) and files they write redirected to a temporary copy of nothing but
their own outputs: the root is read-only in spirit, so every block runs in a
temporary directory that links data/ from the repository.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks(path):
    return BLOCK.findall(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("doc", [d for d in DOCS if _blocks(d)], ids=lambda p: p.name)
def test_python_blocks_run(doc, tmp_path):
    pytest.importorskip("h5py")
    (tmp_path / "data").symlink_to(ROOT / "data", target_is_directory=True)
    code = "\n\n".join(_blocks(doc))
    script = tmp_path / "blocks.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [
        p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{doc.name}:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
