"""The SageMaker Python SDK v3 (``ModelTrainer``) contract, so one image serves both SDK generations.

v3 uploads the user's source as the ``code`` channel (/opt/ml/input/data/code) and describes it in
``sm_drivers/sourcecode.json``: ``source_dir``, ``entry_script``, ``command``, ``args``,
``requirements``. Its own driver (``sm_drivers/sm_train.sh``, run by ``ContainerEntrypoint
["/bin/bash"]``) runs ``command`` with ``args`` shell-quoted onto it through bash, even when
distributed.json names a launcher (hyperparameters reach a command only through SM_HPS and SM_HP_*),
or the entry script with the hyperparameters as ``--key value`` where strings are passed as they are
and everything else JSON-encoded (``true``, ``[1, 2]``), which differs from the v2 style.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional, Sequence

from toolkit.environment import TrainingEnv, which
from toolkit.errors import ConfigError


class SourceCode(NamedTuple):
    """What sourcecode.json asks for, resolved against the code channel."""

    code_dir: Path
    entry_script: Optional[str]
    command: Optional[str]
    requirements: Optional[str]


def source_code(env: TrainingEnv) -> Optional[SourceCode]:
    """The v3 plan when sourcecode.json and the code channel are both there, else None."""
    spec = env.source_code
    channel = env.input_data_dir / "code"
    if spec is None or not channel.is_dir():
        return None
    entry, command = spec.get("entry_script"), spec.get("command")
    if not entry and not command:
        raise ConfigError(
            f"{env.input_data_dir / 'sm_drivers' / 'sourcecode.json'}: needs an entry_script or a command"
        )
    code_dir = channel
    source_dir = str(spec.get("source_dir") or "")
    if source_dir.endswith(".tar.gz"):  # the SDK uploads the tarball itself into the channel
        tarball = channel / Path(source_dir).name
        code_dir = env.input_data_dir / "code-extracted"
        if not code_dir.exists():
            from toolkit import archive  # only v3 jobs with a tarball source pay for tarfile

            max_bytes, max_members = archive.limits(env.environ)
            archive.extract(tarball, code_dir, label=str(tarball), max_bytes=max_bytes, max_members=max_members)
    return SourceCode(code_dir, entry or None, full_command(command, spec.get("args")),
                      spec.get("requirements") or None)


def full_command(command: Optional[str], args: Optional[Sequence[Any]]) -> Optional[str]:
    """``command`` as the SDK's sm_train.sh runs it: split on whitespace and re-joined, with each of
    ``args`` shell-quoted onto the end."""
    if not command:
        return None
    return " ".join([*str(command).split(), *(shlex.quote(str(a)) for a in args or ())])


def shell(command: str) -> list[str]:
    """argv that runs ``command`` as the SDK does (``eval`` in bash), or with sh when bash is missing."""
    return [which("bash") or "/bin/sh", "-c", command]


DRIVER = "/opt/ml/input/data/sm_drivers/sm_train.sh"


def runs_sdk_driver(entrypoint: Sequence[str], arguments: Sequence[str]) -> bool:
    """Whether a request's ContainerEntrypoint + ContainerArguments run the SDK's own driver script,
    which only exists where /opt/ml is the job's (a container), as every v3 job with SourceCode has."""
    return any(DRIVER in part for part in (*entrypoint, *arguments))


def v3_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """Hyperparameters as argv the way the v3 basic script driver builds them (insertion order)."""
    args: list[str] = []
    for key, value in hyperparameters.items():
        args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return args
