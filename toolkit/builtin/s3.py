"""Fetcher for ``s3://bucket/key``: an archive (extracted as it streams in), a single file, or
``s3://bucket/prefix/`` (every object under it). Works against any S3-compatible store through
AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL. boto3 is imported only when an s3:// URI is fetched."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from toolkit import archive, checks, download
from toolkit.errors import ArchiveError, FetchError
from toolkit.hookspecs import hookimpl
from toolkit.log import log
from toolkit.settings import region as resolve_region

PREFIX_WORKERS = 8


def parse(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise FetchError(f"{uri}: no bucket name; expected s3://bucket/key.tar.gz or s3://bucket/prefix/")
    return bucket, key


def region_of(env: Mapping[str, str]) -> Optional[str]:
    """The region of a settings view (the environment plus a training job's sagemaker_* settings)."""
    return resolve_region(env, env.get("sagemaker_region")) or None


def client(env: Mapping[str, str]) -> Any:
    """A boto3 S3 client configured from ``env`` (not from os.environ, which boto3 would read)."""
    from toolkit import aws

    return aws.client(env, "s3", region=region_of(env),
                      retries={"mode": "standard", "max_attempts": download.attempts(env)},
                      max_pool_connections=PREFIX_WORKERS * 2, connect_timeout=10, read_timeout=60)


def transient(exc: BaseException) -> bool:
    """Only a body that broke off while streaming: botocore has already retried the request
    itself (connection errors, 5xx, SlowDown, throttling) in its standard retry mode."""
    return isinstance(exc, download.InterruptedRead)


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def explain(exc: BaseException, uri: str, bucket: str, check: str = "check the submit directory",
            needs: str = "s3:GetObject and s3:ListBucket") -> FetchError:
    """One line for the failure file: what went wrong with ``uri`` and what to check.

    The emulator (toolkit/local/storage.py) words its S3 errors with this too, naming its own
    setting in ``check`` and the permissions an upload ``needs``."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, ClientError):
        code = _code(exc)
        if code == "NoSuchBucket":
            return FetchError(f"{uri}: bucket {bucket!r} does not exist (NoSuchBucket); {check}")
        if code in ("NoSuchKey", "404"):
            return FetchError(f"{uri}: no such object, and no objects under it as a prefix (NoSuchKey); "
                              f"{check}")
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return FetchError(f"{uri}: access denied ({code}); the job's role or AWS credentials need "
                              f"{needs} on it")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "ExpiredToken",
                    "InvalidToken"):
            return FetchError(f"{uri}: the AWS credentials were rejected ({code}); check AWS_ACCESS_KEY_ID, "
                              f"AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN or the job's role")
        message = exc.response.get("Error", {}).get("Message", "")
        return FetchError(f"{uri}: S3 answered {code or 'an error'}: {message}".rstrip(": "))
    if isinstance(exc, NoCredentialsError):
        return FetchError(f"{uri}: no AWS credentials found; give the job a role or set AWS_ACCESS_KEY_ID and "
                          f"AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, EndpointConnectionError):
        return FetchError(f"{uri}: cannot reach S3 at {exc.kwargs.get('endpoint_url', '?')}; check the network, "
                          f"the region or AWS_ENDPOINT_URL_S3")
    return FetchError(f"{uri}: download failed: {download.describe(exc)}")


@hookimpl
def toolkit_fetch_schemes() -> Sequence[str]:
    return ["s3"]


@hookimpl
def toolkit_fetch_code(uri: str, dest: Path, settings: Mapping[str, str]) -> Optional[Path]:
    if not uri.startswith("s3://"):
        return None
    bucket, key = parse(uri)
    s3 = client(settings)
    tries = download.attempts(settings)
    try:
        if key and not key.endswith("/"):
            try:
                return download.with_retries(
                    lambda: _fetch_object(s3, bucket, key, dest, uri, settings),
                    transient=transient, tries=tries, what=uri,
                )
            except Exception as exc:
                if not _is_missing_key(exc):
                    raise
                log.info("%s is not an object; trying it as a prefix", uri)
                return _fetch_prefix(s3, bucket, key + "/", dest, uri, settings, tries, missing=exc)
        return _fetch_prefix(s3, bucket, key, dest, uri, settings, tries)
    except (FetchError, ArchiveError):
        raise
    except Exception as exc:
        if _is_botocore(exc):
            raise explain(exc.cause if isinstance(exc, download.InterruptedRead) else exc, uri, bucket) from exc
        raise


def _is_botocore(exc: BaseException) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, (BotoCoreError, ClientError, download.InterruptedRead))


def _is_missing_key(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and _code(exc) in ("NoSuchKey", "404")


def _fetch_object(s3: Any, bucket: str, key: str, dest: Path, uri: str, env: Mapping[str, str]) -> Path:
    response = s3.get_object(Bucket=bucket, Key=key)
    with download.ReadAhead(response["Body"]) as body:
        return download.unpack_or_place(body, dest, posixpath_name(key), uri, env)  # type: ignore[arg-type]


def posixpath_name(key: str) -> str:
    return key.rstrip("/").rsplit("/", 1)[-1]


def _fetch_prefix(
    s3: Any, bucket: str, prefix: str, dest: Path, uri: str, env: Mapping[str, str], tries: int,
    missing: Optional[BaseException] = None,
) -> Path:
    """Every object under ``prefix``, in parallel, keeping the folder layout below it."""
    import concurrent.futures as futures
    import shutil
    import tempfile

    max_bytes, max_members = archive.limits(env)
    objects: list[tuple[str, str]] = []
    total = 0
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            rel = key[len(prefix):]
            if not rel or rel.endswith("/"):
                continue  # the folder marker consoles create
            objects.append((key, archive.safe_name(rel, uri)))
            total += int(item.get("Size", 0))
            if len(objects) > max_members:
                raise ArchiveError(f"{uri}: more than {max_members} objects; raise TOOLKIT_MAX_EXTRACT_MEMBERS")
            if total > max_bytes:
                raise ArchiveError(f"{uri}: more than {max_bytes} bytes; raise TOOLKIT_MAX_EXTRACT_BYTES")
    if not objects:
        if missing is not None:
            raise missing
        raise FetchError(f"{uri}: no objects under this prefix; check the submit directory")
    clash = checks.file_and_folder(rel for _, rel in objects)
    if clash is not None:
        raise FetchError(f"{uri}: {prefix}{clash[0]} is both an object and a folder (of {prefix}{clash[1]}); "
                         f"a folder on disk cannot be both: delete or rename one of them")
    archive.check_room(total, dest.parent, uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))

    def one(item: tuple[str, str]) -> None:
        key, rel = item
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        download.with_retries(
            lambda: _save(s3, bucket, key, target), transient=transient, tries=tries, what=f"s3://{bucket}/{key}"
        )

    pool = futures.ThreadPoolExecutor(PREFIX_WORKERS)
    try:
        list(pool.map(one, objects))
        pool.shutdown()
        os.rename(tmp, dest)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # a stop or an error: start no more downloads
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("%s: %d objects, %d bytes", uri, len(objects), total)
    return dest


def _save(s3: Any, bucket: str, key: str, target: Path) -> None:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    with download.ReadAhead(body) as stream, open(target, "wb") as out:
        while True:
            chunk = stream.read(archive.CHUNK)
            if not chunk:
                break
            out.write(chunk)
