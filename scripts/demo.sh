#!/usr/bin/env bash
# The main job on the embedded default (SQLite + Chroma + local ONNX model; no server, no key).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh cli
exec .venv/bin/headroom-memory demo "$@"
