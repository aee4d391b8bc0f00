"""The blob store: every large byte (models, data, weights, deltas) lives here, under keys.

``open_blob_store(settings)`` picks the backend from ``DAIG_BLOB_URL``: ``file:///dir`` for the
local filesystem (its presigned URLs are served by the API), ``s3://bucket[/prefix]`` for S3.
"""

from __future__ import annotations

from urllib.parse import urlparse

from daig.blobstore.base import BlobNotFound, BlobStore, InvalidKey
from daig.settings import Settings

__all__ = ["BlobNotFound", "BlobStore", "InvalidKey", "open_blob_store"]


def open_blob_store(settings: Settings) -> BlobStore:
    url = urlparse(settings.blob_url)
    if url.scheme == "file":
        from daig.blobstore.local import LocalBlobStore

        return LocalBlobStore(
            url.path, secret=settings.secret_key, base_url=settings.public_api_url
        )
    if url.scheme == "s3":
        from daig.blobstore.s3 import S3BlobStore

        return S3BlobStore(
            bucket=url.netloc,
            prefix=url.path.strip("/"),
            endpoint_url=settings.s3_endpoint_url,
            public_endpoint_url=settings.s3_public_endpoint_url,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            region=settings.s3_region,
        )
    raise ValueError(f"DAIG_BLOB_URL {settings.blob_url!r}: use file:///dir or s3://bucket/prefix")
