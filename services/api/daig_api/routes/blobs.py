"""The local blob store's presigned URLs: signed, expiring GET (with Range) and PUT."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from daig.blobstore import InvalidKey
from daig.blobstore.local import LocalBlobStore
from daig.blobstore.signing import verify
from daig_api.deps import BlobsDep, SettingsDep
from daig_api.errors import ApiError

router = APIRouter(prefix="/v1/blobs", tags=["blobs"])


def _local_path(blobs: BlobsDep, key: str) -> Path:
    if not isinstance(blobs, LocalBlobStore):
        raise ApiError(404, "this server stores blobs in S3; use the S3 URLs it gives", "not_local")
    try:
        return blobs.path(key)
    except InvalidKey as exc:
        raise ApiError(400, str(exc), "bad_key") from exc


def _check(
    settings: SettingsDep, method: str, key: str, expires: int, sig: str, max_bytes: int | None
) -> None:
    problem = verify(settings.secret_key, method, key, expires, sig, max_bytes)
    if problem:
        raise ApiError(403, problem, "bad_signature")


@router.get("/{key:path}", response_class=FileResponse)
def get_blob(
    key: str,
    blobs: BlobsDep,
    settings: SettingsDep,
    expires: int,
    sig: str,
    method: Annotated[str, Query()] = "GET",
) -> FileResponse:
    """Download a blob (honours ``Range``)."""
    _check(settings, "GET", key, expires, sig, None)
    path = _local_path(blobs, key)
    if method != "GET" or not path.is_file():
        raise ApiError(404, "no such blob", "not_found")
    return FileResponse(path, media_type="application/octet-stream")


@router.put("/{key:path}", status_code=201)
async def put_blob(
    key: str,
    request: Request,
    blobs: BlobsDep,
    settings: SettingsDep,
    expires: int,
    sig: str,
    max_bytes: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, int]:
    """Upload a blob to the one key this URL was signed for."""
    _check(settings, "PUT", key, expires, sig, max_bytes)
    target = _local_path(blobs, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".put-")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise ApiError(
                        413, f"upload exceeds the {max_bytes} bytes allowed", "too_large"
                    )
                out.write(chunk)
        os.replace(temp, target)
    finally:
        Path(temp).unlink(missing_ok=True)
    return {"size": size}
