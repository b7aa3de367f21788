#!/usr/bin/env bash
# Installs everything the tests need into .venv, then runs the whole suite and the notebooks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev
export HF_HUB_OFFLINE=1
.venv/bin/ruff check headroom_integrations tests
.venv/bin/mypy
exec .venv/bin/python -m pytest tests --nbmake notebooks "$@"
