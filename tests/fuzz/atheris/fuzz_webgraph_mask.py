"""atheris entry point: the webgraph-mask reader (see tests/fuzz/README.md).

    python tests/fuzz/atheris/fuzz_webgraph_mask.py [CORPUS_DIR] [-atheris_runs=N] [-max_len=N]
"""
from _common import main

if __name__ == "__main__":
    main("webgraph-mask")
