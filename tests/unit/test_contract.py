"""One wire contract for both ends: the API serves ``daig.contract.http``'s classes, the client
returns them, and clients import them without the server's framework or database."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing
import uuid
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.routing import BaseRoute

from daig.client import ClientError, DaigClient
from daig.contract import http
from daig.contract.http import ProjectOut, UserOut, parse_answer
from daig.settings import Settings
from daig_api.main import create_app
from tests.helpers.gui import project_out

CONTRACT = http.__name__
PLUMBING = {"request", "call", "close"}  # typed: an httpx.Response, the shape asked for


def _models(annotation: Any) -> set[type[BaseModel]]:
    """The pydantic classes inside ``annotation`` (``list[X]``, ``X | None``, ``X``)."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return {annotation}
    return {m for arg in typing.get_args(annotation) for m in _models(arg)}


def _api_routes(routes: list[BaseRoute]) -> list[APIRoute]:
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (included := getattr(route, "original_router", None)) is not None:
            found += _api_routes(included.routes)  # FastAPI keeps included routers as such
    return found


def _routes() -> list[APIRoute]:
    routes = _api_routes(create_app(Settings(env="development")).routes)
    assert len(routes) > 20, "every route of the API is found"
    return routes


def test_every_response_model_of_the_api_is_a_contract_class() -> None:
    served = {m for route in _routes() for m in _models(route.response_model)}
    assert {m.__module__ for m in served} == {CONTRACT}
    assert {m.__name__ for m in served} >= {
        "ClaimGrant",
        "Lease",
        "ProviderConfig",
        "ProjectOut",
        "RoundOut",
        "FileOut",
        "UserOut",
        "Token",
        "Health",
        "BalanceOut",
        "HistoryLineOut",
        "ProjectCostOut",
        "ContributorOut",
    }


def test_every_json_request_body_is_a_contract_class() -> None:
    bodies = {
        m
        for route in _routes()
        for param in route.dependant.body_params
        for m in _models(param.field_info.annotation)
    }
    assert {m.__module__ for m in bodies} == {CONTRACT}
    assert {m.__name__ for m in bodies} >= {"ProjectCreate", "SignupRequest", "ClaimRequest"}


def test_the_client_returns_contract_classes_not_dicts() -> None:
    methods = {
        name: method
        for name, method in inspect.getmembers(DaigClient, inspect.isfunction)
        if not name.startswith("_") and name not in PLUMBING
    }
    assert {"claim", "heartbeat", "provider_config", "project", "rounds", "credits"} <= set(methods)
    for name, method in methods.items():
        returned = typing.get_type_hints(method)["return"]
        assert "Any" not in repr(returned) and "dict" not in repr(returned), (name, returned)
        for model in _models(returned):
            assert model.__module__ == CONTRACT, (name, model)


def test_clients_ignore_fields_they_do_not_know_nested_ones_too() -> None:
    body = project_out().model_dump(mode="json")
    body["added_by_a_newer_server"] = 1
    body["hyperparameters"]["a_new_knob"] = 2.0
    parsed = parse_answer(ProjectOut, body)
    assert parsed.model_dump(mode="json") == project_out(
        id=parsed.id, created_at=parsed.created_at
    ).model_dump(mode="json")
    [user] = parse_answer(list[UserOut], [{"id": 1, "username": "u", "since": "now"}])
    assert user == UserOut(id=1, username="u")


def test_a_missing_or_mistyped_field_is_refused() -> None:
    with pytest.raises(ValidationError):
        parse_answer(UserOut, {"id": 1})
    with pytest.raises(ValidationError):
        parse_answer(ProjectOut, project_out().model_dump(mode="json") | {"id": "not-a-uuid"})


def test_the_server_stays_strict_on_requests() -> None:
    with pytest.raises(ValidationError, match="extra"):
        http.ClaimRequest.model_validate({"agent_id": "a", "extra": 1})
    assert http.ClaimRequest.model_validate({"agent_id": str(uuid.uuid4())})


def test_clients_import_the_contract_without_the_server_stack() -> None:
    code = (
        "import sys, daig.contract.http, daig.contract.messages, daig.client\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'fastapi', 'starlette', 'sqlalchemy', 'daig_api'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_an_unreadable_answer_is_a_client_error_that_says_so() -> None:
    answer = httpx.MockTransport(lambda request: httpx.Response(200, json={"id": "one"}))
    client = DaigClient("http://daig.test")
    client._http = httpx.Client(base_url="http://daig.test", transport=answer)
    with pytest.raises(ClientError, match="cannot read") as error:
        client.me()
    assert (error.value.status, error.value.reason) == (200, "unreadable_answer")
