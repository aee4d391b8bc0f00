#!/usr/bin/env bash
# Prepare this checkout to run DAIG: a Python 3.11 virtualenv with DAIG installed, and
# PostgreSQL and RabbitMQ running on localhost (started if stopped). Sourced by demo.sh
# and test.sh; safe to run again (it only reinstalls when pyproject.toml changed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\033[1m[daig setup]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[daig setup]\033[0m %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

# --- Python -------------------------------------------------------------------------------
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || die "DAIG needs Python 3.11: sudo apt-get install python3.11 python3.11-venv (Debian 12's python3 is 3.11)"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "Python's venv module is missing: sudo apt-get install python3-venv"

if [ ! -x .venv/bin/python ]; then
  say "creating the virtualenv .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.daig-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  say "installing DAIG and its dependencies into .venv (TensorFlow is large: the first time takes a few minutes)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  echo "$wanted" > "$stamp"
fi

# --- PostgreSQL ---------------------------------------------------------------------------
pg_up() { .venv/bin/python - <<'PY' 2>/dev/null
import sys
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from daig.settings import Settings
url = make_url(Settings().database_url).set(database="postgres")
try:
    with create_engine(url).connect() as c:
        c.execute(text("SELECT 1"))
except Exception:
    sys.exit(1)
PY
}
if ! pg_up; then
  if ls /etc/postgresql >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null; then
    say "starting PostgreSQL"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
    for _ in $(seq 30); do pg_up && break; sleep 1; done
  fi
  pg_up || die "PostgreSQL is not reachable at DAIG_DATABASE_URL (default postgres@127.0.0.1:5432).
Install it (sudo apt-get install postgresql), start it, and allow the 'postgres' user over TCP
(trust or a password in DAIG_DATABASE_URL=postgresql+psycopg2://user:pass@host:5432/daig)."
fi

# --- RabbitMQ -----------------------------------------------------------------------------
mq_up() { .venv/bin/python -c '
from daig.broker import connect
from daig.settings import Settings
connect(Settings().amqp_url, heartbeat=0).close()' 2>/dev/null; }
if ! mq_up; then
  if command -v rabbitmq-server >/dev/null; then
    say "starting RabbitMQ"
    as_root rabbitmq-server -detached || true
    for _ in $(seq 60); do mq_up && break; sleep 1; done
  fi
  mq_up || die "RabbitMQ is not reachable at DAIG_AMQP_URL (default guest@127.0.0.1:5672).
Install it (sudo apt-get install rabbitmq-server) and start it (sudo rabbitmq-server -detached)."
fi
say "ready: .venv, PostgreSQL and RabbitMQ"
