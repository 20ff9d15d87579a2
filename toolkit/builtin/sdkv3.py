"""The SageMaker Python SDK v3 (``ModelTrainer``) contract, so one image serves both SDK generations:
a built-in launcher plugin, and what ``train`` reads to plan a v3 job.

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
from toolkit.hookspecs import hookimpl
from toolkit.types import Command


class SourceCode(NamedTuple):
    """What sourcecode.json asks for. ``uri`` is where the code is, for the fetchers: the code
    channel, or the tarball the SDK uploaded into it (the ``local`` fetcher extracts it)."""

    uri: str
    entry_script: Optional[str]
    command: Optional[str]
    requirements: Optional[str]


def read(env: TrainingEnv) -> Optional[SourceCode]:
    """The v3 job's source code when sourcecode.json and the code channel are both there, else None.
    Reads only: fetching (and extracting a tarball) is the fetchers' business."""
    spec = env.source_code
    channel = env.input_data_dir / "code"
    if spec is None or not channel.is_dir():
        return None
    entry, command = spec.get("entry_script"), spec.get("command")
    if not entry and not command:
        raise ConfigError(
            f"{env.input_data_dir / 'sm_drivers' / 'sourcecode.json'}: needs an entry_script or a command"
        )
    source_dir = str(spec.get("source_dir") or "")
    # the SDK uploads a tarball source_dir itself into the channel
    uri = channel / Path(source_dir).name if source_dir.endswith(".tar.gz") else channel
    return SourceCode(str(uri), entry or None, full_command(command, spec.get("args")),
                      spec.get("requirements") or None)


@hookimpl(tryfirst=True)  # before installed launchers too: the SDK's own driver ignores distributed.json
def toolkit_launch(entry_point: str, code_dir: Path, args: Sequence[str], env: TrainingEnv) -> Optional[Command]:
    """A v3 ``command`` runs through the shell as the SDK's driver runs it, whatever distributed.json says."""
    v3 = read(env)
    if v3 is None or not v3.command:
        return None
    return Command(shell(v3.command), cwd=code_dir, name="SDK v3 command")


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
