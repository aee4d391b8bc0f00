"""Blob store on S3 or any S3 API (MinIO, moto) through boto3; creates the bucket if missing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO

import boto3
from botocore.client import Config
from botocore.exceptions import ClientError

from daig.blobstore.base import BlobNotFound, BlobStore, check_key

# DeleteObjects takes at most 1,000 keys a request.
_DELETE_BATCH = 1000


class S3BlobStore(BlobStore):
    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str = "us-east-1",
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = self._make_client(endpoint_url, access_key, secret_key, region)
        # Presigned URLs must name an address providers can reach, which may differ from ours.
        self._signer = (
            self._make_client(public_endpoint_url, access_key, secret_key, region)
            if public_endpoint_url
            else self._client
        )
        self._ensure_bucket(region)

    @staticmethod
    def _make_client(
        endpoint_url: str | None, access_key: str | None, secret_key: str | None, region: str
    ) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def _ensure_bucket(self, region: str) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            self._client.create_bucket(**kwargs)

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_stream(self, key: str, stream: BinaryIO) -> int:
        counter = _CountingReader(stream)
        self._client.upload_fileobj(counter, self.bucket, self._key(key))
        return counter.count

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BlobNotFound(key) from exc
            raise
        body = response["Body"]
        try:
            yield body
        finally:
            body.close()

    def size(self, key: str) -> int | None:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    def delete_prefix(self, prefix: str) -> None:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix) + "/"):
            objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if objects:
                self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects})

    def delete_keys(self, keys: Sequence[str]) -> None:
        names = [self._key(key) for key in keys]
        for start in range(0, len(names), _DELETE_BATCH):
            batch = names[start : start + _DELETE_BATCH]
            self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )

    def presign_get(self, key: str, ttl_seconds: int) -> str:
        return str(
            self._signer.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._key(key)},
                ExpiresIn=ttl_seconds,
            )
        )

    def presign_put(self, key: str, ttl_seconds: int, max_bytes: int | None = None) -> str:
        # A presigned PUT cannot cap the size; the aggregator checks it before reading.
        return str(
            self._signer.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": self._key(key)},
                ExpiresIn=ttl_seconds,
            )
        )


class _CountingReader:
    """Wraps a stream to count the bytes boto3 reads from it."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        return data
