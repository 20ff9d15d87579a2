"""docs/openapi.yaml describes exactly the app's routes and methods, and the codecs' media types."""

from __future__ import annotations

from pathlib import Path

import yaml

from toolkit.environment import ServingEnv
from toolkit.manager import get_plugin_manager
from toolkit.serving.app import ServingApp
from toolkit.serving.codecs import Codecs
from toolkit.serving.handler import Handler

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def test_openapi_document_matches_the_app_routes(tmp_path) -> None:
    spec = yaml.safe_load(DOC.read_text())
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    app = ServingApp(Handler(), ServingEnv.from_environ({"SAGEMAKER_BASE_DIR": str(tmp_path)}))
    routes = {(rule.rule, method) for rule in app.flask.url_map.iter_rules() if rule.endpoint != "static"
              for method in rule.methods if method not in ("HEAD", "OPTIONS")}
    assert documented == routes


def test_openapi_document_lists_the_builtin_media_types() -> None:
    spec = yaml.safe_load(DOC.read_text())
    body = set(spec["paths"]["/invocations"]["post"]["requestBody"]["content"])
    codecs = Codecs(get_plugin_manager({}).hook)
    assert body == set(codecs.decodable())
    # plus text/event-stream: a streamed answer framed as server-sent events (tests/serving/test_streaming.py)
    answers = set(spec["paths"]["/invocations"]["post"]["responses"]["200"]["content"])
    assert answers == {*codecs.encodable(), "text/event-stream"}
