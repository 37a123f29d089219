"""atheris entry point: the deep-compressed reader (see tests/fuzz/README.md).

    python tests/fuzz/atheris/fuzz_deep_compressed.py [CORPUS_DIR] [-atheris_runs=N] [-max_len=N]
"""
from _common import main

if __name__ == "__main__":
    main("deep-compressed")
