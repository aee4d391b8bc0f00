#!/usr/bin/env bash
# Set everything up (see setup.sh) and run `daig demo`: the whole system training digits.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/daig demo "$@"
