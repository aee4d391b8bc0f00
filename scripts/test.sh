#!/usr/bin/env bash
# Set everything up (see setup.sh) and run the whole test suite: unit, integration (real
# Postgres, RabbitMQ and an S3 server) and end-to-end (real processes). Extra arguments go to
# pytest, e.g. `scripts/test.sh tests/unit -q` or `scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
command -v rabbitmqctl >/dev/null || { echo "tests need rabbitmqctl (from rabbitmq-server) to create per-test vhosts" >&2; exit 1; }
exec .venv/bin/python -m pytest "$@"
