"""atheris entry point: the keras-legacy-h5 reader (see tests/fuzz/README.md).

    python tests/fuzz/atheris/fuzz_keras_legacy_h5.py [CORPUS_DIR] [-atheris_runs=N] [-max_len=N]
"""
from _common import main

if __name__ == "__main__":
    main("keras-legacy-h5")
