#!/usr/bin/env bash
# ruff (lint and format check), the layer check and mypy on the shipped packages.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q -p no:cacheprovider tests/unit/test_layers.py  # the layers
.venv/bin/mypy daig daig_cli provider_agent services/api/daig_api services/scheduler/daig_scheduler services/aggregator/daig_aggregator
