"""A URL that is not a DAIG server is named as such by the client (for the CLI and the GUI),
not answered with the other server's "Method Not Allowed" or a page it could not parse."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from daig.client import ClientError, DaigClient


class NotDaig(BaseHTTPRequestHandler):
    """A tiny web server: an HTML page for every GET, 405 for every POST."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's API
        body = b"<html><body>my blog</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's API
        self.send_response(405, "Method Not Allowed")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def other_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotDaig)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_login_to_another_server_says_it_is_not_daig(other_server: str) -> None:
    with DaigClient(other_server) as client, pytest.raises(ClientError) as caught:
        client.login("someone", "password123")
    message = str(caught.value)
    assert message.startswith(f"{other_server} is not a DAIG server")
    assert "no DAIG API answered at /healthz" in message
    assert "HTTP 200 text/html" in message
    assert caught.value.reason == "not_daig"


def test_a_page_instead_of_an_answer_says_it_is_not_daig(other_server: str) -> None:
    with DaigClient(other_server, token="t") as client, pytest.raises(ClientError) as caught:
        client.projects()
    assert f"{other_server} is not a DAIG server" in str(caught.value)


def test_health_of_another_server_says_it_is_not_daig(other_server: str) -> None:
    with DaigClient(other_server) as client, pytest.raises(ClientError, match="not a DAIG server"):
        client.health()


def test_the_cli_says_so_too(other_server: str, tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from daig_cli import app as daig_app

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    login = ["--server", other_server, "--user", "someone", "--password", "password123"]
    result = CliRunner(env={"COLUMNS": "300"}).invoke(daig_app, ["project", "list", *login])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"error: {other_server} is not a DAIG server (no DAIG API answered at /healthz" in text
    assert "Method Not Allowed" not in text
