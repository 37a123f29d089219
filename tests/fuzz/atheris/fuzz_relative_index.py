"""atheris entry point: the relative-index reader (see tests/fuzz/README.md).

    python tests/fuzz/atheris/fuzz_relative_index.py [CORPUS_DIR] [-atheris_runs=N] [-max_len=N]
"""
from _common import main

if __name__ == "__main__":
    main("relative-index")
