"""Every error the API returns is JSON with a human ``detail`` (and a machine ``reason``)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from daig.hyperparams import KNOBS


class ApiError(HTTPException):
    """An HTTP error with a stable ``reason`` code next to the human message."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        reason: str = "error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, detail, headers)
        self.reason = reason


def _readable(error: dict[str, Any]) -> str:
    """ "epochs: must be between 1 and 1000 (got 0)": the field, then what it must be."""
    parts = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
    location = ".".join(parts)
    if len(parts) == 1 and parts[0] in KNOBS and error.get("type") != "missing":
        return f"{location}: {KNOBS[parts[0]].requirement(error.get('input'))}"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.detail, "reason": exc.reason}, exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        return JSONResponse(
            {
                "detail": "; ".join(_readable(e) for e in errors) or "invalid request",
                "reason": "invalid_request",
                "errors": [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors],
            },
            status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(OperationalError)
    async def _database_down(_: Request, exc: OperationalError) -> JSONResponse:
        return JSONResponse(
            {
                "detail": "the database is unavailable right now; retry in a moment",
                "reason": "unavailable",
            },
            status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger(__name__).exception("unhandled error", exc_info=exc)
        return JSONResponse(
            {
                "detail": "internal server error; the operator's logs have the details",
                "reason": "internal",
            },
            status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
