"""Failure reasons a requestor may see: type and message, nothing of the volunteer's machine."""

from __future__ import annotations

from datetime import UTC, datetime

from daig.contract.http import TaskFailureOut
from daig.failures import MAX_REASON_CHARS, describe_failure, failure_text, sanitize_reason

# The shape of what TensorFlow raised in the user trial (paths of a volunteer's machine).
TF_ERROR = """Graph execution error:

Detected at node compile_loss/sparse_categorical_crossentropy/SparseSoftmaxCrossEntropyWithLogits defined at (most recent call last):
  File "/home/alice/.local/lib/python3.11/runpy.py", line 198, in _run_module_as_main

  File "/home/alice/daig/provider_agent/training_child.py", line 61, in child_main

  File "/home/alice/.venv/lib/python3.11/site-packages/keras/src/trainers/trainer.py", line 377, in fit

Received a label value of 63 which is outside the valid range of [0, 10).  Label values: 4 63 1
\t [[{{node compile_loss/sparse_categorical_crossentropy/SparseSoftmaxCrossEntropyWithLogits}}]] [Op:__inference_multi_step_on_iterator_1776]"""  # noqa: E501


class InvalidArgumentError(Exception):
    pass


def assert_clean(reason: str) -> None:
    assert "/" not in reason and "\\" not in reason
    assert "alice" not in reason and "home" not in reason
    assert "\n" not in reason and len(reason) <= MAX_REASON_CHARS


def test_a_tensorflow_error_keeps_its_type_and_message_only() -> None:
    reason = describe_failure(InvalidArgumentError(TF_ERROR))
    assert_clean(reason)
    assert reason.startswith("InvalidArgumentError: Graph execution error:")
    assert "Received a label value of 63 which is outside the valid range of [0, 10)." in reason
    assert "File" not in reason and "line 198" not in reason and "Op:" not in reason


def test_a_python_traceback_in_a_message_is_dropped() -> None:
    text = (
        "ValueError: bad shapes\n"
        "Traceback (most recent call last):\n"
        '  File "C:\\Users\\bob\\daig\\agent.py", line 3, in <module>\n'
        "    train(model)\n"
        "shapes (32, 3) and (32, 10) are incompatible"
    )
    reason = sanitize_reason(text)
    assert_clean(reason)
    assert reason == "ValueError: bad shapes shapes (32, 3) and (32, 10) are incompatible"


def test_paths_home_dirs_and_environment_are_replaced() -> None:
    reason = sanitize_reason(
        "OSError: [Errno 2] No such file: '/tmp/daig-task-x/y.npy' or ~/data/x.npy or "
        "~bob or D:\\work\\x.npy or \\\\server\\share\\f or file:///etc/passwd "
        "with HOME=/home/carol and TF_CPP_MIN_LOG_LEVEL=2"
    )
    assert_clean(reason)
    assert "bob" not in reason and "carol" not in reason and "passwd" not in reason
    assert reason.count("(path)") == 6 and reason.count("(environment)") == 2


def test_ordinary_slashes_and_ranges_survive() -> None:
    reason = sanitize_reason("ValueError: expected 1/2 of the rows in [0, 10) at http://x")
    assert reason == "ValueError: expected 1/2 of the rows in [0, 10) at http://x"


def test_long_reasons_are_capped_and_empty_ones_named() -> None:
    reason = sanitize_reason("MemoryError: " + "x " * 1000)
    assert MAX_REASON_CHARS - 2 <= len(reason) <= MAX_REASON_CHARS and reason.endswith("…")
    assert sanitize_reason("  \n  ") == "unknown error"


def test_sanitizing_twice_changes_nothing() -> None:
    once = describe_failure(InvalidArgumentError(TF_ERROR))
    assert sanitize_reason(once) == once


def test_failure_text_names_the_shard_and_round() -> None:
    failure = TaskFailureOut(
        round=2, shard=5, failures=1, reason="ValueError: no", at=datetime.now(UTC)
    )
    assert failure_text(failure).startswith("shard 5 of round 2 failed on a volunteer's machine")
    assert "(once so far" in failure_text(failure) and failure_text(failure).endswith("no")
