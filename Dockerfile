# syntax=docker/dockerfile:1
# One image for every DAIG role: `docker run IMAGE api|scheduler|aggregator|migrate|provider|...`
# (the entrypoint is the `daig` command). Build from the repository root:
#   docker build -t daig:0.1.0 .

# --- build: install DAIG and its dependencies into a virtual environment ----------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/daig
WORKDIR /src
# Dependencies change less often than the code: this layer is cached across code edits.
COPY pyproject.toml README.md ./
RUN mkdir -p daig daig_cli services/api services/scheduler services/aggregator provider_agent requestor_gui \
    && /opt/daig/bin/pip install --no-cache-dir . \
    && /opt/daig/bin/pip uninstall --yes daig
COPY daig ./daig
COPY daig_cli ./daig_cli
COPY services ./services
COPY provider_agent ./provider_agent
COPY requestor_gui ./requestor_gui
RUN /opt/daig/bin/pip install --no-cache-dir --no-deps . \
    && /opt/daig/bin/daig --help > /dev/null

# --- runtime: the virtual environment on a slim base, run as an unprivileged user ------------
FROM python:3.11-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="DAIG" \
      org.opencontainers.image.description="Distributed A.I. Grid: API, scheduler, aggregator and provider"
RUN groupadd --system --gid 10001 daig \
    && useradd --system --uid 10001 --gid daig --create-home --home-dir /home/daig daig
COPY --from=build /opt/daig /opt/daig
ENV PATH=/opt/daig/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    XDG_CACHE_HOME=/home/daig/.cache \
    XDG_DATA_HOME=/home/daig/.local/share
USER 10001:10001
WORKDIR /home/daig
# API (and its /metrics); scheduler and aggregator metrics (DAIG_METRICS_PORT)
EXPOSE 8000 9100
ENTRYPOINT ["daig"]
CMD ["--help"]
