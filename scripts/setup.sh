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
  .venv/bin/python -m pip install --quiet -e ".[all,dev]"  # every role (README: one role's extra)
  echo "$wanted" > "$stamp"
fi

# --- Qt's X11 libraries (daig gui) -----------------------------------------------------------
# PyQt5's wheel brings Qt but not the xcb libraries its X11 plugin links to, and a fresh Debian
# desktop lacks some (libxcb-icccm4, libxcb-keysyms1, libxcb-xinerama0...): `daig gui` would
# abort in Qt. The GUI's own check (requestor_gui/system_libs.py) names the missing packages.
qt_missing=$(.venv/bin/python -m requestor_gui.system_libs 2>/dev/null | tr '\n' ' ' || true)
if [ -n "${qt_missing// /}" ]; then
  if command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; }; then
    say "installing the X11 libraries daig gui needs: $qt_missing"
    # shellcheck disable=SC2086  # one word per package
    { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends $qt_missing; } \
      || say "could not install them; for daig gui run: sudo apt-get install $qt_missing"
  else
    say "daig gui needs these system packages (the tests run Qt offscreen and do not): sudo apt-get install $qt_missing"
  fi
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

# --- RabbitMQ management API --------------------------------------------------------------
# The API creates each provider's own broker user (consume tasks, publish results, nothing
# else) through RabbitMQ's management HTTP API, so it must be enabled and reachable.
mgmt_check() { .venv/bin/python - <<'PY' 2>/dev/null
import sys
import httpx
from daig.settings import Settings
settings = Settings()
try:
    response = httpx.get(
        f"{settings.management_url}/api/whoami", auth=settings.management_credentials, timeout=3
    )
except httpx.HTTPError as exc:
    print(f"unreachable: {exc}")
    sys.exit(1)
tags = response.json().get("tags", []) if response.status_code == 200 else []
tags = tags.split(",") if isinstance(tags, str) else tags
if "administrator" not in tags:
    print(f"HTTP {response.status_code}: the admin credentials are refused or not an administrator's")
    sys.exit(2)
PY
}
mgmt_rc=0; mgmt_problem=$(mgmt_check) || mgmt_rc=$?
if [ "$mgmt_rc" = 1 ] && command -v rabbitmq-plugins >/dev/null; then
  wait_seconds=10  # enabled already: perhaps still starting
  if ! as_root rabbitmq-plugins is_enabled rabbitmq_management >/dev/null 2>&1; then
    say "enabling RabbitMQ's management plugin (the API creates providers' broker users through it)"
    as_root rabbitmq-plugins enable rabbitmq_management >/dev/null && wait_seconds=60 || wait_seconds=0
  fi
  for _ in $(seq "$wait_seconds"); do
    mgmt_rc=0; mgmt_problem=$(mgmt_check) || mgmt_rc=$?
    [ "$mgmt_rc" = 1 ] || break
    sleep 1
  done
fi
mgmt_url=$(.venv/bin/python -c 'from daig.settings import Settings; print(Settings().management_url)')
[ "$mgmt_rc" = 0 ] || die "RabbitMQ's management API at $mgmt_url is not usable ($mgmt_problem).
DAIG's API creates each provider's broker user through it. Enable it on the RabbitMQ host, as
root: sudo rabbitmq-plugins enable rabbitmq_management; make it reachable from the API (or set
DAIG_RABBITMQ_MANAGEMENT_URL); and set DAIG_RABBITMQ_ADMIN_USER and DAIG_RABBITMQ_ADMIN_PASSWORD
to an administrator's credentials if they differ from DAIG_AMQP_URL's."
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then  # a desktop session: the app's launcher
  launcher=$(.venv/bin/python -c 'from requestor_gui.desktop_entry import install_app_entry; print(install_app_entry())') \
    && say "installed the DAIG launcher: $launcher"
fi
say "ready: .venv, PostgreSQL, RabbitMQ and its management API"
