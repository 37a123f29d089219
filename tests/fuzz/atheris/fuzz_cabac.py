"""atheris entry point: the cabac-levels reader (see tests/fuzz/README.md).

    python tests/fuzz/atheris/fuzz_cabac.py [CORPUS_DIR] [-atheris_runs=N] [-max_len=N]
"""
from _common import main

if __name__ == "__main__":
    main("cabac-levels")
