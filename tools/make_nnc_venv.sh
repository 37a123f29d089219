#!/usr/bin/env bash
# Build the NNCodec 2.1.3 reference environment used by the interoperability
# tests (tests/_nnc_bridge.py runs inside it as a subprocess).
#
# usage: tools/make_nnc_venv.sh DEST_DIR [PYTHON]
#
# nncodec pins numpy<2 and compiles a C++ (pybind11) extension, so it lives in
# its own venv.  Only the extension and numpy are needed: nncodec is installed
# with --no-deps (its torch/torchvision/opencv requirements are not used; the
# bridge imports nncodec.extensions.deepCABAC directly, never nncodec.nnc,
# which imports a CUDA-only torchvision).  Prints the venv's python on success.
set -euo pipefail
dest="${1:?usage: make_nnc_venv.sh DEST_DIR [PYTHON]}"
py="${2:-python3}"
"$py" -m venv "$dest"
"$dest/bin/python" -m pip install -q "numpy<2" "pybind11>=2.6.2" setuptools wheel
if [ -n "${NNCODEC_SDIST:-}" ]; then
    src="$NNCODEC_SDIST"
else
    src="nncodec==2.1.3"
fi
"$dest/bin/python" -m pip install -q --no-deps --no-build-isolation "$src"
"$dest/bin/python" -c "from nncodec.extensions import deepCABAC; deepCABAC.Encoder()"
echo "$dest/bin/python"
