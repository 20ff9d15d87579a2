"""The route table (toolkit/serving/routes.py): its rows are answered without Flask, HEAD like GET
without a body, and what is not in it gets 404 / 405 naming what is."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from werkzeug.test import Client

from toolkit.environment import ServingEnv
from toolkit.manager import get_plugin_manager
from toolkit.serving.app import ServingApp
from toolkit.serving.codecs import Codecs
from toolkit.serving.handler import Handler
from toolkit.serving.multimodel.app import MultiModelApp


def multi_model(tmp_path) -> MultiModelApp:
    env = ServingEnv.from_environ({"SAGEMAKER_BASE_DIR": str(tmp_path), "SAGEMAKER_MULTI_MODEL": "true"})
    pm = get_plugin_manager({})
    return MultiModelApp(env, pm, Codecs(pm.hook), None)


def test_head_is_answered_like_get_without_the_body(tmp_path) -> None:
    app = ServingApp(Handler(), ServingEnv.from_environ({"SAGEMAKER_BASE_DIR": str(tmp_path)}))
    get = Client(app).get("/execution-parameters")
    head = Client(app).head("/execution-parameters")
    assert get.status_code == head.status_code == 200 and get.data
    assert head.data == b"" and head.headers["Content-Length"] == str(len(get.data))


def test_a_wrong_method_on_a_route_with_a_name_lists_the_methods_it_takes(tmp_path) -> None:
    resp = Client(multi_model(tmp_path)).put("/models/resnet")
    assert resp.status_code == 405
    assert resp.get_json()["message"] == "PUT /models/resnet: Method Not Allowed; this route accepts GET, DELETE"
    assert set(resp.headers["Allow"].split(", ")) >= {"GET", "DELETE"}


def test_a_refused_models_request_is_a_json_400(tmp_path) -> None:
    app = multi_model(tmp_path)
    resp = Client(app).get("/models?limit=0")
    assert resp.status_code == 400 and resp.get_json()["message"].startswith("limit='0' is not a whole number")
    resp = Client(app).post("/models", data=b'{"model_name": "a/b", "url": "/x"}')
    assert resp.status_code == 400 and "no '/'" in resp.get_json()["message"]
    resp = Client(app).get("/models/nope")
    assert resp.status_code == 404 and resp.get_json() == {"message": "model 'nope' is not loaded"}


ROUTES_WITHOUT_FLASK = """
    import io, sys, tempfile
    from toolkit.environment import ServingEnv
    from toolkit.manager import get_plugin_manager
    from toolkit.serving.codecs import Codecs
    from toolkit.serving.multimodel.app import MultiModelApp

    env = ServingEnv.from_environ({"SAGEMAKER_BASE_DIR": tempfile.mkdtemp(), "SAGEMAKER_MULTI_MODEL": "true"})
    pm = get_plugin_manager({})
    app = MultiModelApp(env, pm, Codecs(pm.hook), None)
    seen = []
    for method, path in [("GET", "/ping"), ("GET", "/models"), ("GET", "/models/a"), ("POST", "/models/a/invoke"),
                         ("POST", "/invocations"), ("GET", "/execution-parameters")]:
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(b""), "QUERY_STRING": ""}
        app(environ, lambda status, headers: seen.append(status[:3]))
    print(" ".join(seen), "flask" in sys.modules)
    from werkzeug.test import EnvironBuilder
    app(EnvironBuilder(path="/nowhere").get_environ(),
        lambda status, headers: print(status[:3], "flask" in sys.modules))
"""


def test_every_route_of_the_table_is_answered_without_flask() -> None:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(ROUTES_WITHOUT_FLASK)], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert out[0] == "200 200 404 404 400 200 False", out
    assert out[1] == "404 True", out  # what the table does not have goes to Flask
