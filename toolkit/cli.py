"""The ``toolkit`` console script (``toolkit plugins``, ``toolkit env``, ``toolkit local ...``).

Parses argv only; the work is elsewhere, imported inside each command. ``train`` and ``serve`` are
in toolkit/scripts.py, without click, so a job starts faster.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn, Optional

import click

from toolkit import __version__

if TYPE_CHECKING:
    from toolkit.errors import ToolkitError


def fail(command: str, exc: ToolkitError) -> NoReturn:
    """How every ``toolkit`` command reports an error the user can fix: one line on stderr,
    ``toolkit <command>: <what and how>``, and the error's exit code (2 for configuration)."""
    click.echo(f"toolkit {command}: {exc}", err=True)
    sys.exit(exc.exit_code)


@click.group(name="toolkit")
@click.version_option(__version__, prog_name="sagemaker-toolkit")
def toolkit_command() -> None:
    """sagemaker-toolkit: the SageMaker container contract, with a plugin for every step."""


@toolkit_command.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List every plugin, where it came from and the hooks it implements."""
    from toolkit.errors import ToolkitError
    from toolkit.manager import describe, get_plugin_manager

    try:
        infos = describe(get_plugin_manager(os.environ))
    except ToolkitError as exc:
        fail("plugins", exc)
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    width = max(len(i.name) for i in infos)
    for info in infos:
        click.echo(f"{info.name:<{width}}  {info.source}")
        click.echo(f"{'':<{width}}  hooks: {', '.join(info.hooks)}")


@toolkit_command.command("env")
@click.option("--base-dir", default=None, help="Instead of SAGEMAKER_BASE_DIR or /opt/ml.")
@click.option("--variables", is_flag=True, help="Print the SM_* variables the script would get.")
def env_command(base_dir: Optional[str], variables: bool) -> None:
    """Print the parsed training environment as JSON (secrets masked)."""
    from toolkit.environment import TrainingEnv
    from toolkit.errors import ToolkitError

    try:
        env = TrainingEnv.from_environ(os.environ, base_dir)
    except ToolkitError as exc:
        fail("env", exc)
    if variables:
        from toolkit.builtin.variables import sm_variables

        click.echo(json.dumps(_masked_variables(sm_variables(env)), indent=2, sort_keys=True))
    else:
        click.echo(json.dumps(env.to_dict(), indent=2))


def _masked_variables(variables: dict[str, str]) -> dict[str, Any]:
    """The SM_* variables for display, secrets masked by toolkit.environment's rules: by name
    (SM_HP_API_TOKEN), and inside the JSON ones (SM_HPS, SM_TRAINING_ENV: by key; SM_USER_ARGS
    and every argv list: the value after a secret-looking option)."""
    from toolkit.environment import mask, mask_argv

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in mask(value).items()}
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return mask_argv(value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    shown: dict[str, Any] = {}
    for name, value in mask(variables).items():
        try:
            decoded = json.loads(value) if isinstance(value, str) and value[:1] in "{[" else None
        except ValueError:
            decoded = None
        shown[name] = value if decoded is None else json.dumps(walk(decoded), separators=(",", ":"), sort_keys=True)
    return shown


@toolkit_command.command("example")
@click.argument("workdir", required=False)
@click.option("--keep", is_flag=True, help="Keep the temporary folder (removed after the run otherwise).")
def example_command(workdir: Optional[str], keep: bool) -> None:
    """Run the bundled example training job under a temporary base dir (no AWS needed).

    The temporary folder is removed afterwards unless --keep; a WORKDIR you give is kept.
    """
    from toolkit.example import run_example

    sys.exit(run_example(workdir, keep))


def _add_optional_commands() -> None:
    """Commands that live in their own subpackage (the local emulator), when present."""
    try:
        from toolkit.local.cli import local_group, package_command
    except ImportError:
        return
    toolkit_command.add_command(local_group, "local")
    toolkit_command.add_command(package_command, "package")
    from toolkit.submit.cli import describe_command, logs_command, submit_group

    toolkit_command.add_command(submit_group, "submit")
    toolkit_command.add_command(logs_command, "logs")
    toolkit_command.add_command(describe_command, "describe")


def toolkit_main() -> None:
    _add_optional_commands()
    toolkit_command(prog_name="toolkit")
