"""atheris entry point: the keras-weights-h5 reader (see tests/fuzz/README.md).

    python tests/fuzz/atheris/fuzz_keras_weights_h5.py [CORPUS_DIR] [-atheris_runs=N] [-max_len=N]
"""
from _common import main

if __name__ == "__main__":
    main("keras-weights-h5")
