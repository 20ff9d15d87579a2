"""``serve``: environment -> code -> dependencies -> handler -> app -> supervisor."""

from __future__ import annotations

import importlib
import logging
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional

from toolkit import log as tlog
from toolkit import settings, steps
from toolkit.environment import ServingEnv
from toolkit.errors import CodeError, ToolkitError

log = logging.getLogger("toolkit")


_SCRATCH: list[Path] = []  # folders this server made in $TMPDIR, removed when it exits (workers leave by os._exit)


def fetch_code(env: ServingEnv, pm: Any) -> Optional[Path]:
    """The folder with the inference code: the fetched SAGEMAKER_SUBMIT_DIRECTORY, else /opt/ml/model/code."""
    if env.submit_dir:
        folder = Path(tempfile.mkdtemp(prefix="toolkit-serve-"))
        _SCRATCH.append(folder)
        return steps.fetch(env.submit_dir, folder / "code", env.settings_view(), pm)
    return env.code_dir if env.code_dir.is_dir() else None


def build_app(env: ServingEnv, pm: Any) -> Any:
    """The WSGI app for the model in ``env.model_dir`` (the model itself is not loaded yet), or for a
    multi-model endpoint, whose models come later through POST /models (the code folder, if any, is
    then the one for models that bring no code/ of their own)."""
    from toolkit.serving.app import ServingApp
    from toolkit.serving.codecs import Codecs

    code_dir = fetch_code(env, pm)
    if code_dir is not None:
        with tlog.step("install dependencies"):
            steps.install(code_dir, env.settings_view(), pm)
        importlib.invalidate_caches()  # what was just installed must be importable by the user module
    codecs = Codecs(pm.hook)
    metrics = None
    if env.metrics_port:  # the shared table is made here, before the supervisor forks
        from toolkit.serving import recycle
        from toolkit.serving.metrics import Metrics

        metrics = Metrics(recycle.slots(env))
    if env.multi_model:
        from toolkit.serving.multimodel.app import MultiModelApp

        return MultiModelApp(env, pm, codecs, code_dir, metrics)
    handler = pm.hook.toolkit_load_handler(model_dir=env.model_dir, code_dir=code_dir, env=env, codecs=codecs)
    if handler is None:
        raise CodeError("no plugin returned a handler (toolkit_load_handler); is the 'inference' plugin disabled?")
    return ServingApp(handler, env, metrics=metrics)


def main(environ: Mapping[str, str]) -> int:
    """Run the model server until SIGTERM; the exit code (2 for a configuration or code problem)."""
    tlog.setup(settings.startup_log_level(environ))
    try:
        env = ServingEnv.from_environ(environ)
        tlog.setup(env.log_level)
        from toolkit.manager import get_plugin_manager
        from toolkit.serving.supervisor import Supervisor

        pm = get_plugin_manager(environ)
        app = build_app(env, pm)
        if env.multi_model:
            log.info("multi-model endpoint: load models with POST /models")
        elif app.handler.problem:
            log.error("the server starts but will answer 503: %s", app.handler.problem)
        return Supervisor(env, app, pm).run()
    except ToolkitError as exc:
        log.error("%s", exc)
        return exc.exit_code
    finally:
        import shutil

        while _SCRATCH:
            shutil.rmtree(_SCRATCH.pop(), ignore_errors=True)
