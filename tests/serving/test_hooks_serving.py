"""The serving hooks, each exercised by a real plugin module registered through the plugin manager.

The app is called in-process through werkzeug's WSGI test client, except ``toolkit_serve``, whose
test runs the supervisor in a subprocess with a plugin that serves with the standard library's
wsgiref instead of waitress."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import pytest
import serving_helpers
from helpers import wait_for
from serving_helpers import Server, clean_environ, free_port
from werkzeug.test import Client

import toolkit
from toolkit.environment import ServingEnv
from toolkit.manager import get_plugin_manager
from toolkit.serving.entry import build_app
from toolkit.serving.handler import Handler


def make_app(tmp_path: Path, inference: Optional[str], *plugins: Any, **variables: str) -> Any:
    serving_helpers.write_model(tmp_path, inference)
    environ = clean_environ(SAGEMAKER_BASE_DIR=str(tmp_path), **variables)
    pm = get_plugin_manager(environ, extra=plugins)
    app = build_app(ServingEnv.from_environ(environ), pm)
    app.load()
    return app


def post(app: Any, body: bytes, content_type: str, accept: Optional[str] = None) -> Any:
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
    return Client(app).post("/invocations", data=body, headers=headers)


class Upper:
    """A codec plugin for a made-up type: bodies are upper-cased on the way in, reversed on the way out."""

    __name__ = "upper"

    @toolkit.hookimpl
    def toolkit_decoder(self, media_type: str) -> Any:
        return (lambda body: body.decode().upper()) if media_type == "text/x-upper" else None

    @toolkit.hookimpl
    def toolkit_encoder(self, media_type: str) -> Any:
        return (lambda data: str(data)[::-1].encode()) if media_type == "text/x-upper" else None

    @toolkit.hookimpl
    def toolkit_media_types(self) -> Any:
        return ["text/x-upper"]


def test_hook_decoder(tmp_path) -> None:
    app = make_app(tmp_path, serving_helpers.ECHO, Upper())
    resp = post(app, b"abc", "text/x-upper; charset=utf-8", accept="application/json")
    assert resp.status_code == 200 and resp.get_json() == "ABC"


def test_hook_encoder(tmp_path) -> None:
    app = make_app(tmp_path, serving_helpers.ECHO, Upper())
    resp = post(app, b'"abc"', "application/json", accept="text/x-upper")
    assert resp.status_code == 200 and resp.data == b"cba"
    assert resp.headers["Content-Type"] == "text/x-upper"


def test_hook_media_types(tmp_path) -> None:
    app = make_app(tmp_path, serving_helpers.ECHO, Upper())
    resp = post(app, b"x", "application/xml")
    assert resp.status_code == 415 and "text/x-upper" in resp.get_json()["message"]
    resp = post(app, b"[1]", "application/json", accept="text/x-*, text/x-upper")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "text/x-upper"


class Reverser(Handler):
    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.loaded = False

    def load_model(self) -> None:
        self.loaded = True

    def invoke(self, body: bytes, content_type: str, accept: Optional[str], context: Any) -> tuple[Any, str]:
        context.set_response_header("X-Model-Dir", str(self.model_dir))
        return body[::-1], "application/octet-stream"


class ReverserLoader:
    __name__ = "reverser"

    @toolkit.hookimpl
    def toolkit_load_handler(self, model_dir: Path, code_dir: Optional[Path], env: Any, codecs: Any) -> Any:
        return Reverser(model_dir)


def test_hook_load_handler(tmp_path) -> None:
    # no inference.py at all: the plugin's handler answers instead of the built-in loader
    app = make_app(tmp_path, None, ReverserLoader())
    assert app.handler.loaded
    resp = post(app, b"abc", "anything/at-all")
    assert resp.status_code == 200 and resp.data == b"cba"
    assert resp.headers["X-Model-Dir"] == str(tmp_path / "model")


def test_builtin_loader_without_code_says_what_is_missing(tmp_path) -> None:
    app = make_app(tmp_path / "x", None)
    resp = Client(app).get("/ping")
    assert resp.status_code == 503
    assert "inference.py does not exist" in resp.get_json()["message"]


# A replacement server on the standard library's wsgiref, written against the Worker object: it maps
# HTTP and leaves the time limit and draining to the worker (single-threaded, so it ignores balancing).
WSGIREF_PLUGIN = """
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    import toolkit

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    def serve_on(sock, app, stop):
        server = WSGIServer(sock.getsockname(), Quiet, bind_and_activate=False)
        # every worker polls the one listening socket: non-blocking, so that a worker whose
        # select woke for a connection another took does not block in accept() (and miss the stop)
        sock.setblocking(False)
        server.socket = sock
        server.server_name, server.server_port = "127.0.0.1", sock.getsockname()[1]
        server.setup_environ()
        server.set_app(lambda environ, start: _tag(app, environ, start))
        stop(server)
        server.serve_forever(poll_interval=0.05)
        return True

    class Plugin:
        @toolkit.hookimpl
        def toolkit_serve(self, worker):
            def stop(server):
                def drain_then_shut():
                    worker.drain()
                    server.shutdown()
                worker.on_stop(lambda: threading.Thread(target=drain_then_shut).start())
            return serve_on(worker.sock, worker.timed_app(), stop)

    class OldPlugin:  # 0.1's signature: the toolkit calls it through hookcompat
        @toolkit.hookimpl
        def toolkit_serve(self, app, sock, env):
            import signal
            stop = lambda server: signal.signal(
                signal.SIGTERM, lambda *a: threading.Thread(target=server.shutdown).start())
            return serve_on(sock, app, stop)

    def _tag(app, environ, start):
        def tagged(status, headers, exc_info=None):
            return start(status, [*headers, ("X-Served-By", "wsgiref")], exc_info)
        return app(environ, tagged)
"""

RUN_SUPERVISOR = """
import os, sys
sys.path.insert(0, sys.argv[1])
import wsgiref_plugin
from toolkit import log
from toolkit.environment import ServingEnv
from toolkit.manager import get_plugin_manager
from toolkit.serving.entry import build_app
from toolkit.serving.supervisor import Supervisor
log.setup(20)
env = ServingEnv.from_environ(os.environ)
pm = get_plugin_manager(os.environ, extra=[getattr(wsgiref_plugin, sys.argv[2])()])
sys.exit(Supervisor(env, build_app(env, pm), pm).run())
"""

SLEEPY = """
    import os, time

    def model_fn(model_dir):
        return "sleepy"

    def predict_fn(data, model):
        if data.get("sleep"):
            open(os.path.join(model_dir_of(), "started"), "w").close()
            time.sleep(data["sleep"])
        return data

    def model_dir_of():
        return os.environ["SAGEMAKER_BASE_DIR"]
"""


def start_wsgiref(tmp_path: Path, source: str, plugin: str, **variables: str) -> Server:
    (tmp_path / "wsgiref_plugin.py").write_text(textwrap.dedent(source))
    serving_helpers.write_model(tmp_path, SLEEPY)
    port = free_port()
    env = clean_environ(SAGEMAKER_BASE_DIR=str(tmp_path), SAGEMAKER_BIND_TO_PORT=str(port),
                        TOOLKIT_BIND_HOST="127.0.0.1", **variables)
    log = tmp_path / "log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", RUN_SUPERVISOR, str(tmp_path), plugin], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    server = Server(tmp_path, port, proc, log)
    server.wait_ready()
    return server


def test_hook_serve(tmp_path) -> None:
    """A server that only maps HTTP gets the time limit and draining from the worker."""
    server = start_wsgiref(tmp_path, WSGIREF_PLUGIN, "Plugin", SAGEMAKER_MODEL_SERVER_TIMEOUT="1",
                           SAGEMAKER_MODEL_SERVER_WORKERS="1")
    try:
        resp = server.invoke(json.dumps({"a": 1}))
        assert resp.status == 200 and resp.json() == {"a": 1}
        assert resp.headers["x-served-by"] == "wsgiref"
        late = server.invoke(json.dumps({"sleep": 3}))
        assert late.status == 504 and "SAGEMAKER_MODEL_SERVER_TIMEOUT" in late.json()["message"], late
        assert server.invoke(json.dumps({"b": 2})).json() == {"b": 2}  # the stuck request does not block it
        # SIGTERM with a request in the handler: it is answered before the worker stops
        (tmp_path / "started").unlink(missing_ok=True)
        answers: list = []
        client = threading.Thread(target=lambda: answers.append(server.invoke(json.dumps({"sleep": 0.5}))))
        client.start()
        wait_for(lambda: (tmp_path / "started").exists(), 10, "the request to reach the handler")
        server.proc.send_signal(signal.SIGTERM)
        client.join(10)
        assert answers and answers[0].status == 200, answers
    finally:
        code = server.stop()
    assert code == 0, server.log
    assert "0.1 arguments" not in server.log


def test_hook_serve_with_the_0_1_signature_still_serves(tmp_path) -> None:
    server = start_wsgiref(tmp_path, WSGIREF_PLUGIN, "OldPlugin", SAGEMAKER_MODEL_SERVER_WORKERS="2")
    try:
        resp = server.invoke(json.dumps({"a": 1}))
        assert resp.status == 200 and resp.headers["x-served-by"] == "wsgiref"
    finally:
        code = server.stop()
    assert code == 0, server.log  # stopped by the plugin's own SIGTERM handling (stop() kills after 35 s)
    assert ("plugin 'OldPlugin': toolkit_serve takes (app, sock, env), the 0.1 arguments; take the one "
            "argument 'worker'") in server.log, server.log


@pytest.mark.parametrize("variable,value,expected", [
    ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "soon", "SAGEMAKER_MODEL_SERVER_TIMEOUT='soon' is not a number; expected e.g."),
    ("SAGEMAKER_MODEL_SERVER_WORKERS", "0", "SAGEMAKER_MODEL_SERVER_WORKERS='0' is below 1"),
    ("SAGEMAKER_BATCH_STRATEGY", "ALL", "SAGEMAKER_BATCH_STRATEGY='ALL' is not one of: MULTI_RECORD, SINGLE_RECORD"),
    ("SAGEMAKER_SAFE_PORT_RANGE", "9000", "not a range like 20000-20999"),
    ("TOOLKIT_SERVE_STOP_SECONDS", "later", "TOOLKIT_SERVE_STOP_SECONDS='later' is not a number; expected e.g."),
])
def test_serving_env_rejects_bad_values(variable: str, value: str, expected: str) -> None:
    from toolkit.errors import ConfigError

    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        ServingEnv.from_environ({variable: value})


def test_serving_env_reads_every_variable() -> None:
    env = ServingEnv.from_environ({
        "SAGEMAKER_BIND_TO_PORT": "9090", "SAGEMAKER_SAFE_PORT_RANGE": "20000-20999",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "3", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "2.5",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "0", "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
        "SAGEMAKER_PROGRAM": "serve.py", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "4",
        "SAGEMAKER_BATCH_STRATEGY": "single_record", "TOOLKIT_PRELOAD_MODEL": "TRUE", "TOOLKIT_LOG_PING": "1",
        "TOOLKIT_SERVER_THREADS": "8", "TOOLKIT_BIND_HOST": "127.0.0.1", "SAGEMAKER_BASE_DIR": "/srv/ml",
        "TOOLKIT_SERVE_STOP_SECONDS": "12.5",
    })
    assert SimpleNamespace(**{k: getattr(env, k) for k in (
        "port", "safe_port_range", "workers", "timeout", "max_payload_bytes", "default_accept", "program",
        "max_concurrent_transforms", "batch_strategy", "preload_model", "log_ping", "threads", "host")}) == \
        SimpleNamespace(port=9090, safe_port_range=(20000, 20999), workers=3, timeout=2.5, max_payload_bytes=None,
                        default_accept="text/csv", program="serve.py", max_concurrent_transforms=4,
                        batch_strategy="SINGLE_RECORD", preload_model=True, log_ping=True, threads=8,
                        host="127.0.0.1")
    assert env.stop_seconds == 12.5
    assert env.model_dir == Path("/srv/ml/model") and env.code_dir == Path("/srv/ml/model/code")


def test_serving_env_defaults_to_eight_threads_per_worker() -> None:
    # waitress's own default of 4 queued requests at 16 connections (docs/benchmarks.md, Serving)
    assert ServingEnv.from_environ({}).threads == 8
    assert ServingEnv.from_environ({"TOOLKIT_SERVER_THREADS": "2"}).threads == 2


class Doubler:
    """A framework plugin for a made-up model type: loads model.txt without model_fn, and its defaults
    turn a text/plain body into a number, double it with the model, and answer with a dict."""

    __name__ = "doubler"

    class Model:
        def __init__(self, factor: float) -> None:
            self.factor = factor

    @toolkit.hookimpl
    def toolkit_load_model(self, model_dir: Path) -> Any:
        path = model_dir / "model.txt"
        return Doubler.Model(float(path.read_text())) if path.is_file() else None

    @toolkit.hookimpl
    def toolkit_model_defaults(self, model: Any) -> Any:
        from toolkit.serving.frameworks import ModelDefaults

        if not isinstance(model, Doubler.Model):
            return None

        class Defaults(ModelDefaults):
            name = "doubler"

            def input_fn(self, body: bytes, content_type: str, codecs: Any) -> Any:
                return float(codecs.decode(body, content_type))

            def predict_fn(self, data: Any, model: Any) -> Any:
                return data * model.factor

            def output_fn(self, prediction: Any) -> Any:
                return {"doubled": prediction}

        return Defaults()


def test_hook_load_model(tmp_path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.txt").write_text("2")
    app = make_app(tmp_path, None, Doubler())  # no inference.py at all: the plugin loads the folder
    assert app.ready, app.handler.problem
    resp = post(app, b"21", "text/plain", accept="application/json")
    assert resp.status_code == 200 and resp.get_json() == {"doubled": 42.0}


def test_hook_load_model_not_mine_keeps_the_reason(tmp_path) -> None:
    app = make_app(tmp_path, "def predict_fn(data, model):\n    return data\n", Doubler())
    assert not app.ready and "defines no model_fn(model_dir)" in app.handler.problem


def test_hook_model_defaults(tmp_path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.txt").write_text("3")
    # the user's output_fn wins over the plugin's; its input_fn and predict_fn still apply
    inference = "import json\ndef output_fn(prediction, accept):\n    return json.dumps({'mine': prediction})\n"
    app = make_app(tmp_path, inference, Doubler())
    resp = post(app, b"2", "text/plain", accept="application/json")
    assert resp.status_code == 200 and resp.get_json() == {"mine": 6.0}
