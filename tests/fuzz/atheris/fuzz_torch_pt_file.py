"""atheris entry point: the torch-pt-file reader (see tests/fuzz/README.md).

    python tests/fuzz/atheris/fuzz_torch_pt_file.py [CORPUS_DIR] [-atheris_runs=N] [-max_len=N]
"""
from _common import main

if __name__ == "__main__":
    main("torch-pt-file")
