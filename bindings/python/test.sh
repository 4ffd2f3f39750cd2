#!/usr/bin/env bash
# Builds the wheel with maturin in a fresh virtual environment, installs it and runs the
# binding tests (tests/test_satclip.py). Without PyPI it says SKIPPED and succeeds; a failed
# build or test fails.
set -euo pipefail
cd "$(dirname "$0")"
venv=target/venv
rm -rf "$venv" target/wheels
python3 -m venv "$venv"
if ! "$venv/bin/pip" install --quiet maturin==1.16.0 numpy==2.4.6 pandas==3.1.1 huggingface_hub==2.4.0; then
  echo "SKIPPED: Python bindings: maturin, numpy, pandas and huggingface_hub could not be installed from PyPI"
  # Under CI (SATCLIP_REQUIRE_DATA), a skip is a failure.
  [ "${SATCLIP_REQUIRE_DATA:-0}" = "0" ] && exit 0
  exit 1
fi
"$venv/bin/maturin" build --release --quiet --out target/wheels
"$venv/bin/pip" install --quiet --no-deps target/wheels/satclip_rs-*.whl
"$venv/bin/python" -m unittest discover -s tests -v
