"""The worker's side of multi-model serving: its registry of loaded models, and the thread that
carries out the supervisor's load / unload commands."""

from __future__ import annotations

import gc
import importlib
import logging
import os
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

from toolkit.environment import ServingEnv
from toolkit.serving import heap
from toolkit.serving.app import ServingApp
from toolkit.serving.handler import HANDLER_FAILURES
from toolkit.serving.multimodel import memory
from toolkit.serving.multimodel.isolation import isolated_imports
from toolkit.serving.multimodel.links import Line

log = logging.getLogger("toolkit")


class Model:
    """A model loaded in this worker: its name, url and the single-model app that serves it."""

    __slots__ = ("app", "modules", "name", "url")

    def __init__(self, name: str, url: str, app: ServingApp, modules: dict[str, ModuleType]) -> None:
        self.name = name
        self.url = url
        self.app = app
        self.modules = modules  # the modules imported from its code folder, out of sys.modules


class Registry:
    """name -> Model. A model is added only once fully loaded, by replacing the dict (a reader sees
    the old dict or the new one, never a half-made entry)."""

    def __init__(self, env: ServingEnv, pm: Any, codecs: Any, shared_code: Optional[Path],
                 metrics: Any = None) -> None:
        self.env = env
        self.metrics = metrics
        self.connections: Any = None  # the worker's open connections (ServingApp.use_connections)
        self.pm = pm
        self.codecs = codecs
        self.shared_code = shared_code  # the server's own code folder, for models without code/
        self.models: dict[str, Model] = {}

    def get(self, name: str) -> Optional[Model]:
        return self.models.get(name)

    def code_dir(self, model_dir: Path) -> Optional[Path]:
        own = model_dir / "code"
        return own if own.is_dir() else self.shared_code

    def load(self, name: str, url: str) -> dict:
        """Load a model here; the acknowledgement for the supervisor."""
        started = time.perf_counter()
        model_dir = Path(url)
        code_dir = self.code_dir(model_dir)
        importlib.invalidate_caches()  # its requirements were just installed by the supervisor
        handler = None
        try:
            with isolated_imports(code_dir) as modules:
                handler = self.pm.hook.toolkit_load_handler(model_dir=model_dir, code_dir=code_dir, env=self.env,
                                                            codecs=self.codecs)
                if handler is not None and not handler.problem:
                    handler.load_model()
        except MemoryError:
            return failed({"ok": False, "memory": True, "error": f"out of memory while loading model {name!r}"})
        except HANDLER_FAILURES as exc:
            log.exception("loading model %r failed", name)
            return failed({"ok": False, "error": f"loading model {name!r} failed: {type(exc).__name__}: {exc}"})
        if handler is None:
            return {"ok": False, "error": "no plugin returned a handler (toolkit_load_handler)"}
        if handler.problem:
            failure = getattr(handler, "load_error", None)
            ack = {"ok": False, "memory": isinstance(failure, MemoryError), "error": handler.problem}
            del handler, failure, modules
            return failed(ack)
        app = ServingApp(handler, self.env, model_dir=url, model_name=name, metrics=self.metrics)
        app.record_load(time.perf_counter() - started)
        app.use_connections(self.connections)
        heap.settle(self.env.gc_freeze)
        app.ready = True
        self.models = {**self.models, name: Model(name, url, app, modules)}
        log.info("model %r loaded in worker %d in %.2f s", name, os.getpid(), time.perf_counter() - started)
        return {"ok": True}

    def unload(self, name: str) -> dict:
        """Drop a model: new requests get 404 at once; its memory goes back once in-flight ones end."""
        model = self.models.get(name)
        if model is None:
            return {"ok": True}
        self.models = {k: v for k, v in self.models.items() if k != name}
        deadline = time.monotonic() + max(self.env.timeout, 1.0)
        while model.app.inflight and time.monotonic() < deadline:
            time.sleep(0.005)
        model.modules.clear()
        del model
        heap.settle(self.env.gc_freeze)  # (also frees its cycles frozen at a load)
        memory.release()
        return {"ok": True}


def failed(ack: dict) -> dict:
    """A failed load's acknowledgement, after giving back what the attempt allocated."""
    gc.collect()
    memory.release()
    return ack


class Agent:
    """Carries out the supervisor's commands in this worker, on its own thread once serving."""

    def __init__(self, registry: Registry, requests: Line, commands: Line) -> None:
        self.registry = registry
        self.requests = requests  # ours to the supervisor (POST /models, DELETE /models/{name})
        self.commands = commands  # the supervisor's to us

    def start(self) -> None:
        """Load what the supervisor says is loaded (a replacement worker), then run the command thread."""
        while True:
            command = self.commands.receive()
            if command is None:
                raise SystemExit("the supervisor is gone")
            if command.get("op") == "serve":
                break
            self.commands.send(self._carry_out(command))
        threading.Thread(target=self._run, name="toolkit-models", daemon=True).start()

    def _run(self) -> None:
        while True:
            command = self.commands.receive()
            if command is None:
                return  # the supervisor is gone: we are being stopped
            self.commands.send(self._carry_out(command))

    def _carry_out(self, command: dict) -> dict:
        op = command.get("op")
        try:
            if op == "load":
                return self.registry.load(command["name"], command["url"])
            if op == "unload":
                return self.registry.unload(command["name"])
        except HANDLER_FAILURES as exc:  # never leave the supervisor waiting
            log.exception("%s of model %r failed", op, command.get("name"))
            return {"ok": False, "error": f"{op} failed in worker {os.getpid()}: {type(exc).__name__}: {exc}"}
        return {"ok": False, "error": f"unknown command {op!r}"}

    def ask(self, message: dict) -> dict:
        """Send a request to the supervisor and wait for its answer ({"status", "body"})."""
        answer = self.requests.call(message)
        if answer is None:
            return {"status": 503, "body": {"message": "the supervisor is not answering; the server is stopping"}}
        return answer
