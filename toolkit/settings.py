"""The toolkit's settings: one table of every variable it reads (TOOLKIT_*, and SageMaker's own
SAGEMAKER_* beside the few AWS_* that pick the region), each with its default, its kind, the
commands that read it and one line of doc. docs/environment.md is generated from ``TABLE``
(``python tools/environment_doc.py``), and tests/test_environment_documented.py fails when the
two disagree or when code reads one of these variables without going through ``read``.

Every reader calls ``read(environ, NAME)``: the value parsed by its kind, or the default when the
variable is unset or empty. A bad value is refused the same way everywhere: a ``ConfigError``
(exit 2) whose one line names the variable, the value given and what would be right, e.g.
``TOOLKIT_FETCH_ATTEMPTS='ten' is not a whole number; expected e.g. TOOLKIT_FETCH_ATTEMPTS=4``.
Numbers refuse ``nan`` and ``inf`` (Python's float() accepts both, and a timeout of nan or a
limit of inf turns into a crash loop or no limit at all) and fractions where a whole number is
meant. ``log_level``, ``region`` and ``base_dir`` are the one place each of those is resolved.

``train`` imports this module on every job start: the table is plain objects, built at import
without dataclasses or anything else that costs a module load.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

from toolkit.errors import ConfigError, ToolkitError
from toolkit.log import INFO, LEVELS

Number = Union[int, float]
DEFAULT_BASE_DIR = "/opt/ml"


def parse_number(
    value: Any,
    what: str,
    *,
    whole: bool = False,
    minimum: Optional[Number] = None,
    maximum: Optional[Number] = None,
    example: Any = None,
    error: type[ToolkitError] = ConfigError,
) -> Number:
    """``value`` (text or a number) as a finite int (``whole=True``) or float within
    [``minimum``, ``maximum``]; else ``error`` naming ``what`` (e.g. ``TOOLKIT_X='nan'``).
    For numbers that are not variables too (counts in hyperparameters)."""
    kind = "a whole number" if whole else "a number"
    hint = f"; expected e.g. {example}" if example is not None else ""
    if isinstance(value, bool):
        raise error(f"{what} is not {kind}{hint}")
    try:
        number = float(str(value).strip()) if not isinstance(value, (int, float)) else value
    except ValueError:
        raise error(f"{what} is not {kind}{hint}") from None
    if not math.isfinite(number):
        raise error(f"{what} is not a finite number{hint}")
    if whole:
        if number != int(number) or (isinstance(value, str) and not value.strip().lstrip("+-").isdigit()):
            raise error(f"{what} is not {kind}{hint}")
        number = int(number)
    if minimum is not None and number < minimum:
        raise error(f"{what} is below {minimum}{hint}")
    if maximum is not None and number > maximum:
        raise error(f"{what} is above {maximum}{hint}")
    return number


TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def parse_bool(value: Any, what: str) -> bool:
    """The one boolean parser: true/false, 1/0, yes/no, on/off in any case (a JSON boolean from
    a hyperparameter as it is); anything else is a ``ConfigError`` naming ``what``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ConfigError(f"{what} is neither true nor false; expected e.g. true or false")


def parse_level(value: Any, what: str) -> int:
    """A log level as a number (``20``) or a name (``INFO``, any case)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if text.upper() in LEVELS:
        return LEVELS[text.upper()]
    raise ConfigError(f"{what} is not a log level; expected a number or a name, e.g. 20 or INFO")


class Setting:
    """One row of the table. ``kind`` names its parser (see ``PARSERS``); ``commands`` the
    commands that read it, space-separated (train, process, serve, local, submit, or a launcher
    plugin); ``group`` the section of docs/environment.md; ``shown`` the default as the doc
    says it when ``default`` alone does not tell (a default computed at run time, a fallback)."""

    __slots__ = ("choices", "commands", "default", "doc", "group", "kind", "maximum", "minimum", "name", "shown")

    def __init__(self, name: str, default: Any, kind: str, commands: str, group: str, doc: str, *,
                 minimum: Optional[Number] = None, maximum: Optional[Number] = None,
                 choices: tuple[str, ...] = (), shown: Optional[str] = None) -> None:
        self.name, self.default, self.kind, self.commands, self.group, self.doc = (
            name, default, kind, commands, group, doc)
        self.minimum, self.maximum, self.choices, self.shown = minimum, maximum, choices, shown

    def parse(self, raw: str) -> Any:
        """``raw`` (a non-empty value of the variable) as this setting's kind."""
        return PARSERS[self.kind](self, raw.strip(), f"{self.name}={raw!r}")

    def example(self) -> str:
        value = self.default
        if value is None or value == ():
            value = self.choices[0] if self.choices else (self.minimum if self.minimum else 1)
        if isinstance(value, bool):
            value = "true" if value else "false"
        return f"{self.name}={value:g}" if isinstance(value, float) else f"{self.name}={value}"


def _number(row: Setting, raw: str, what: str, whole: bool) -> Number:
    return parse_number(raw, what, whole=whole, minimum=row.minimum, maximum=row.maximum, example=row.example())


def _seconds(row: Setting, raw: str, what: str) -> float:
    return float(_number(row, raw, what, False))


def _positive(row: Setting, raw: str, what: str) -> float:
    value = _seconds(row, raw, what)
    if value <= 0:
        raise ConfigError(f"{what} is not above 0; expected e.g. {row.example()}")
    return value


def _whole(row: Setting, raw: str, what: str) -> int:
    return int(_number(row, raw, what, True))


def _choice(row: Setting, raw: str, what: str) -> str:
    for choice in row.choices:
        if raw.lower() == choice.lower():
            return choice
    raise ConfigError(f"{what} is not one of: {', '.join(row.choices)}; expected e.g. {row.example()}")


def _names(row: Setting, raw: str, what: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _port_range(row: Setting, raw: str, what: str) -> tuple[int, int]:
    low, sep, high = raw.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit() or int(low) > int(high):
        raise ConfigError(f"{what} is not a range like 20000-20999")
    return int(low), int(high)


PARSERS: dict[str, Callable[[Setting, str, str], Any]] = {
    "text": lambda row, raw, what: raw,
    "path": lambda row, raw, what: raw,
    "bool": lambda row, raw, what: parse_bool(raw, what),
    "int": _whole,
    "port": _whole,  # rows of this kind have maximum 65535
    "seconds": _seconds,  # of at least minimum (0 when it means "no limit")
    "number": _seconds,  # a fraction allowed (milliseconds, when the name says so)
    "interval": _positive,  # seconds above 0: a poll or sync interval
    "choice": _choice,
    "names": _names,
    "level": lambda row, raw, what: parse_level(raw, what),
    "range": _port_range,
}

# The sections of docs/environment.md, in order (each has a marker there; see tools/environment_doc.py).
GROUPS = ("sagemaker", "toolkit", "serve", "fetch", "local", "plugins")
JOB = "train process serve"
GIB = 1024**3

TABLE: dict[str, Setting] = {row.name: row for row in (
    # -- SageMaker's contract -----------------------------------------------------------------------
    Setting("SAGEMAKER_BASE_DIR", DEFAULT_BASE_DIR, "path", JOB, "sagemaker",
            "Root of the SageMaker folder layout: `input/` (`train`), `config/` and `processing/` (`process`), "
            "`model/` (`serve`), `code/`, `output/`. For `process`, paths the job names under `/opt/ml` are "
            "reported under it."),
    Setting("SAGEMAKER_PROGRAM", None, "path", "train serve", "sagemaker",
            "The entry point (`train`; it wins over the hyperparameter, as in sagemaker-training) or the "
            "inference module (`serve`), a name inside the code folder.",
            shown="`train`: hyperparameter `sagemaker_program`; `serve`: `inference.py`"),
    Setting("SAGEMAKER_SUBMIT_DIRECTORY", None, "text", JOB, "sagemaker",
            "Where the code is: a folder, an archive, or any URI a fetcher accepts (`s3://`, `git+https://`, "
            "`https://`, `file://`), fetched at start (then its `requirements.txt` is installed). For `train` "
            "the hyperparameter `sagemaker_submit_directory` wins over it, so a Dockerfile `ENV` is only a "
            "default; for `process`, when unset, a `sourcedir.tar.gz` beside a missing entry point is extracted.",
            shown="`train`: `/opt/ml/code`; `serve`: `<base>/model/code`"),
    Setting("SAGEMAKER_CONTAINER_LOG_LEVEL", None, "level", JOB, "sagemaker",
            "Log level (number or name); for `train` the hyperparameter `sagemaker_container_log_level` wins.",
            shown="`TOOLKIT_LOG_LEVEL`"),
    Setting("SAGEMAKER_REGION", None, "text", "train process serve local submit", "sagemaker",
            "The region when the hyperparameter `sagemaker_region` is absent; then `AWS_REGION`, then "
            "`AWS_DEFAULT_REGION` (the same order everywhere: the jobs, the S3 fetcher, the emulator, "
            "`toolkit submit`).", shown="boto3's (emulator: `us-east-1`; submit: the profile's)"),
    Setting("AWS_REGION", None, "text", "train process serve local submit", "sagemaker",
            "See `SAGEMAKER_REGION`."),
    Setting("AWS_DEFAULT_REGION", None, "text", "train process serve local submit", "sagemaker",
            "See `SAGEMAKER_REGION`."),
    Setting("TRAINING_JOB_NAME", None, "text", "train", "sagemaker", "The job's name (SageMaker sets it).",
            shown="hyperparameter `sagemaker_job_name`"),
    Setting("SAGEMAKER_TRAINING_MODULE", None, "text", "train", "sagemaker",
            "Reported as `SM_FRAMEWORK_MODULE`, as sagemaker-training does."),
    # -- the toolkit's own, in every job ------------------------------------------------------------
    Setting("TOOLKIT_LOG_LEVEL", INFO, "level", "train process serve local", "toolkit",
            "Log level when `SAGEMAKER_CONTAINER_LOG_LEVEL` (and for `train` the hyperparameter) is not set; "
            "the emulator's own level.", shown="`20` (INFO)"),
    Setting("TOOLKIT_PLUGINS", (), "names", JOB, "toolkit",
            "Comma-separated allow-list of installed plugins (built-ins always load).", shown="all"),
    Setting("TOOLKIT_DISABLE_PLUGINS", (), "names", JOB, "toolkit",
            "Comma-separated plugins to skip, built-in ones included.", shown="none"),
    Setting("TOOLKIT_TRACE_PLUGINS", False, "bool", JOB, "toolkit", "Log every hook call and its result."),
    Setting("TOOLKIT_STOP_GRACE_SECONDS", 110.0, "seconds", "train process", "toolkit",
            "Seconds between forwarding SIGTERM to the job's process group (or pip's) and SIGKILL "
            "(SageMaker kills the container 120 s after SIGTERM).", minimum=0),
    Setting("TOOLKIT_REQUIREMENTS", None, "path", "train process local", "toolkit",
            "Requirements file the installers get as `requirements` (an SDK v3 `sourcecode.json`'s "
            "`requirements` wins).", shown="`requirements.txt`"),
    Setting("TOOLKIT_LAUNCHER", None, "text", "train", "toolkit",
            "`torchrun` or `mpi` picks that launcher whatever the hyperparameters say; any other value turns "
            "both off ([distributed.md](distributed.md))."),
    # -- serve ----------------------------------------------------------------------------------------
    Setting("SAGEMAKER_BIND_TO_PORT", 8080, "port", "serve", "serve", "The HTTP port.", minimum=0, maximum=65535),
    Setting("SAGEMAKER_SAFE_PORT_RANGE", None, "range", "serve", "serve",
            "Ports a container may use for internal traffic (e.g. `20000-20999`); validated and kept in "
            "`ServingEnv` for plugins. `serve` opens no second port unless `TOOLKIT_METRICS_PORT` is set."),
    Setting("TOOLKIT_BIND_HOST", "0.0.0.0", "text", "serve", "serve",
            "The address to listen on (`127.0.0.1` for tests and local use)."),
    Setting("SAGEMAKER_MODEL_SERVER_WORKERS", None, "int", "serve", "serve", "Worker processes.",
            minimum=1, shown="number of CPUs"),
    Setting("TOOLKIT_SERVER_THREADS", 8, "int", "serve", "serve",
            "Request threads per worker (waitress; 8 rather than waitress's 4 halves p99 at 16 connections, "
            "see benchmarks.md).", minimum=1),
    Setting("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60.0, "seconds", "serve", "serve",
            "Time limit per request **in seconds** (Multi Model Server read it as minutes); past it the client "
            "gets 504. `0` turns the limit off.", minimum=0),
    Setting("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6, "int", "serve", "serve",
            "Largest request body; bigger gets 413. `0`: no limit (chunked Batch Transform bodies).", minimum=0),
    Setting("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json", "text", "serve", "serve",
            "Response type when Accept is missing or `*/*`."),
    Setting("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", 1, "int", "serve", "serve",
            "Reported by GET /execution-parameters.", minimum=1),
    Setting("SAGEMAKER_BATCH_STRATEGY", "MULTI_RECORD", "choice", "serve", "serve",
            "Reported by GET /execution-parameters.", choices=("MULTI_RECORD", "SINGLE_RECORD")),
    Setting("TOOLKIT_IDLE_SECONDS", 120.0, "seconds", "serve", "serve",
            "A connection with no request in progress (before its first byte, between kept-alive requests, or "
            "a client not reading its answer) is closed after this many seconds without traffic. Kept above "
            "the front end's own keep-alive time, so that the server does not close a connection the front end "
            "is about to reuse. `0`: never.", minimum=0),
    Setting("TOOLKIT_HEADER_SECONDS", 20.0, "seconds", "serve", "serve",
            "A request's line and headers must all arrive within this many seconds of its first byte; past it "
            "the client gets 408 and the connection is closed (slowloris). `0`: no limit.", minimum=0),
    Setting("TOOLKIT_BODY_SECONDS", 60.0, "seconds", "serve", "serve",
            "A request's body must all arrive within this many seconds of the end of its headers; past it 408 "
            "and closed. Raise it for large bodies from slow clients. `0`: no limit.", minimum=0),
    Setting("TOOLKIT_SERVE_STOP_SECONDS", 28.0, "seconds", "serve", "serve",
            "After SIGTERM: workers finish in-flight requests until 2 s before this, and a worker still alive "
            "at it gets SIGKILL (SageMaker kills the container 30 s after SIGTERM).", minimum=0),
    Setting("TOOLKIT_PRELOAD_MODEL", False, "bool", "serve", "serve",
            "Load the model in the supervisor before forking, so the workers share its memory."),
    Setting("TOOLKIT_LOG_PING", False, "bool", "serve", "serve", "Log an access line for every /ping too."),
    Setting("TOOLKIT_ACCESS_LOG", True, "bool", "serve", "serve",
            "One line per request: client, method, path, status, bytes, milliseconds, model, inference id "
            "([serving.md](serving.md#access-log)). `false`: none."),
    Setting("TOOLKIT_METRICS_PORT", 0, "port", "serve", "serve",
            "Serve Prometheus metrics, summed over all workers, on this port (any path, e.g. `/metrics`), on "
            "`TOOLKIT_BIND_HOST` ([serving.md](serving.md#metrics)).", minimum=0, maximum=65535,
            shown="`0` (off)"),
    Setting("TOOLKIT_MAX_BATCH_SIZE", 1, "int", "serve", "serve",
            "Dynamic batching for every model whose inference.py does not set `max_batch_size`: up to this "
            "many requests predicted in one call ([serving.md](serving.md#dynamic-batching)). Workers then run "
            "at least twice as many request threads.", minimum=1, shown="`1` (off)"),
    Setting("TOOLKIT_MAX_BATCH_WAIT_MS", 5.0, "number", "serve", "serve",
            "How long the first request of a batch waits for more, in milliseconds, for models whose "
            "inference.py does not set `max_batch_wait_ms`.", minimum=0),
    Setting("TOOLKIT_MAX_REQUESTS", 0, "int", "serve", "serve",
            "Replace a worker after it has answered this many requests, as gunicorn's `max_requests` "
            "([serving.md](serving.md#worker-recycling)).", minimum=0, shown="`0` (never)"),
    Setting("TOOLKIT_MAX_REQUESTS_JITTER", 0, "int", "serve", "serve",
            "Add a random 0 to this many requests to each worker's `TOOLKIT_MAX_REQUESTS`, so that workers are "
            "not replaced all at once.", minimum=0),
    Setting("TOOLKIT_GIL_SWITCH_MS", 0.0, "number", "serve", "serve",
            "How long a worker's thread may hold the GIL while another waits for it (`sys.setswitchinterval`), "
            "for experiments with the p99 tail ([serving.md](serving.md#the-tail)): 1 ms lowered p99 in two "
            "runs out of four and cost 4-8 % of throughput in every one.", minimum=0,
            shown="`0` (Python's 5 ms)"),
    Setting("TOOLKIT_MAX_RSS_MB", 0, "int", "serve", "serve",
            "Replace a worker whose resident memory passes this many MB (looked at every second).", minimum=0,
            shown="`0` (never)"),
    Setting("SAGEMAKER_MULTI_MODEL", False, "bool", "serve local", "serve",
            "`true`: a multi-model endpoint; models are loaded and unloaded through the /models API "
            "([serving.md](serving.md#multi-model-endpoints)), `<base>/model` is not loaded."),
    Setting("TOOLKIT_MAX_MODELS", 0, "int", "serve", "serve",
            "Multi-model: at most this many models loaded at once; one more is refused with 507 (SageMaker "
            "then unloads one and retries). `0`: no limit.", minimum=0),
    Setting("TOOLKIT_PROBE_MODEL_LOADS", True, "bool", "serve", "serve",
            "Multi-model: load each model once in a throwaway process before the workers load it, so that a "
            "`model_fn` or import that ends its process (`os._exit`, a segfault) is a 500 naming it instead of "
            "dead workers and a dropped connection. Costs the model's load time once more per load; `false` "
            "skips it."),
    Setting("TOOLKIT_MEMORY_HEADROOM_MB", 512, "int", "serve", "serve",
            "Multi-model: a load is refused with 507 while less than this much memory is available (the smaller "
            "of MemAvailable and what the container's cgroup limit leaves, page cache not counted). `0`: no "
            "check.", minimum=0),
    # -- remote code: fetchers and installers -------------------------------------------------------
    Setting("TOOLKIT_MAX_EXTRACT_BYTES", 20 * GIB, "int", JOB, "fetch",
            "Archives (and S3 prefixes, single downloads) larger than this, counted from the member headers, "
            "are refused (tar bombs).", minimum=1, shown="20 GiB"),
    Setting("TOOLKIT_MAX_EXTRACT_MEMBERS", 1_000_000, "int", JOB, "fetch",
            "Archives with more members (prefixes with more objects) are refused.", minimum=1,
            shown="1,000,000"),
    Setting("TOOLKIT_MAX_EXTRACT_RATIO", 100, "int", JOB, "fetch",
            "Compressed archives that expand more than this many times their compressed size (judged past "
            "64 MiB) are refused while they inflate; `0`: no ratio limit. Expansion beyond the destination's "
            "free space is refused too.", minimum=0),
    Setting("TOOLKIT_FETCH_ATTEMPTS", 4, "int", JOB, "fetch",
            "Attempts for an S3 or https download (5xx, throttling, dropped connections), with backoff 0.5 s, "
            "1 s, 2 s ...", minimum=1),
    Setting("TOOLKIT_CACHE_DIR", None, "path", "train process serve local", "fetch",
            "Where pip (`pip/`) and uv (`uv/`) keep downloads, so a warm-pool job or a re-run downloads nothing.",
            shown="`$SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY/sagemaker-toolkit`, else "
                  "`/tmp/sagemaker-toolkit-cache`"),
    Setting("SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY", None, "path", JOB, "fetch",
            "SageMaker's persistent cache of a warm-pool job; the default home of the cache."),
    Setting("TOOLKIT_INSTALLER", "pip", "choice", "train process serve local", "fetch",
            "`uv` installs with `uv pip install` when uv is installed (else pip, with a warning).",
            choices=("pip", "uv")),
    # -- the emulator and submit (on this machine, not in the job) ---------------------------------
    Setting("TOOLKIT_LOCAL_DIR", None, "path", "local", "local",
            "Work folder for job folders (`--workdir` wins); also the default output path.",
            shown="`<tmp>/toolkit-local`"),
    Setting("TOOLKIT_LOCAL_SYNC_SECONDS", 5.0, "interval", "local", "local",
            "Seconds between uploads of checkpoints and intermediate output while a job runs."),
    Setting("TOOLKIT_CHECKPOINT_DIR", None, "path", "local", "local",
            "Given to every local job: the real path of its checkpoint folder (in-process `<host "
            "folder>/checkpoints` for `/opt/ml/checkpoints`).", shown="(set by the emulator)"),
    Setting("TOOLKIT_SUBMIT_POLL_SECONDS", 5.0, "interval", "submit", "local",
            "`toolkit submit --wait`, `toolkit logs --wait`: seconds between reads of the job's status and "
            "logs ([submit.md](submit.md))."),
    # -- the first-party launcher plugins ------------------------------------------------------------
    Setting("TOOLKIT_MASTER_PORT", 7777, "port", "torchrun", "plugins",
            "torchrun's rendezvous port on the first host; the next port is the node helpers' coordinator.",
            minimum=1, maximum=65535),
    Setting("TOOLKIT_TORCHRUN_COORDINATOR_PORT", None, "port", "torchrun", "plugins",
            "Port of the torchrun node helpers' coordinator.", minimum=1, maximum=65535,
            shown="master port + 1"),
    Setting("TOOLKIT_TORCHRUN_WAIT_SECONDS", 300, "int", "torchrun", "plugins",
            "How long each host retries reaching the coordinator.", minimum=1),
    Setting("TOOLKIT_SSH_DIR", None, "path", "mpi", "plugins",
            "MPI: folder of the SSH key (made if absent) and `authorized_keys`.", shown="`$HOME/.ssh`"),
    Setting("TOOLKIT_SSH_PORT", 22, "port", "mpi", "plugins",
            "MPI: port sshd listens on and mpirun connects to.", minimum=1, maximum=65535),
    Setting("TOOLKIT_MPI_STATE_DIR", "/tmp/toolkit-mpi", "path", "mpi", "plugins",
            "MPI: where the master writes each host's final exit code."),
    Setting("TOOLKIT_MPI_WAIT_SECONDS", 300, "int", "mpi", "plugins",
            "MPI: how long the master retries each host's name and SSH.", minimum=1),
    Setting("TOOLKIT_MPI_START_TIMEOUT", 3600, "int", "mpi", "plugins",
            "MPI: how long a worker host waits for mpirun to reach it.", minimum=1),
    Setting("TOOLKIT_MPI_REPORT_GRACE", 60, "int", "mpi", "plugins",
            "MPI: how long a worker waits for the master's report once mpirun's daemon on it has ended.",
            minimum=1),
)}


def _raw(environ: Mapping[str, Any], name: str) -> str:
    value = environ.get(name)
    return "" if value is None else str(value)


def read(environ: Mapping[str, Any], name: str) -> Any:
    """The setting ``name`` from ``environ`` (os.environ, a job's environment, a settings view),
    parsed by its kind; its default when unset or empty. A name not in ``TABLE`` is a bug: KeyError."""
    row = TABLE[name]
    raw = _raw(environ, name)
    return row.parse(raw) if raw.strip() else row.default


def is_set(environ: Mapping[str, Any], name: str) -> bool:
    """Whether ``name`` (a row of ``TABLE``) is given a non-empty value, for a caller that does
    something only when the user chose (pass an option on, keep a default of its own)."""
    return bool(_raw(environ, TABLE[name].name).strip())


def check(environ: Mapping[str, Any], command: str) -> None:
    """Parse every setting ``command`` reads, so a bad one stops it at once (``train``: before the
    code is fetched, whatever step would have read it)."""
    for row in TABLE.values():
        if command in row.commands.split():
            read(environ, row.name)


def log_level(environ: Mapping[str, Any], hyperparameter: Any = None) -> int:
    """The job's log level, the one place it is resolved: the hyperparameter
    ``sagemaker_container_log_level`` (``train``), else SAGEMAKER_CONTAINER_LOG_LEVEL, else
    TOOLKIT_LOG_LEVEL, else INFO."""
    if hyperparameter not in (None, ""):
        return parse_level(hyperparameter, f"sagemaker_container_log_level={hyperparameter!r}")
    level = read(environ, "SAGEMAKER_CONTAINER_LOG_LEVEL")
    return read(environ, "TOOLKIT_LOG_LEVEL") if level is None else int(level)


def startup_log_level(environ: Mapping[str, Any]) -> int:
    """``log_level`` for the lines before the configuration is read; INFO when a level is bad (the
    configuration's read then refuses it, with exit 2 and one line)."""
    try:
        return log_level(environ)
    except ConfigError:
        return INFO


def region(environ: Mapping[str, Any], hyperparameter: Any = None) -> str:
    """The region, the one place it is resolved: the hyperparameter ``sagemaker_region``, else
    SAGEMAKER_REGION, AWS_REGION, AWS_DEFAULT_REGION, the first set; "" when none is."""
    if hyperparameter not in (None, ""):
        return str(hyperparameter)
    return str(read(environ, "SAGEMAKER_REGION") or read(environ, "AWS_REGION")
               or read(environ, "AWS_DEFAULT_REGION") or "")


def base_dir(environ: Mapping[str, Any], given: Optional[str] = None) -> Path:
    """The SageMaker folder layout's root: ``given`` (a --base-dir), else SAGEMAKER_BASE_DIR, else /opt/ml."""
    return Path(given or read(environ, "SAGEMAKER_BASE_DIR"))
