# syntax=docker/dockerfile:1
# One image per DAIG role, each with only its extra (pyproject.toml); the entrypoint is the
# `daig` command. Build from the repository root, one target per role:
#   docker build --target server       -t daig:0.1.0-server .        # migrate, scheduler
#   docker build --target server-keras -t daig:0.1.0-server-keras .  # api, aggregator
#   docker build --target provider     -t daig:0.1.0-provider .      # provider, signup
# server-keras adds TensorFlow to server for the API's .keras conversion and the aggregator's
# held-out evaluation; README "Installing one role" lists each image's size.

# --- build-base: a virtual environment and the project's metadata -----------------------------
FROM python:3.11-slim-bookworm AS build-base
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/daig
WORKDIR /src
COPY pyproject.toml README.md ./
RUN mkdir -p daig daig_cli services/api services/scheduler services/aggregator provider_agent requestor_gui

# --- source: the code, copied once for every role ---------------------------------------------
FROM build-base AS source
COPY daig ./daig
COPY daig_cli ./daig_cli
COPY services ./services
COPY provider_agent ./provider_agent
COPY requestor_gui ./requestor_gui

# --- deps-*: each role's dependencies (cached across code edits: only pyproject.toml counts) ---
FROM build-base AS deps-server
RUN /opt/daig/bin/pip install --no-cache-dir ".[server]" \
    && /opt/daig/bin/pip uninstall --yes daig

FROM build-base AS deps-server-keras
RUN /opt/daig/bin/pip install --no-cache-dir ".[server,keras]" \
    && /opt/daig/bin/pip uninstall --yes daig

FROM build-base AS deps-provider
RUN /opt/daig/bin/pip install --no-cache-dir ".[provider]" \
    && /opt/daig/bin/pip uninstall --yes daig

# --- build-*: DAIG itself on top of its role's dependencies -----------------------------------
FROM deps-server AS build-server
COPY --from=source /src /src
RUN /opt/daig/bin/pip install --no-cache-dir --no-deps . \
    && /opt/daig/bin/daig --help > /dev/null

FROM deps-server-keras AS build-server-keras
COPY --from=source /src /src
RUN /opt/daig/bin/pip install --no-cache-dir --no-deps . \
    && /opt/daig/bin/daig --help > /dev/null

FROM deps-provider AS build-provider
COPY --from=source /src /src
RUN /opt/daig/bin/pip install --no-cache-dir --no-deps . \
    && /opt/daig/bin/daig --help > /dev/null

# --- runtime: a slim base, an unprivileged user; each role's target adds its environment -----
FROM python:3.11-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="DAIG" \
      org.opencontainers.image.description="Distributed A.I. Grid"
RUN groupadd --system --gid 10001 daig \
    && useradd --system --uid 10001 --gid daig --create-home --home-dir /home/daig daig
ENV PATH=/opt/daig/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    XDG_CACHE_HOME=/home/daig/.cache \
    XDG_DATA_HOME=/home/daig/.local/share
WORKDIR /home/daig
# API (and its /metrics); scheduler and aggregator metrics (DAIG_METRICS_PORT)
EXPOSE 8000 9100

FROM runtime AS server
LABEL org.opencontainers.image.description="DAIG server roles: migrate, scheduler (no TensorFlow)"
COPY --from=build-server /opt/daig /opt/daig
USER 10001:10001
ENTRYPOINT ["daig"]
CMD ["--help"]

FROM runtime AS server-keras
LABEL org.opencontainers.image.description="DAIG server roles with Keras: api, aggregator"
COPY --from=build-server-keras /opt/daig /opt/daig
USER 10001:10001
ENTRYPOINT ["daig"]
CMD ["--help"]

# The last stage: what `docker build .` without --target gives.
FROM runtime AS provider
LABEL org.opencontainers.image.description="DAIG provider: volunteer this machine"
COPY --from=build-provider /opt/daig /opt/daig
USER 10001:10001
ENTRYPOINT ["daig"]
CMD ["--help"]
