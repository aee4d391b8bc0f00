#!/usr/bin/env bash
# ruff (lint and format check) and mypy on the shared package and the services.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy daig daig_cli provider_agent services/api/daig_api services/scheduler/daig_scheduler services/aggregator/daig_aggregator
