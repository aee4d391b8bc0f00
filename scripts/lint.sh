#!/usr/bin/env bash
# ruff (lint and format check) and mypy on the shared package and the services.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy daig services provider_agent
