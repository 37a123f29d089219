"""atheris entry point: the qdq-onnx reader (see tests/fuzz/README.md).

    python tests/fuzz/atheris/fuzz_qdq_onnx.py [CORPUS_DIR] [-atheris_runs=N] [-max_len=N]
"""
from _common import main

if __name__ == "__main__":
    main("qdq-onnx")
