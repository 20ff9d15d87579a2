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

``train`` imports this module on every job start: the table is plain tuples of constants, which
cost next to nothing to build (objects with named fields cost ten times more, about 40 us).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

from toolkit.errors import ConfigError
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
) -> Number:
    """``value`` (text or a number) as a finite int (``whole=True``) or float within
    [``minimum``, ``maximum``]; else a ``ConfigError`` naming ``what`` (e.g. ``TOOLKIT_X='nan'``).
    For numbers that are not variables too (counts in hyperparameters)."""
    kind = "a whole number" if whole else "a number"
    hint = f"; expected e.g. {example}" if example is not None else ""
    if isinstance(value, bool):
        raise ConfigError(f"{what} is not {kind}{hint}")
    try:
        number = float(str(value).strip()) if not isinstance(value, (int, float)) else value
    except ValueError:
        raise ConfigError(f"{what} is not {kind}{hint}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{what} is not a finite number{hint}")
    if whole:
        if number != int(number) or (isinstance(value, str) and not value.strip().lstrip("+-").isdigit()):
            raise ConfigError(f"{what} is not {kind}{hint}")
        number = int(number)
    if minimum is not None and number < minimum:
        raise ConfigError(f"{what} is below {minimum}{hint}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{what} is above {maximum}{hint}")
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


# One row per variable:  NAME: (default, kind, allowed, commands, group, doc[, shown])
#   kind      the parser (see PARSERS): text, path, bool, int, port, seconds, number, interval, choice,
#             names (a comma-separated list), level (a log level), range (ports like 20000-20999)
#   allowed   (minimum, maximum) of a number, either None for no bound; the choices of a "choice"
#   commands  the commands that read it, space-separated: train, process, serve, local, submit, or the
#             launcher plugin (torchrun, mpi); ``check`` parses a command's rows when it starts
#   group     its section of docs/environment.md (GROUPS)
#   doc       one line for docs/environment.md
#   shown     the default as the doc says it, when the default alone does not tell (computed at run time,
#             a fallback to another variable)
# Plain tuples, not objects: the table costs next to nothing to build on every `train` start.
Row = tuple[Any, ...]
GROUPS = ("sagemaker", "toolkit", "serve", "fetch", "local", "plugins")

TABLE: dict[str, Row] = {
    # -- SageMaker's contract --------------------------------------------------------------------------------
    "SAGEMAKER_BASE_DIR": (DEFAULT_BASE_DIR, "path", None, "train process serve", "sagemaker",
        "Root of the SageMaker folder layout: `input/` (`train`), `config/` and `processing/` (`process`), "
        "`model/` (`serve`), `code/`, `output/`. For `process`, paths the job names under `/opt/ml` are "
        "reported under it."),
    "SAGEMAKER_PROGRAM": (None, "path", None, "train serve", "sagemaker",
        "The entry point (`train`; it wins over the hyperparameter, as in sagemaker-training) or the "
        "inference module (`serve`), a name inside the code folder.",
        "`train`: hyperparameter `sagemaker_program`; `serve`: `inference.py`"),
    "SAGEMAKER_SUBMIT_DIRECTORY": (None, "text", None, "train process serve", "sagemaker",
        "Where the code is: a folder, an archive, or any URI a fetcher accepts (`s3://`, `git+https://`, "
        "`https://`, `file://`), fetched at start (then its `requirements.txt` is installed). For `train` the"
        " hyperparameter `sagemaker_submit_directory` wins over it, so a Dockerfile `ENV` is only a default; "
        "for `process`, when unset, a `sourcedir.tar.gz` beside a missing entry point is extracted.",
        "`train`: `/opt/ml/code`; `serve`: `<base>/model/code`"),
    "SAGEMAKER_CONTAINER_LOG_LEVEL": (None, "level", None, "train process serve", "sagemaker",
        "Log level (number or name); for `train` the hyperparameter `sagemaker_container_log_level` wins.",
        "`TOOLKIT_LOG_LEVEL`"),
    "SAGEMAKER_REGION": (None, "text", None, "train process serve local submit", "sagemaker",
        "The region when the hyperparameter `sagemaker_region` is absent; then `AWS_REGION`, then "
        "`AWS_DEFAULT_REGION` (the same order everywhere: the jobs, the S3 fetcher, the emulator, `toolkit "
        "submit`).",
        "boto3's (emulator: `us-east-1`; submit: the profile's)"),
    "AWS_REGION": (None, "text", None, "train process serve local submit", "sagemaker",
        "See `SAGEMAKER_REGION`."),
    "AWS_DEFAULT_REGION": (None, "text", None, "train process serve local submit", "sagemaker",
        "See `SAGEMAKER_REGION`."),
    "TRAINING_JOB_NAME": (None, "text", None, "train", "sagemaker",
        "The job's name (SageMaker sets it).",
        "hyperparameter `sagemaker_job_name`"),
    "SAGEMAKER_TRAINING_MODULE": (None, "text", None, "train", "sagemaker",
        "Reported as `SM_FRAMEWORK_MODULE`, as sagemaker-training does."),
    # -- the toolkit's own, in every job ---------------------------------------------------------------------
    "TOOLKIT_LOG_LEVEL": (INFO, "level", None, "train process serve local", "toolkit",
        "Log level when `SAGEMAKER_CONTAINER_LOG_LEVEL` (and for `train` the hyperparameter) is not set; the "
        "emulator's own level.",
        "`20` (INFO)"),
    "TOOLKIT_PLUGINS": ((), "names", None, "train process serve", "toolkit",
        "Comma-separated allow-list of installed plugins (built-ins always load).",
        "all"),
    "TOOLKIT_DISABLE_PLUGINS": ((), "names", None, "train process serve", "toolkit",
        "Comma-separated plugins to skip, built-in ones included.",
        "none"),
    "TOOLKIT_TRACE_PLUGINS": (False, "bool", None, "train process serve", "toolkit",
        "Log every hook call and its result."),
    "TOOLKIT_STOP_GRACE_SECONDS": (110.0, "seconds", (0, None), "train process", "toolkit",
        "Seconds between forwarding SIGTERM to the job's process group (or pip's) and SIGKILL (SageMaker "
        "kills the container 120 s after SIGTERM)."),
    "TOOLKIT_REQUIREMENTS": (None, "path", None, "train process local", "toolkit",
        "Requirements file the installers get as `requirements` (an SDK v3 `sourcecode.json`'s `requirements`"
        " wins).",
        "`requirements.txt`"),
    "TOOLKIT_LAUNCHER": (None, "text", None, "train", "toolkit",
        "`torchrun` or `mpi` picks that launcher whatever the hyperparameters say; any other value turns both"
        " off ([distributed.md](distributed.md))."),
    # -- serve -----------------------------------------------------------------------------------------------
    "SAGEMAKER_BIND_TO_PORT": (8080, "port", (0, 65535), "serve", "serve",
        "The HTTP port."),
    "SAGEMAKER_SAFE_PORT_RANGE": (None, "range", None, "serve", "serve",
        "Ports a container may use for internal traffic (e.g. `20000-20999`); validated and kept in "
        "`ServingEnv` for plugins. `serve` opens no second port unless `TOOLKIT_METRICS_PORT` is set."),
    "TOOLKIT_BIND_HOST": ("0.0.0.0", "text", None, "serve", "serve",
        "The address to listen on (`127.0.0.1` for tests and local use)."),
    "SAGEMAKER_MODEL_SERVER_WORKERS": (None, "int", (1, None), "serve", "serve",
        "Worker processes.",
        "number of CPUs"),
    "TOOLKIT_SERVER_THREADS": (8, "int", (1, None), "serve", "serve",
        "Requests one worker runs at once, each on a thread of its own while it runs past "
        "`TOOLKIT_LOOP_HANDOFF_MS` or waits in a batch; quicker ones are answered by the event loop's thread "
        "([serving.md](serving.md#the-event-loop))."),
    "TOOLKIT_LOOP_HANDOFF_MS": (20.0, "number", (0, None), "serve", "serve",
        "A request still running after this long on the thread of a worker's event loop leaves the loop to "
        "another thread, so that the worker's other connections are served meanwhile "
        "([serving.md](serving.md#the-event-loop)).",
        "`0`: hand every request to a request thread at once (waitress's own design)"),
    "SAGEMAKER_MODEL_SERVER_TIMEOUT": (60.0, "seconds", (0, None), "serve", "serve",
        "Time limit per request **in seconds** (Multi Model Server read it as minutes); past it the client "
        "gets 504. `0` turns the limit off."),
    "SAGEMAKER_MAX_PAYLOAD_IN_MB": (6, "int", (0, None), "serve", "serve",
        "Largest request body; bigger gets 413. `0`: no limit (chunked Batch Transform bodies)."),
    "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": ("application/json", "text", None, "serve", "serve",
        "Response type when Accept is missing or `*/*`."),
    "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": (1, "int", (1, None), "serve", "serve",
        "Reported by GET /execution-parameters."),
    "SAGEMAKER_BATCH_STRATEGY": ("MULTI_RECORD", "choice", ("MULTI_RECORD", "SINGLE_RECORD"), "serve", "serve",
        "Reported by GET /execution-parameters."),
    "TOOLKIT_IDLE_SECONDS": (120.0, "seconds", (0, None), "serve", "serve",
        "A connection with no request in progress (before its first byte, between kept-alive requests, or a "
        "client not reading its answer) is closed after this many seconds without traffic. Kept above the "
        "front end's own keep-alive time, so that the server does not close a connection the front end is "
        "about to reuse. `0`: never."),
    "TOOLKIT_HEADER_SECONDS": (20.0, "seconds", (0, None), "serve", "serve",
        "A request's line and headers must all arrive within this many seconds of its first byte; past it the"
        " client gets 408 and the connection is closed (slowloris). `0`: no limit."),
    "TOOLKIT_BODY_SECONDS": (60.0, "seconds", (0, None), "serve", "serve",
        "A request's body must all arrive within this many seconds of the end of its headers; past it 408 and"
        " closed. Raise it for large bodies from slow clients. `0`: no limit."),
    "TOOLKIT_SERVE_STOP_SECONDS": (28.0, "seconds", (0, None), "serve", "serve",
        "After SIGTERM: workers finish in-flight requests until 2 s before this, and a worker still alive at "
        "it gets SIGKILL (SageMaker kills the container 30 s after SIGTERM)."),
    "TOOLKIT_PRELOAD_MODEL": (False, "bool", None, "serve", "serve",
        "Load the model in the supervisor before forking, so the workers share its memory."),
    "TOOLKIT_LOG_PING": (False, "bool", None, "serve", "serve",
        "Log an access line for every /ping too."),
    "TOOLKIT_ACCESS_LOG": (True, "bool", None, "serve", "serve",
        "One line per request: client, method, path, status, bytes, milliseconds, model, inference id "
        "([serving.md](serving.md#access-log)). `false`: none."),
    "TOOLKIT_METRICS_PORT": (0, "port", (0, 65535), "serve", "serve",
        "Serve Prometheus metrics, summed over all workers, on this port (any path, e.g. `/metrics`), on "
        "`TOOLKIT_BIND_HOST` ([serving.md](serving.md#metrics)).",
        "`0` (off)"),
    "TOOLKIT_MAX_BATCH_SIZE": (1, "int", (1, None), "serve", "serve",
        "Dynamic batching for every model whose inference.py does not set `max_batch_size`: up to this many "
        "requests predicted in one call ([serving.md](serving.md#dynamic-batching)). Workers then run at "
        "least twice as many request threads.",
        "`1` (off)"),
    "TOOLKIT_MAX_BATCH_WAIT_MS": (5.0, "number", (0, None), "serve", "serve",
        "How long the first request of a batch waits for more, in milliseconds, for models whose inference.py"
        " does not set `max_batch_wait_ms`."),
    "TOOLKIT_MAX_REQUESTS": (0, "int", (0, None), "serve", "serve",
        "Replace a worker after it has answered this many requests, as gunicorn's `max_requests` "
        "([serving.md](serving.md#worker-recycling)).",
        "`0` (never)"),
    "TOOLKIT_MAX_REQUESTS_JITTER": (0, "int", (0, None), "serve", "serve",
        "Add a random 0 to this many requests to each worker's `TOOLKIT_MAX_REQUESTS`, so that workers are "
        "not replaced all at once."),
    "TOOLKIT_GIL_SWITCH_MS": (0.0, "number", (0, None), "serve", "serve",
        "How long a worker's thread may hold the GIL while another waits for it (`sys.setswitchinterval`), "
        "for experiments with the p99 tail ([serving.md](serving.md#the-tail)): 1 ms lowered p99 in two runs "
        "out of four and cost 4-8 % of throughput in every one.",
        "`0` (Python's 5 ms)"),
    "TOOLKIT_GC_FREEZE": (True, "bool", None, "serve", "serve",
        "Once the model is loaded, keep Python's garbage collector from walking what is alive then "
        "(`gc.freeze()`): its full collections stopped a worker holding torch for ~100 ms each "
        "([serving.md](serving.md#the-tail)). `false`: collect as Python does."),
    "TOOLKIT_MAX_RSS_MB": (0, "int", (0, None), "serve", "serve",
        "Replace a worker whose resident memory passes this many MB (looked at every second).",
        "`0` (never)"),
    "SAGEMAKER_MULTI_MODEL": (False, "bool", None, "serve local", "serve",
        "`true`: a multi-model endpoint; models are loaded and unloaded through the /models API "
        "([serving.md](serving.md#multi-model-endpoints)), `<base>/model` is not loaded."),
    "TOOLKIT_MAX_MODELS": (0, "int", (0, None), "serve", "serve",
        "Multi-model: at most this many models loaded at once; one more is refused with 507 (SageMaker then "
        "unloads one and retries). `0`: no limit."),
    "TOOLKIT_PROBE_MODEL_LOADS": (True, "bool", None, "serve", "serve",
        "Multi-model: load each model once in a throwaway process before the workers load it, so that a "
        "`model_fn` or import that ends its process (`os._exit`, a segfault) is a 500 naming it instead of "
        "dead workers and a dropped connection. Costs the model's load time once more per load; `false` skips"
        " it."),
    "TOOLKIT_MEMORY_HEADROOM_MB": (512, "int", (0, None), "serve", "serve",
        "Multi-model: a load is refused with 507 while less than this much memory is available (the smaller "
        "of MemAvailable and what the container's cgroup limit leaves, page cache not counted). `0`: no "
        "check."),
    # -- remote code: fetchers and installers ----------------------------------------------------------------
    "TOOLKIT_MAX_EXTRACT_BYTES": (20 * 1024**3, "int", (1, None), "train process serve", "fetch",
        "Archives (and S3 prefixes, single downloads) larger than this, counted from the member headers, are "
        "refused (tar bombs).",
        "20 GiB"),
    "TOOLKIT_MAX_EXTRACT_MEMBERS": (1_000_000, "int", (1, None), "train process serve", "fetch",
        "Archives with more members (prefixes with more objects) are refused.",
        "1,000,000"),
    "TOOLKIT_MAX_EXTRACT_RATIO": (100, "int", (0, None), "train process serve", "fetch",
        "Compressed archives that expand more than this many times their compressed size (judged past 64 MiB)"
        " are refused while they inflate; `0`: no ratio limit. Expansion beyond the destination's free space "
        "is refused too."),
    "TOOLKIT_FETCH_ATTEMPTS": (4, "int", (1, None), "train process serve", "fetch",
        "Attempts for an S3 or https download (5xx, throttling, dropped connections), with backoff 0.5 s, 1 "
        "s, 2 s ..."),
    "TOOLKIT_CACHE_DIR": (None, "path", None, "train process serve local", "fetch",
        "Where pip (`pip/`) and uv (`uv/`) keep downloads, so a warm-pool job or a re-run downloads nothing.",
        "`$SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY/sagemaker-toolkit`, else `/tmp/sagemaker-toolkit-cache`"),
    "SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY": (None, "path", None, "train process serve", "fetch",
        "SageMaker's persistent cache of a warm-pool job; the default home of the cache."),
    "TOOLKIT_INSTALLER": ("pip", "choice", ("pip", "uv"), "train process serve local", "fetch",
        "`uv` installs with `uv pip install` when uv is installed (else pip, with a warning)."),
    # -- the emulator and submit (on this machine, not in the job) -------------------------------------------
    "TOOLKIT_LOCAL_DIR": (None, "path", None, "local", "local",
        "Work folder for job folders (`--workdir` wins); also the default output path.",
        "`<tmp>/toolkit-local`"),
    "TOOLKIT_LOCAL_SYNC_SECONDS": (5.0, "interval", None, "local", "local",
        "Seconds between uploads of checkpoints and intermediate output while a job runs."),
    "TOOLKIT_CHECKPOINT_DIR": (None, "path", None, "local", "local",
        "Given to every local job: the real path of its checkpoint folder (in-process `<host "
        "folder>/checkpoints` for `/opt/ml/checkpoints`).",
        "(set by the emulator)"),
    "TOOLKIT_SUBMIT_POLL_SECONDS": (5.0, "interval", None, "submit", "local",
        "`toolkit submit --wait`, `toolkit logs --wait`: seconds between reads of the job's status and logs "
        "([submit.md](submit.md))."),
    # -- the first-party launcher plugins (toolkit-torchrun, toolkit-mpi) ------------------------------------
    "TOOLKIT_MASTER_PORT": (7777, "port", (1, 65535), "torchrun", "plugins",
        "torchrun's rendezvous port on the first host; the next port is the node helpers' coordinator."),
    "TOOLKIT_TORCHRUN_COORDINATOR_PORT": (None, "port", (1, 65535), "torchrun", "plugins",
        "Port of the torchrun node helpers' coordinator.",
        "master port + 1"),
    "TOOLKIT_TORCHRUN_WAIT_SECONDS": (300, "int", (1, None), "torchrun", "plugins",
        "How long each host retries reaching the coordinator."),
    "TOOLKIT_SSH_DIR": (None, "path", None, "mpi", "plugins",
        "MPI: folder of the SSH key (made if absent) and `authorized_keys`.",
        "`$HOME/.ssh`"),
    "TOOLKIT_SSH_PORT": (22, "port", (1, 65535), "mpi", "plugins",
        "MPI: port sshd listens on and mpirun connects to."),
    "TOOLKIT_MPI_STATE_DIR": ("/tmp/toolkit-mpi", "path", None, "mpi", "plugins",
        "MPI: where the master writes each host's final exit code."),
    "TOOLKIT_MPI_WAIT_SECONDS": (300, "int", (1, None), "mpi", "plugins",
        "MPI: how long the master retries each host's name and SSH."),
    "TOOLKIT_MPI_START_TIMEOUT": (3600, "int", (1, None), "mpi", "plugins",
        "MPI: how long a worker host waits for mpirun to reach it."),
    "TOOLKIT_MPI_REPORT_GRACE": (60, "int", (1, None), "mpi", "plugins",
        "MPI: how long a worker waits for the master's report once mpirun's daemon on it has ended."),
}


def example_of(name: str) -> str:
    """A good value of ``name``, for error messages: ``NAME=default`` (or the first choice, the minimum)."""
    value, _kind, allowed = TABLE[name][:3]
    if value is None or value == ():
        value = (allowed[0] if allowed else None) or 1  # the first choice, the minimum
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"


def _number(name: str, raw: str, what: str, whole: bool) -> Number:
    minimum, maximum = TABLE[name][2] or (None, None)
    return parse_number(raw, what, whole=whole, minimum=minimum, maximum=maximum, example=example_of(name))


def _seconds(name: str, raw: str, what: str) -> float:
    return float(_number(name, raw, what, False))


def _positive(name: str, raw: str, what: str) -> float:
    value = _seconds(name, raw, what)
    if value <= 0:
        raise ConfigError(f"{what} is not above 0; expected e.g. {example_of(name)}")
    return value


def _whole(name: str, raw: str, what: str) -> int:
    return int(_number(name, raw, what, True))


def _choice(name: str, raw: str, what: str) -> str:
    choices = TABLE[name][2]
    for choice in choices:
        if raw.lower() == choice.lower():
            return str(choice)
    raise ConfigError(f"{what} is not one of: {', '.join(choices)}; expected e.g. {example_of(name)}")


def _names(name: str, raw: str, what: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _port_range(name: str, raw: str, what: str) -> tuple[int, int]:
    low, sep, high = raw.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit() or int(low) > int(high):
        raise ConfigError(f"{what} is not a range like 20000-20999")
    return int(low), int(high)


# kind -> parser(name, stripped value, "NAME='value as given'") -> the value
PARSERS: dict[str, Callable[[str, str, str], Any]] = {
    "text": lambda name, raw, what: raw,
    "path": lambda name, raw, what: raw,
    "bool": lambda name, raw, what: parse_bool(raw, what),
    "int": _whole,
    "port": _whole,  # rows of this kind allow at most 65535
    "seconds": _seconds,  # of at least the minimum (0 when it means "no limit")
    "number": _seconds,  # a fraction allowed (milliseconds, when the name says so)
    "interval": _positive,  # seconds above 0: a poll or sync interval
    "choice": _choice,
    "names": _names,
    "level": lambda name, raw, what: parse_level(raw, what),
    "range": _port_range,
}


def _raw(environ: Mapping[str, Any], name: str) -> str:
    value = environ.get(name)
    return "" if value is None else str(value)


def read(environ: Mapping[str, Any], name: str) -> Any:
    """The setting ``name`` from ``environ`` (os.environ, a job's environment, a settings view),
    parsed by its kind; its default when unset or empty. A name not in ``TABLE`` is a bug: KeyError."""
    row = TABLE[name]
    raw = _raw(environ, name)
    if not raw.strip():
        return row[0]
    return PARSERS[row[1]](name, raw.strip(), f"{name}={raw!r}")


def is_set(environ: Mapping[str, Any], name: str) -> bool:
    """Whether ``name`` (a row of ``TABLE``) is given a non-empty value, for a caller that does
    something only when the user chose (pass an option on, keep a default of its own)."""
    TABLE[name]  # a name not in the table is a bug here too
    return bool(_raw(environ, name).strip())


def check(environ: Mapping[str, Any], command: str) -> None:
    """Parse every setting ``command`` reads, so a bad one stops it at once (``train``: before the
    code is fetched, whatever step would have read it)."""
    for name, row in TABLE.items():
        if command in row[3].split():
            read(environ, name)


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
