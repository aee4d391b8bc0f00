"""deploy/docker-compose.yml against the compose specification, and what it promises operators.

The schema is the Compose Specification's own JSON schema (tests/ops/compose-spec.json, as
vendored by check-jsonschema; Apache-2.0, see LICENSE.compose-spec): no Docker engine runs
here, so this is how far "docker compose config" can be checked without one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.ops.compose import (
    COMPOSE_FILE,
    DEPLOY,
    ENV_EXAMPLE,
    compose,
    daig_services,
    raw_compose,
    read_env_file,
)

SCHEMA = Path(__file__).with_name("compose-spec.json")
ONE_SHOT = {"minio-init", "migrate", "provider-account"}
# Long-running services without a health endpoint: nothing waits on them being healthy.
NO_HEALTHCHECK = {"provider"}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return compose()


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(raw_compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_rejects_what_compose_rejects() -> None:
    """The check has teeth: a misspelt key and a bad depends_on condition fail it."""
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    broken = raw_compose()
    broken["services"]["api"]["helthcheck"] = broken["services"]["api"].pop("healthcheck")
    assert not validator.is_valid(broken)
    broken = raw_compose()
    broken["services"]["api"]["depends_on"] = {"migrate": {"condition": "service_done"}}
    assert not validator.is_valid(broken)


def test_env_example_gives_every_required_variable() -> None:
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE_FILE.read_text()))
    given = read_env_file(ENV_EXAMPLE)
    assert required <= set(given), f"missing from .env.example: {sorted(required - set(given))}"
    # and every variable it sets is used by the compose file
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    assert set(given) <= used, f"set but unused: {sorted(set(given) - used)}"
    # secrets are placeholders an operator must replace
    for key in ("DAIG_SECRET_KEY", "POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "DAIG_S3_SECRET_KEY"):
        assert given[key].startswith("change-me"), key


def test_stack_has_every_part_healthchecked_in_order(config: dict[str, Any]) -> None:
    services = config["services"]
    expected = {"postgres", "rabbitmq", "minio", "minio-init", "migrate", "api", "scheduler"}
    expected |= {"aggregator", "provider-account", "provider", "prometheus", "grafana"}
    assert set(services) == expected
    assert "management" in services["rabbitmq"]["image"]
    for name, service in services.items():
        if name not in ONE_SHOT | NO_HEALTHCHECK:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dependency, rule in (service.get("depends_on") or {}).items():
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} -> {dependency}"
            else:
                assert condition == "service_completed_successfully"
                assert dependency in ONE_SHOT, f"{name} waits for {dependency} to exit"
    for role in ("api", "scheduler", "aggregator"):
        assert services[role]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        ), f"{role} must start after migrations"
        assert services[role]["depends_on"]["minio-init"]["condition"] == (
            "service_completed_successfully"
        ), f"{role} must start after the bucket exists"


def test_bucket_is_created_at_start(config: dict[str, Any]) -> None:
    script = "\n".join(config["services"]["minio-init"]["command"])
    assert 'mc mb --ignore-existing "local/$MINIO_BUCKET"' in script
    bucket = config["services"]["minio-init"]["environment"]["MINIO_BUCKET"]
    assert config["services"]["api"]["environment"]["DAIG_BLOB_URL"].startswith(f"s3://{bucket}/")


def test_state_lives_in_named_volumes(config: dict[str, Any]) -> None:
    volumes = set(config["volumes"])
    mounts = {
        "postgres": "/var/lib/postgresql/data",
        "rabbitmq": "/var/lib/rabbitmq",
        "minio": "/data",
        "prometheus": "/prometheus",
        "grafana": "/var/lib/grafana",
    }
    for name, path in mounts.items():
        sources = {
            m.split(":")[0] for m in config["services"][name]["volumes"] if m.split(":")[1] == path
        }
        assert sources and sources <= volumes, f"{name}'s {path} is not a named volume"


def test_scalable_services_have_no_fixed_names_or_host_ports(config: dict[str, Any]) -> None:
    """``--scale provider=N`` and ``--scale aggregator=N`` need both."""
    for name in ("provider", "aggregator", "scheduler"):
        service = config["services"][name]
        assert "container_name" not in service and "ports" not in service, name


def test_monitoring_is_an_optional_profile(config: dict[str, Any]) -> None:
    for name in ("prometheus", "grafana"):
        assert config["services"][name]["profiles"] == ["monitoring"]
    for name, service in config["services"].items():
        if name not in ("prometheus", "grafana"):
            assert "profiles" not in service, f"{name} would not start by default"


def test_prometheus_scrapes_each_role_where_it_serves_metrics(config: dict[str, Any]) -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        sd["names"][0]: sd["port"]
        for job in scrape["scrape_configs"]
        for sd in job["dns_sd_configs"]
    }
    services = config["services"]
    assert targets["api"] == int(services["api"]["command"][-1])
    for role in ("scheduler", "aggregator"):
        assert targets[role] == int(services[role]["environment"]["DAIG_METRICS_PORT"])
    mounted = {m.split(":")[0] for m in services["prometheus"]["volumes"]}
    assert "./prometheus/prometheus.yml" in mounted


def test_grafana_is_provisioned_with_the_dashboard(config: dict[str, Any]) -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "daig.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    mounts = dict(m.rsplit(":", 2)[:2] for m in config["services"]["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == path
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "daig-overview.json").read_text())
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]


def test_daig_services_run_the_daig_command(config: dict[str, Any]) -> None:
    from typer.main import get_command

    from daig_cli import app

    commands = get_command(app).commands  # type: ignore[attr-defined]
    services = daig_services(config)
    assert set(services) == {"migrate", "api", "scheduler", "aggregator", "provider-account"} | {
        "provider"
    }
    for name, service in services.items():
        assert service["command"][0] in commands, f"{name}: no `daig {service['command'][0]}`"
        healthcheck = service.get("healthcheck", {}).get("test")
        if healthcheck:
            assert healthcheck[:3] == ["CMD", "daig", "health"], name
