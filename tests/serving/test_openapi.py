"""docs/openapi.yaml describes exactly the app's routes and methods, and the codecs' media types."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from toolkit.environment import ServingEnv
from toolkit.manager import get_plugin_manager
from toolkit.serving.app import ServingApp
from toolkit.serving.codecs import Codecs
from toolkit.serving.handler import Handler
from toolkit.serving.multimodel.app import MultiModelApp

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def routes_of(flask_app) -> set[tuple[str, str]]:
    """(path as OpenAPI writes it, method) for every route of a Flask app."""
    return {(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method)
            for rule in flask_app.url_map.iter_rules() if rule.endpoint != "static"
            for method in rule.methods if method not in ("HEAD", "OPTIONS")}


def test_openapi_document_matches_the_app_routes(tmp_path) -> None:
    spec = yaml.safe_load(DOC.read_text())
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops
                  if method != "parameters"}
    single = ServingApp(Handler(), ServingEnv.from_environ({"SAGEMAKER_BASE_DIR": str(tmp_path)}))
    env = ServingEnv.from_environ({"SAGEMAKER_BASE_DIR": str(tmp_path), "SAGEMAKER_MULTI_MODEL": "true"})
    multi = MultiModelApp(env, get_plugin_manager({}), Codecs(get_plugin_manager({}).hook), None)
    assert routes_of(single.flask) <= routes_of(multi.flask)  # a multi-model endpoint has every route
    assert documented == routes_of(multi.flask)
    # the routes the 404 / 405 messages list are the routes there are
    assert {(route.path, m) for route in MultiModelApp.ROUTES for m in route.methods} == documented


def test_openapi_document_lists_the_builtin_media_types() -> None:
    spec = yaml.safe_load(DOC.read_text())
    codecs = Codecs(get_plugin_manager({}).hook)
    for path in ("/invocations", "/models/{name}/invoke"):
        body = set(spec["paths"][path]["post"]["requestBody"]["content"])
        assert body == set(codecs.decodable())
        # plus text/event-stream: a streamed answer framed as server-sent events (tests/serving/test_streaming.py)
        answers = set(spec["paths"][path]["post"]["responses"]["200"]["content"])
        assert answers == {*codecs.encodable(), "text/event-stream"}
