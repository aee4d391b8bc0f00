"""Every failure becomes a sentence: no tracebacks reach the person."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from daig.client import ClientError
from daig.hyperparams import Hyperparameters
from requestor_gui.errors import describe


def test_unreachable_server_says_what_to_check() -> None:
    try:
        try:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        except httpx.ConnectError as cause:
            raise ClientError("cannot reach the DAIG server at http://h:1 (x)") from cause
    except ClientError as exc:
        message = describe(exc)
    assert message == (
        "Cannot reach the DAIG server at http://h:1 (connection refused). Check the address "
        "and that the server is running."
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ClientError("wrong username or password", status=401, reason="bad_credentials"),
         "Wrong username or password."),
        (ClientError("token expired", status=401, reason="bad_token"),
         "Your session has expired; log in again."),
        (ClientError("the username 'a' is taken; choose another", status=409),
         "The username 'a' is taken; choose another."),
        (ClientError("boom", status=500), "The server had a problem: boom."),
        (FileNotFoundError(2, "No such file or directory", "/x.npy"),
         "No such file or directory: /x.npy."),
    ],
)  # fmt: skip
def test_api_and_file_errors(error: Exception, expected: str) -> None:
    assert describe(error) == expected


def test_validation_errors_and_bugs_are_sentences() -> None:
    with pytest.raises(ValidationError) as caught:
        Hyperparameters(total_tasks=2, task_size=3)
    assert describe(caught.value).startswith("Task_size (K=3) cannot exceed total_tasks")
    assert describe(KeyError("x")) == "Something went wrong: KeyError: 'x'."


def test_a_bad_hyperparameter_names_its_field_and_range() -> None:
    with pytest.raises(ValidationError) as caught:
        Hyperparameters(epochs=0)
    assert describe(caught.value) == "epochs: must be between 1 and 1000 (got 0)"
    refused = ClientError("epochs: must be between 1 and 1000 (got 0)", status=422)
    assert describe(refused) == "epochs: must be between 1 and 1000 (got 0)"
