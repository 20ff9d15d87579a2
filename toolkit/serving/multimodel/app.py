"""The WSGI app of a multi-model endpoint (SAGEMAKER_MULTI_MODEL=true), one per worker.

Invocations (POST /models/{name}/invoke, and POST /invocations naming the model in
X-Amzn-SageMaker-Target-Model) go straight to that model's own single-model ``ServingApp``, so they
take exactly the single-model code path (codecs, context, streaming, errors). Loading and
unloading are asked of the supervisor, which carries them out in every worker; listing reads this
worker's registry, which the supervisor keeps the same in every worker.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs

from toolkit.environment import ServingEnv
from toolkit.errors import ClientError
from toolkit.serving.app import too_large_message
from toolkit.serving.context import TARGET_MODEL
from toolkit.serving.multimodel.worker import Agent, Registry
from toolkit.serving.routes import JSON_TYPE, SAGEMAKER_ROUTES, Route, RoutedApp, error_body, read_body

TOKEN = re.compile(r"[A-Za-z0-9_-]{1,400}")
TARGET_KEY = "HTTP_" + TARGET_MODEL.upper().replace("-", "_")
MAX_NAME = 256
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
EXAMPLE = '{"model_name": "resnet", "url": "/opt/ml/models/resnet/model"}'
MODEL_ROUTES = (
    Route("/models", ("GET",), "list_models"),
    Route("/models", ("POST",), "load_model"),
    Route("/models/{name}", ("GET",), "describe"),
    Route("/models/{name}", ("DELETE",), "unload_model"),
    Route("/models/{name}/invoke", ("POST",), "invoke"),
)


def wsgi_text(value: Optional[str]) -> Optional[str]:
    """A path or header value as text: WSGI gives the raw bytes decoded as latin-1."""
    if value is None or value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ClientError(f'"model_name" must be a non-empty string, e.g. {EXAMPLE}')
    if len(name) > MAX_NAME or "/" in name or any(ord(c) < 32 for c in name):
        raise ClientError(f"model_name {name[:80]!r} is not usable: at most {MAX_NAME} characters, "
                         f"no '/' and no control characters")
    return name


def parse_load(body: bytes) -> tuple[str, str]:
    """(model_name, url) of a POST /models body; a ``ClientError`` saying what a right one looks like."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ClientError(f"the body must be a JSON object like {EXAMPLE}")
    name = check_name(data.get("model_name"))
    url = data.get("url")
    if not isinstance(url, str) or not url:
        raise ClientError(f'"url" is missing: give the folder of model {name!r}, e.g. "/opt/ml/models/{name}/model"')
    path = url[len("file://"):] if url.startswith("file://") else url
    if not Path(path).is_dir():
        raise ClientError(f"url {url!r} is not a folder on this host; give the local folder the model was put in")
    return name, path


def encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    """The last name of the previous page (the token is that name, URL-safe base64 without padding)."""
    try:
        if not TOKEN.fullmatch(token):
            raise ValueError(token)
        name = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not name:
            raise ValueError(token)
        return name
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ClientError(f"next_page_token {token[:80]!r} is not one this server gave; "
                         f"use the nextPageToken of the previous page") from None


class MultiModelApp(RoutedApp):
    """The WSGI callable every worker of a multi-model endpoint serves."""

    ROUTES = SAGEMAKER_ROUTES + MODEL_ROUTES
    ready = True  # no model to load at start: /ping is 200 with zero models

    def __init__(self, env: ServingEnv, pm: Any, codecs: Any, shared_code: Optional[Path],
                 metrics: Any = None) -> None:
        super().__init__()
        self.env = env
        self.metrics = metrics  # the supervisor serves it (TOOLKIT_METRICS_PORT)
        self.registry = Registry(env, pm, codecs, shared_code, metrics)
        self.agent: Optional[Agent] = None

    def load(self) -> None:
        """Nothing to load at start (models come through POST /models)."""

    def use_connections(self, count: Any) -> None:
        """In a worker: the models loaded from now on batch knowing its open connections."""
        self.registry.connections = count

    def join(self, agent: Agent) -> None:
        """In a new worker, before serving: load what the supervisor has loaded, then take commands."""
        self.agent = agent
        agent.start()

    def untimed(self, environ: dict) -> bool:
        """Loads and unloads are not held to SAGEMAKER_MODEL_SERVER_TIMEOUT (the server's watchdog
        asks): a model_fn takes as long as it takes, and a 504 would not stop it."""
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO", "")
        return (method == "POST" and path == "/models") or (method == "DELETE" and path.startswith("/models/"))

    def runs_long(self, environ: dict) -> bool:
        """Whether a request may run long without waiting for a batch: a load or unload, or an
        invocation of a model that does not batch. The event loop never starts one on top of
        requests parked for their batch (toolkit.serving.eventloop), which would wait for it."""
        if self.untimed(environ):
            return True
        path = environ.get("PATH_INFO") or ""
        if environ.get("REQUEST_METHOD") != "POST":
            return False
        if path == "/invocations":
            name = wsgi_text(environ.get(TARGET_KEY))
        elif path.startswith("/models/") and path.endswith("/invoke"):
            name = wsgi_text(path[len("/models/"):-len("/invoke")])
        else:
            return False
        model = self.registry.get(name or "")
        return model is not None and getattr(model.app, "batcher", None) is None

    # -- routes: invocations take the model's own single-model path ---------------------------

    def ping(self, environ: dict) -> tuple[int, list, bytes]:
        return 200, [], b""

    def invocations(self, environ: dict) -> tuple[int, list, Any]:
        """POST /invocations naming the model in the X-Amzn-SageMaker-Target-Model header."""
        return self._invoke(wsgi_text(environ.get(TARGET_KEY)), environ)

    def invoke(self, environ: dict, name: str) -> tuple[int, list, Any]:
        """POST /models/{name}/invoke."""
        name = wsgi_text(name) or ""
        environ.setdefault(TARGET_KEY, name)
        environ["PATH_INFO"] = "/invocations"  # what the access log shows, as for the header's way
        return self._invoke(name, environ)

    def _invoke(self, name: Optional[str], environ: dict) -> tuple[int, list, Any]:
        if not name:
            return 400, list(JSON_TYPE), error_body(
                f"this is a multi-model endpoint: name the model in the {TARGET_MODEL} header "
                f"or POST to /models/{{name}}/invoke")
        model = self.registry.get(name)
        if model is None:
            return 404, list(JSON_TYPE), error_body(
                f"model {name[:MAX_NAME]!r} is not loaded; load it with POST /models")
        return model.app.invocations(environ)

    def execution_parameters(self, environ: dict) -> tuple[int, list, bytes]:
        params = {"MaxConcurrentTransforms": self.env.max_concurrent_transforms,
                  "BatchStrategy": self.env.batch_strategy, "MaxPayloadInMB": self.env.max_payload_mb}
        return 200, list(JSON_TYPE), json.dumps(params).encode()

    def list_models(self, environ: dict) -> tuple[int, list, bytes]:
        args = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        raw = (args.get("limit") or [None])[0]
        if raw is not None:
            if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
                raise ClientError(f"limit={raw[:40]!r} is not a whole number from 1 to {MAX_LIMIT}")
            limit = int(raw)
        else:
            limit = DEFAULT_LIMIT
        token = (args.get("next_page_token") or [""])[0]
        after = decode_token(token) if token else None
        names = sorted(n for n in self.registry.models if after is None or n > after)
        page = names[:limit]
        models = self.registry.models
        body: dict = {"models": [{"modelName": n, "modelUrl": models[n].url} for n in page if n in models]}
        if len(names) > limit:
            body["nextPageToken"] = encode_token(page[-1])
        return _json(200, body)

    def describe(self, environ: dict, name: str) -> tuple[int, list, bytes]:
        name = wsgi_text(name) or ""
        model = self.registry.get(name)
        if model is None:
            return _json(404, {"message": f"model {name[:MAX_NAME]!r} is not loaded"})
        return _json(200, {"modelName": model.name, "modelUrl": model.url})

    def load_model(self, environ: dict) -> tuple[int, list, bytes]:
        name, url = parse_load(read_body(environ, self.env.max_payload_bytes,
                                         lambda size: too_large_message(size, self.env)))
        return self._ask({"op": "load", "name": name, "url": url})

    def unload_model(self, environ: dict, name: str) -> tuple[int, list, bytes]:
        name = wsgi_text(name) or ""
        if self.registry.get(name) is None:
            return _json(404, {"message": f"model {name[:MAX_NAME]!r} is not loaded"})
        return self._ask({"op": "unload", "name": name})

    def _ask(self, message: dict) -> tuple[int, list, bytes]:
        if self.agent is None:
            return _json(503, {"message": "this worker is not connected to the supervisor"})
        answer = self.agent.ask(message)
        return _json(int(answer["status"]), answer["body"])


def _json(code: int, body: dict) -> tuple[int, list, bytes]:
    return code, list(JSON_TYPE), json.dumps(body).encode()
