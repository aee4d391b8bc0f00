"""``daig api``: serve the HTTP API with uvicorn."""

from __future__ import annotations

import uvicorn

from daig import tempdirs
from daig.logs import setup_logging
from daig.settings import Settings
from daig_api.main import create_app

KEEP_ALIVE_SECONDS = 75


def main(host: str = "127.0.0.1", port: int = 8000) -> None:
    settings = Settings()
    setup_logging(settings.log_level, json_lines=settings.log_json, process="api")
    tempdirs.remove_stale()  # left by API processes killed outright
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # Agents call every few seconds; closing idle connections after uvicorn's default 5 s
        # made them reconnect, and race the server closing a connection they were reusing.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


if __name__ == "__main__":
    main()
