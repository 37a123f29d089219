import sys
from pathlib import Path

# the harness modules (_kinds, _mutate, _summary) import each other by plain name
sys.path.insert(0, str(Path(__file__).resolve().parent))
collect_ignore = ["atheris", "_run.py"]
