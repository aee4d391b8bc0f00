"""No log line shows a URL's query string (presigned signatures). The provider's logs of a
real task fetch: tests/integration/test_provider_logs.py."""

from __future__ import annotations

import logging

from daig.logs import RedactQueries, redact_queries

S3 = (
    "https://minio.example.org:9000/daig/projects/p/data.npy?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=key%2F20261205&X-Amz-Signature=0123abcd"
)
LOCAL = "http://127.0.0.1:8000/v1/blobs/projects/p/model.h5?expires=1764900000&sig=deadbeef"


def test_query_strings_are_redacted_and_the_rest_kept() -> None:
    text = f"download failed for {S3} and '{LOCAL}'"
    assert redact_queries(text) == (
        "download failed for https://minio.example.org:9000/daig/projects/p/data.npy?<redacted> "
        "and 'http://127.0.0.1:8000/v1/blobs/projects/p/model.h5?<redacted>'"
    )
    assert redact_queries("round 3 of 9? yes") == "round 3 of 9? yes"


def test_the_filter_redacts_a_records_formatted_message() -> None:
    record = logging.LogRecord("provider_agent", logging.INFO, __file__, 1, "got %s", (S3,), None)
    assert RedactQueries().filter(record)
    assert record.getMessage().endswith("data.npy?<redacted>")
    assert "X-Amz-Signature" not in record.getMessage()
