"""atheris entry point: the refcomp-model reader (see tests/fuzz/README.md).

    python tests/fuzz/atheris/fuzz_refcomp_model.py [CORPUS_DIR] [-atheris_runs=N] [-max_len=N]
"""
from _common import main

if __name__ == "__main__":
    main("refcomp-model")
