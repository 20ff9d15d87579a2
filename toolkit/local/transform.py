"""A Batch Transform job against any server with /ping, /invocations and /execution-parameters.

As the platform does: settings the job leaves unset are taken from the server's
/execution-parameters, then from the defaults (MultiRecord, 6 MB, 1 request at a time); each input
file is split (SplitType None: the whole file is one record; Line: one record per line), records
are packed into requests (SingleRecord: one per request; MultiRecord: as many as fit in
MaxPayloadInMB), up to MaxConcurrentTransforms requests are in flight, and the answers are
written in input order to ``<output path>/<input file name>.out`` (AssembleWith Line ends each
answer with a newline). A request that fails names its file and line(s), and that file gets no
output.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import logging
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import urlparse

from toolkit.errors import ConfigError
from toolkit.local.storage import Item, Location, Storage
from toolkit.plan import transform_output

log = logging.getLogger("toolkit")
DEFAULTS = {"BatchStrategy": "MultiRecord", "MaxPayloadInMB": 6, "MaxConcurrentTransforms": 1}
MB = 1024 * 1024
REQUEST_TIMEOUT = 600.0


@dataclass(frozen=True)
class TransformSettings:
    content_type: Optional[str] = None
    accept: Optional[str] = None
    split_type: str = "None"
    assemble_with: str = "None"
    batch_strategy: Optional[str] = None
    max_payload_mb: Optional[int] = None
    max_concurrent: Optional[int] = None

    def server_environment(self) -> dict[str, str]:
        """What the platform tells the container about the settings the job gave."""
        env = {"SAGEMAKER_BATCH": "true"}
        if self.batch_strategy:
            multi = self.batch_strategy == "MultiRecord"
            env["SAGEMAKER_BATCH_STRATEGY"] = "MULTI_RECORD" if multi else "SINGLE_RECORD"
        if self.max_payload_mb is not None:
            env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(self.max_payload_mb)
        if self.max_concurrent is not None:
            env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(self.max_concurrent)
        return env


@dataclass(frozen=True)
class Batch:
    """One request: records ``first``..``last`` (1-based lines) of one file."""

    file: str
    index: int
    first: int
    last: int
    body: bytes

    @property
    def where(self) -> str:
        if self.first == 0:
            return f"input {self.file}"
        lines = f"line {self.first}" if self.first == self.last else f"lines {self.first}-{self.last}"
        return f"input {self.file}, {lines}"


class RecordError(Exception):
    def __init__(self, batch: Batch, message: str) -> None:
        super().__init__(f"{batch.where}: {message}")
        self.batch = batch


@dataclass
class TransformResult:
    files: int = 0
    records: int = 0
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    settings: Optional[TransformSettings] = None

    @property
    def ok(self) -> bool:
        return not self.errors


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


def resolve(settings: TransformSettings, execution_parameters: Optional[dict]) -> TransformSettings:
    """The job's settings, else the server's /execution-parameters, else the defaults."""
    given = execution_parameters or {}

    def pick(value: object, key: str) -> object:
        if value is not None:
            return value
        return given.get(key, DEFAULTS[key])

    strategy = pick(settings.batch_strategy, "BatchStrategy")
    # servers built on sagemaker-inference answer the variable's spelling
    strategy = {"MULTI_RECORD": "MultiRecord", "SINGLE_RECORD": "SingleRecord"}.get(str(strategy), strategy)
    if strategy not in ("SingleRecord", "MultiRecord"):
        raise ConfigError(f"/execution-parameters BatchStrategy {strategy!r}: expected SingleRecord or MultiRecord")
    payload = pick(settings.max_payload_mb, "MaxPayloadInMB")
    concurrent = pick(settings.max_concurrent, "MaxConcurrentTransforms")
    for name, value, low in (("MaxPayloadInMB", payload, 0), ("MaxConcurrentTransforms", concurrent, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} {value!r}: expected a whole number of at least {low}")
    return replace(settings, batch_strategy=str(strategy), max_payload_mb=int(payload),  # type: ignore[arg-type]
                   max_concurrent=int(concurrent))  # type: ignore[arg-type]


def execution_parameters(base_url: str) -> Optional[dict]:
    """GET /execution-parameters: its JSON object when the server answers 200, else None."""
    try:
        status, body = _get(base_url, "/execution-parameters")
    except OSError as exc:
        log.info("/execution-parameters: no answer (%s); using the job's settings and the defaults", exc)
        return None
    if status != 200:
        log.info("/execution-parameters: HTTP %d; using the job's settings and the defaults", status)
        return None
    try:
        data = json.loads(body)
    except ValueError:
        raise ConfigError(f"/execution-parameters answered 200 with a body that is not JSON: {body[:200]!r}") from None
    if not isinstance(data, dict):
        raise ConfigError("/execution-parameters must answer a JSON object")
    return data


# ---------------------------------------------------------------------------------------------
# Records and requests
# ---------------------------------------------------------------------------------------------


def split(data: bytes, split_type: str) -> list[tuple[int, bytes]]:
    """(line number, record) pairs; blank lines are not records. SplitType None: one record, line 0."""
    if split_type == "None":
        return [(0, data)]
    records = []
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        if line.strip(b"\r\n"):
            records.append((number, line if line.endswith(b"\n") else line + b"\n"))
    return records


def make_batches(file: str, records: Sequence[tuple[int, bytes]], strategy: str, max_payload_mb: int) -> list[Batch]:
    limit = max_payload_mb * MB if max_payload_mb > 0 else None
    batches: list[Batch] = []
    current: list[tuple[int, bytes]] = []
    size = 0

    def flush() -> None:
        nonlocal current, size
        if current:
            body = b"".join(r for _, r in current)
            batches.append(Batch(file, len(batches), current[0][0], current[-1][0], body))
            current, size = [], 0

    for number, record in records:
        if limit is not None and len(record) > limit:
            where = f"line {number}" if number else "the whole file (SplitType None)"
            raise RecordError(Batch(file, len(batches), number, number, b""),
                              f"{where} is {len(record)} bytes, over MaxPayloadInMB={max_payload_mb}; "
                              f"use SplitType Line or a larger MaxPayloadInMB")
        if strategy == "SingleRecord" or (limit is not None and size + len(record) > limit):
            flush()
        current.append((number, record))
        size += len(record)
        if strategy == "SingleRecord":
            flush()
    flush()
    return batches


def _get(base_url: str, path: str) -> tuple[int, bytes]:
    parsed = urlparse(base_url)
    conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port or 80, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Client:
    """POST /invocations over one keep-alive connection per thread."""

    def __init__(self, base_url: str, settings: TransformSettings) -> None:
        parsed = urlparse(base_url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.headers = {}
        if settings.content_type:
            self.headers["Content-Type"] = settings.content_type
        if settings.accept:
            self.headers["Accept"] = settings.accept
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
        return conn

    def invoke(self, batch: Batch) -> bytes:
        for attempt in range(2):  # a keep-alive connection the server closed is retried once
            conn = self._conn()
            try:
                conn.request("POST", "/invocations", body=batch.body, headers=self.headers)
                response = conn.getresponse()
                body = response.read()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine) as exc:
                conn.close()
                self.local.conn = None
                if attempt == 0:
                    continue
                raise RecordError(batch, f"no answer from the server ({exc})") from exc
            except OSError as exc:
                conn.close()
                self.local.conn = None
                raise RecordError(batch, f"no answer from the server ({exc})") from exc
            if 200 <= response.status < 300:
                return body
            raise RecordError(batch, f"HTTP {response.status}: {_message(body)}")
        raise AssertionError("unreachable")  # pragma: no cover


def _message(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return data["message"]
    except ValueError:
        pass
    return " ".join(text.split())[:300] or "(empty body)"


def assemble(answers: Sequence[bytes], assemble_with: str) -> bytes:
    if assemble_with == "Line":
        return b"".join(a if a.endswith(b"\n") else a + b"\n" for a in answers)
    return b"".join(answers)


# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------


def run_transform(storage: Storage, base_url: str, source: Location, items: Sequence[Item], output: Location,
                  settings: TransformSettings) -> TransformResult:
    """Transform every item; ``settings`` must be resolved already."""
    assert settings.batch_strategy and settings.max_payload_mb is not None and settings.max_concurrent
    result = TransformResult(settings=settings)
    started = time.perf_counter()
    client = Client(base_url, settings)
    failed: dict[str, str] = {}
    plan: dict[str, list[Batch]] = {}
    for item in items:
        with storage.open(source, item) as body:
            data = body.read()
        result.bytes_in += len(data)
        records = split(data, settings.split_type)
        result.records += len(records)
        try:
            plan[item.name] = make_batches(item.name, records, settings.batch_strategy, settings.max_payload_mb)
        except RecordError as exc:
            failed[item.name] = str(exc)
    answers: dict[str, list[Optional[bytes]]] = {name: [None] * len(b) for name, b in plan.items()}
    with concurrent.futures.ThreadPoolExecutor(max_workers=settings.max_concurrent) as pool:
        futures = {pool.submit(client.invoke, batch): batch for batches in plan.values() for batch in batches}
        for future in concurrent.futures.as_completed(futures):
            batch = futures[future]
            result.requests += 1
            try:
                answers[batch.file][batch.index] = future.result()
            except RecordError as exc:
                failed.setdefault(batch.file, str(exc))
    with tempfile.TemporaryDirectory(prefix="toolkit-transform-") as tmp:
        for item in items:
            if item.name in failed:
                continue
            data = assemble([a or b"" for a in answers[item.name]], settings.assemble_with)
            local = Path(tmp) / "out"
            local.write_bytes(data)
            target = transform_output(output, item.name)
            storage.upload_file(local, target)
            result.bytes_out += len(data)
            result.outputs.append(target.uri)
    result.files = len(items)
    result.errors = [failed[i.name] for i in items if i.name in failed]
    result.seconds = time.perf_counter() - started
    return result
