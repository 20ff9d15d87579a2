"""Multi-model endpoints (SAGEMAKER_MULTI_MODEL=true), seen from outside: the real `serve` with 2
workers on 127.0.0.1, real model folders made here (each with its own inference.py and a sibling
util.py of the same name, one with a requirements.txt naming a wheel built here: no network), and
real HTTP. Covers every status of the /models API, that every worker sees a model once its load
answered 200, load/unload under concurrent traffic, memory given back after DELETE (RSS from /proc),
a replacement worker after SIGKILL, and the SageMaker SDK's local runtime client with TargetModel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest
from helpers import BIN, clean_environ, make_wheel
from serving_helpers import Response, Server, launch

# Each model's inference.py imports a sibling module called util, with a different NAME in each.
ALPHA = """
    import os
    import util

    def model_fn(model_dir):
        return {"name": util.NAME, "weights": open(os.path.join(model_dir, "weights.txt")).read().strip()}

    def predict_fn(data, model, context):
        return {"model": model["name"], "util": util.NAME, "weights": model["weights"], "pid": os.getpid(),
                "target": context.target_model, "input": data}
"""
BETA = """
    import os
    import mme_test_dep  # installed from this model's code/requirements.txt when it is loaded
    import util

    def model_fn(model_dir):
        return mme_test_dep.FACTOR

    def transform_fn(model, body, content_type, accept):
        return {"model": util.NAME, "scaled": [x * model for x in __import__("json").loads(body)]}
"""
BROKEN = """
    def model_fn(model_dir):
        raise ValueError("weights.bin is corrupt")
"""
HUNGRY = """
    def model_fn(model_dir):
        raise MemoryError()
"""
SLOW = """
    import time

    def model_fn(model_dir):
        time.sleep(0.2)  # a request that saw the model before this returns would get None and fail
        return {"loaded": True}

    def predict_fn(data, model):
        return model["loaded"]
"""
SLEEPY = """
    import time

    def model_fn(model_dir):
        time.sleep(2.5)
        return "awake"

    def predict_fn(data, model):
        return model
"""
STREAMING = """
    def model_fn(model_dir):
        return "streamer"

    def predict_fn(data, model):
        for i in range(3):
            yield {"chunk": i}
"""
SHARED = """
    import os

    def model_fn(model_dir):
        return os.path.basename(os.path.dirname(model_dir))

    def predict_fn(data, model, context):
        return {"shared_code_for": model, "model_dir": context.system_properties["model_dir"]}
"""
BIG = """
    import os

    def model_fn(model_dir):
        # ~200 MB in 2,000 blocks of 100 KB: below glibc's mmap threshold, so they live in the heap
        # and only come back to the system if the server trims it
        return [bytes([i % 251]) * 100_000 for i in range(2000)]

    def predict_fn(data, model):
        return {"blocks": len(model), "pid": os.getpid()}
"""


# A model that holds a reference cycle: only the garbage collector can free it once unloaded, and it
# was frozen with the rest at the load (toolkit.serving.heap). Its finalizer leaves a file per worker.
CYCLE = """
    import gc
    import os
    import weakref

    class Node:
        pass

    def _freed(path):
        open(path, "w").close()

    def model_fn(model_dir):
        a, b = Node(), Node()
        a.other, b.other = b, a
        weakref.finalize(a, _freed, os.path.join(model_dir, "freed-%d" % os.getpid()))
        return {"cycle": a}

    def predict_fn(data, model):
        return {"frozen": gc.get_freeze_count(), "pid": os.getpid()}
"""


def model_folder(root: Path, name: str, inference: str, util: Optional[str] = None,
                 files: Optional[dict[str, str]] = None) -> Path:
    folder = root / name / "model"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(textwrap.dedent(inference))
    (folder / "code" / "util.py").write_text(f"NAME = {util or name!r}\n")
    for rel, text in (files or {}).items():
        (folder / rel).write_text(text)
    return folder



@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    wheel = make_wheel(root, "mme_test_dep", "FACTOR = 3\n")
    return {
        "alpha": model_folder(root, "alpha", ALPHA, files={"weights.txt": "alpha-weights\n"}),
        "alpha2": model_folder(root, "alpha2", ALPHA, util="alpha2", files={"weights.txt": "other-weights\n"}),
        "beta": model_folder(root, "beta", BETA, files={"code/requirements.txt": f"{wheel}\n"}),
        "broken": model_folder(root, "broken", BROKEN),
        "hungry": model_folder(root, "hungry", HUNGRY),
        "slow": model_folder(root, "slow", SLOW),
        "big": model_folder(root, "big", BIG),
        "streaming": model_folder(root, "streaming", STREAMING),
        "sleepy": model_folder(root, "sleepy", SLEEPY),
        "cycle": model_folder(root, "cycle", CYCLE),
    }


class MultiModelServer(Server):
    def load(self, name: str, url: Path | str) -> Response:
        return self.request("POST", "/models", json.dumps({"model_name": name, "url": str(url)}).encode(),
                            {"Content-Type": "application/json"}, timeout=60)

    def unload(self, name: str) -> Response:
        return self.request("DELETE", f"/models/{name}", timeout=60)

    def call(self, name: str, body: str = "[1, 2]", **headers: str) -> Response:
        hdrs = {"Content-Type": "application/json", **{k.replace("_", "-"): v for k, v in headers.items()}}
        return self.request("POST", f"/models/{name}/invoke", body.encode(), hdrs)

    def rss_of_workers(self) -> int:
        total = 0
        for pid in self.worker_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            total += int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) * 1024
        return total


@pytest.fixture(scope="module")
def start_mme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., MultiModelServer]]:
    """start_mme(code=None, **variables): `serve` with SAGEMAKER_MULTI_MODEL=true and 2 workers, /ping
    200; ``code`` is the server's own inference.py (<base>/model/code), for models that bring none."""
    servers: list[MultiModelServer] = []

    def start(code: Optional[str] = None, **variables: str) -> MultiModelServer:
        base = tmp_path_factory.mktemp("mme")
        if code is not None:
            (base / "model" / "code").mkdir(parents=True)
            (base / "model" / "code" / "inference.py").write_text(textwrap.dedent(code))
        site = base / "site"  # pip installs the models' requirements here, not into the test venv
        site.mkdir()
        server = launch(base, MultiModelServer, SAGEMAKER_MODEL_SERVER_WORKERS="2", SAGEMAKER_MULTI_MODEL="true",
                        PIP_TARGET=str(site), PIP_NO_INDEX="1", PYTHONPATH=str(site), **variables)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop(timeout=10)


@pytest.fixture(scope="module")
def server(start_mme) -> MultiModelServer:
    return start_mme()


def fresh_connections(server: MultiModelServer, path: str, count: int, threads: int = 8,
                      headers: Optional[dict] = None) -> list[tuple[int, bytes]]:
    """``count`` POSTs of [1, 2], each on a new connection, from ``threads`` threads at once."""
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        for _ in range(n):
            resp = server.request("POST", path, b"[1, 2]", {"Content-Type": "application/json", **(headers or {})})
            with lock:
                results.append((resp.status, resp.body))

    pool = [threading.Thread(target=run, args=(count // threads,)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return results


# ------------------------------------------------------------------------------------ the API


def test_ping_is_200_with_no_model_and_invocations_name_their_model(server: MultiModelServer) -> None:
    assert server.request("GET", "/ping").status == 200
    assert server.request("GET", "/models").json() == {"models": []}
    no_target = server.invoke("[1]")
    assert no_target.status == 400
    assert "X-Amzn-SageMaker-Target-Model" in no_target.json()["message"]
    unknown = server.invoke("[1]", X_Amzn_SageMaker_Target_Model="nope")
    assert unknown.status == 404 and "nope" in unknown.json()["message"]
    assert server.call("nope").status == 404
    assert server.request("GET", "/models/nope").status == 404
    assert server.unload("nope").status == 404


def test_two_models_with_same_named_modules_load_and_answer_apart(server: MultiModelServer, models) -> None:
    loaded = server.load("alpha", models["alpha"])
    assert loaded.status == 200, (loaded, server.log)
    assert loaded.json() == {"modelName": "alpha", "modelUrl": str(models["alpha"])}
    assert server.load("beta", models["beta"]).status == 200, server.log
    assert server.load("alpha2", models["alpha2"]).status == 200, server.log

    a = server.call("alpha").json()
    assert (a["model"], a["util"], a["weights"], a["input"]) == ("alpha", "alpha", "alpha-weights", [1, 2])
    assert a["target"] == "alpha"  # /models/{name}/invoke without the header: the name reaches the context
    a2 = server.call("alpha2").json()  # the same inference.py, its own util.py and model folder
    assert (a2["model"], a2["util"], a2["weights"]) == ("alpha2", "alpha2", "other-weights")
    # beta's util.py says "beta"; its requirements.txt installed mme_test_dep (FACTOR = 3)
    assert server.call("beta", "[1, 2]").json() == {"model": "beta", "scaled": [3, 6]}
    # what the SageMaker runtime sends: /invocations with the target model header
    via_header = server.invoke("[5]", X_Amzn_SageMaker_Target_Model="alpha")
    assert via_header.status == 200 and via_header.json()["input"] == [5]
    # both: the header's value reaches the handler (SageMaker's TargetModel, e.g. a .tar.gz name)
    both = server.call("alpha", X_Amzn_SageMaker_Target_Model="alpha.tar.gz").json()
    assert both["target"] == "alpha.tar.gz" and both["model"] == "alpha"
    # the requirements were installed once, by the supervisor, not once per worker
    assert server.log.count(f"installing {models['beta'] / 'code' / 'requirements.txt'}") == 1, server.log

    assert server.request("GET", "/models/beta").json() == {"modelName": "beta", "modelUrl": str(models["beta"])}
    listed = server.request("GET", "/models").json()
    assert [m["modelName"] for m in listed["models"] if m["modelName"] in models] == ["alpha", "alpha2", "beta"]
    assert "nextPageToken" not in listed
    for name in ("alpha", "alpha2", "beta"):
        assert server.unload(name).status == 200


def test_models_are_listed_page_by_page(server: MultiModelServer, models) -> None:
    for name in ("page-a", "page-b", "page-c"):
        assert server.load(name, models["alpha"]).status == 200
    names, token, pages = [], None, 0
    while True:
        query = "/models?limit=2" + (f"&next_page_token={token}" if token else "")
        page = server.request("GET", query).json()
        assert len(page["models"]) <= 2
        names += [m["modelName"] for m in page["models"]]
        pages += 1
        token = page.get("nextPageToken")
        if token is None:
            break
    assert [n for n in names if n.startswith("page-")] == ["page-a", "page-b", "page-c"]
    assert len(names) == len(set(names)) and pages >= 2
    assert server.request("GET", "/models?limit=0").status == 400
    assert server.request("GET", "/models?limit=ten").status == 400
    assert server.request("GET", "/models?next_page_token=%25%25%25").status == 400
    for name in ("page-a", "page-b", "page-c"):
        assert server.unload(name).status == 200


def test_unload_then_the_model_is_gone_everywhere(server: MultiModelServer, models) -> None:
    assert server.load("gone", models["alpha"]).status == 200
    assert server.call("gone").status == 200
    deleted = server.unload("gone")
    assert deleted.status == 200, deleted
    # every worker dropped it before the 200: fresh connections (either worker) all get 404
    statuses = {status for status, _ in fresh_connections(server, "/models/gone/invoke", 40)}
    assert statuses == {404}
    assert server.request("GET", "/models/gone").status == 404
    assert server.unload("gone").status == 404
    assert server.load("gone", models["alpha"]).status == 200  # and it can be loaded again
    assert server.unload("gone").status == 200


@pytest.mark.parametrize("body, says", [
    (b"not json", "JSON object"),
    (b'["a", "list"]', "JSON object"),
    (b'{"url": "/tmp"}', "model_name"),
    (b'{"model_name": "", "url": "/tmp"}', "model_name"),
    (b'{"model_name": "a/b", "url": "/tmp"}', "'/'"),
    (b'{"model_name": "nourl"}', '"url" is missing'),
    (b'{"model_name": "nodir", "url": "/no/such/folder"}', "not a folder"),
])
def test_a_bad_load_request_is_400_saying_why(server: MultiModelServer, body: bytes, says: str) -> None:
    resp = server.request("POST", "/models", body, {"Content-Type": "application/json"})
    assert resp.status == 400, resp
    assert says in resp.json()["message"]


def test_loading_a_loaded_name_is_409(server: MultiModelServer, models) -> None:
    assert server.load("twice", models["alpha"]).status == 200
    again = server.load("twice", models["beta"])
    assert again.status == 409 and "already loaded" in again.json()["message"]
    assert server.call("twice").json()["model"] == "alpha"  # the first one still serves
    assert server.unload("twice").status == 200


def test_a_model_fn_that_raises_is_500_and_leaves_nothing_registered(server: MultiModelServer, models) -> None:
    resp = server.load("broken", models["broken"])
    assert resp.status == 500, resp
    assert "ValueError" in resp.json()["message"] and "weights.bin is corrupt" in resp.json()["message"]
    assert server.request("GET", "/models/broken").status == 404
    assert "broken" not in [m["modelName"] for m in server.request("GET", "/models").json()["models"]]
    assert {s for s, _ in fresh_connections(server, "/models/broken/invoke", 16)} == {404}
    # the name is free: a working model loads under it
    assert server.load("broken", models["alpha"]).status == 200
    assert server.unload("broken").status == 200


def test_a_model_fn_out_of_memory_is_507(server: MultiModelServer, models) -> None:
    resp = server.load("hungry", models["hungry"])
    assert resp.status == 507, resp
    assert "MemoryError" in resp.json()["message"]
    assert server.request("GET", "/models/hungry").status == 404


def test_too_many_models_is_507(start_mme, models) -> None:
    small = start_mme(TOOLKIT_MAX_MODELS="1")
    assert small.load("one", models["alpha"]).status == 200
    full = small.load("two", models["alpha2"])
    assert full.status == 507 and "TOOLKIT_MAX_MODELS=1" in full.json()["message"]
    assert small.unload("one").status == 200
    assert small.load("two", models["alpha2"]).status == 200


def test_too_little_memory_is_507(start_mme, models) -> None:
    tight = start_mme(TOOLKIT_MEMORY_HEADROOM_MB=str(1 << 30))  # a petabyte must stay free: never the case
    resp = tight.load("alpha", models["alpha"])
    assert resp.status == 507 and "TOOLKIT_MEMORY_HEADROOM_MB" in resp.json()["message"]


def test_a_load_is_not_cut_off_by_the_request_time_limit(start_mme, models) -> None:
    own = start_mme(SAGEMAKER_MODEL_SERVER_TIMEOUT="1")
    loaded = own.load("sleepy", models["sleepy"])  # model_fn takes 2.5 s, the limit is 1 s
    assert loaded.status == 200, loaded
    assert own.call("sleepy").json() == "awake"
    assert own.unload("sleepy").status == 200


def test_a_bad_setting_stops_serve_with_one_line(tmp_path: Path) -> None:
    env = clean_environ(SAGEMAKER_BASE_DIR=str(tmp_path), SAGEMAKER_MULTI_MODEL="true", TOOLKIT_MAX_MODELS="lots")
    proc = subprocess.run([str(BIN / "serve")], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "TOOLKIT_MAX_MODELS='lots' is not a whole number" in proc.stderr


def test_a_model_streams_as_a_single_model_does(server: MultiModelServer, models) -> None:
    assert server.load("streaming", models["streaming"]).status == 200
    resp = server.call("streaming", "[]", Accept="text/event-stream")
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers.get("transfer-encoding") == "chunked"
    assert resp.body == b'data: {"chunk": 0}\n\ndata: {"chunk": 1}\n\ndata: {"chunk": 2}\n\n'
    assert server.unload("streaming").status == 200


def test_a_model_without_code_uses_the_servers_code(start_mme, models, tmp_path: Path) -> None:
    own = start_mme(code=SHARED)
    bare = tmp_path / "weights-only" / "model"
    bare.mkdir(parents=True)
    assert own.load("bare", bare).status == 200, own.log
    assert own.call("bare").json() == {"shared_code_for": "weights-only", "model_dir": str(bare)}
    assert own.call("alpha").status == 404
    assert own.load("alpha", models["alpha"]).status == 200  # a model with code/ uses its own
    assert own.call("alpha").json()["model"] == "alpha"


def test_the_same_name_loaded_from_many_workers_at_once_is_loaded_once(server: MultiModelServer, models) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def load() -> None:
        status = server.load("raced", models["slow"]).status
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [409] * 7
    assert server.unload("raced").status == 200


# ------------------------------------------------------------------------------ coordination


def test_every_worker_has_a_model_as_soon_as_its_load_answers(server: MultiModelServer, models) -> None:
    assert server.load("everywhere", models["alpha"]).status == 200
    results = fresh_connections(server, "/models/everywhere/invoke", 120)
    assert {status for status, _ in results} == {200}
    pids = {json.loads(body)["pid"] for _, body in results}
    assert pids == set(server.worker_pids())  # both workers answered, and both had it
    assert server.unload("everywhere").status == 200


def test_load_and_unload_under_traffic(server: MultiModelServer, models) -> None:
    log_start = len(server.log)
    assert server.load("steady", models["alpha"]).status == 200
    seen: dict[str, dict[int, int]] = {"steady": {}, "cycled": {}}
    bodies: set[bytes] = set()
    stop = threading.Event()
    lock = threading.Lock()

    def hammer(name: str) -> None:
        while not stop.is_set():
            try:
                resp = server.call(name, "[1]")
            except OSError as exc:
                raise AssertionError(f"connection failed: {exc}") from exc
            with lock:
                seen[name][resp.status] = seen[name].get(resp.status, 0) + 1
                if name == "cycled" and resp.status == 200:
                    bodies.add(resp.body)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in ("steady", "cycled") * 4]
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            assert server.load("cycled", models["slow"]).status == 200
            time.sleep(0.15)
            assert server.unload("cycled").status == 200
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert set(seen["steady"]) == {200}, seen
    assert set(seen["cycled"]) <= {200, 404} and seen["cycled"].get(200), seen
    assert bodies == {b"true"}  # never a model whose model_fn had not returned
    assert "Traceback" not in server.log[log_start:]
    assert server.unload("steady").status == 200


def test_memory_is_given_back_after_delete(start_mme, models) -> None:
    own = start_mme()
    before = own.rss_of_workers()
    assert own.load("big", models["big"]).status == 200
    assert own.call("big").json()["blocks"] == 2000
    loaded = own.rss_of_workers()
    assert loaded - before > 300 * 2**20, (before, loaded)  # ~200 MB in each of the 2 workers
    assert own.unload("big").status == 200
    after = own.rss_of_workers()  # measured right after the 200: released before it was sent
    assert after - before < 60 * 2**20, (before, loaded, after)


def test_an_unloaded_models_cycles_are_freed_though_frozen_at_its_load(server: MultiModelServer, models) -> None:
    assert server.load("cycle", models["cycle"]).status == 200
    answers = [server.call("cycle").json() for _ in range(6)]
    assert all(a["frozen"] > 0 for a in answers), answers  # frozen after the load, in every worker
    assert not list(models["cycle"].glob("freed-*"))
    assert server.unload("cycle").status == 200
    assert len(list(models["cycle"].glob("freed-*"))) == 2, server.log  # both workers, before the 200


def test_a_replacement_worker_serves_the_loaded_models(start_mme, models) -> None:
    own = start_mme()
    assert own.load("alpha", models["alpha"]).status == 200
    assert own.load("beta", models["beta"]).status == 200
    old = set(own.worker_pids())
    victim = sorted(old)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = set(own.worker_pids())
        if len(now) == 2 and now != old:
            break
        time.sleep(0.05)
    new = set(own.worker_pids()) - old
    assert len(new) == 1, own.log
    assert "killed by SIGKILL" in own.log
    answered_by: set[int] = set()
    deadline = time.monotonic() + 60
    while not new <= answered_by and time.monotonic() < deadline:
        results = fresh_connections(own, "/models/alpha/invoke", 40)
        assert {status for status, _ in results} == {200}, own.log  # the new one serves only once loaded
        answered_by |= {json.loads(body)["pid"] for _, body in results}
    assert new <= answered_by, own.log  # ... and then it does serve
    assert {s for s, _ in fresh_connections(own, "/models/beta/invoke", 40)} == {200}
    assert own.request("GET", "/models").json()["models"][0]["modelName"] == "alpha"
    # the replacement takes part in later loads and unloads too
    assert own.unload("alpha").status == 200
    assert {s for s, _ in fresh_connections(own, "/models/alpha/invoke", 40)} == {404}


# ------------------------------------------------------------------------------ the SDK


def test_the_sdk_local_runtime_client_invokes_a_target_model(server: MultiModelServer, models) -> None:
    pytest.importorskip("sagemaker", reason="the SageMaker Python SDK v2 is not installed")
    import boto3
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.local import LocalSession
    from sagemaker.local.local_session import LocalSagemakerRuntimeClient
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import JSONSerializer

    assert server.load("sdk-alpha", models["alpha"]).status == 200
    assert server.load("sdk-beta", models["beta"]).status == 200
    session = LocalSession(boto_session=boto3.Session(region_name="us-east-1", aws_access_key_id="testing",
                                                      aws_secret_access_key="testing"))
    session.sagemaker_runtime_client = LocalSagemakerRuntimeClient({"local": {"serving_port": server.port}})
    predictor = Predictor("local-mme", sagemaker_session=session, serializer=JSONSerializer(),
                          deserializer=JSONDeserializer())
    got = predictor.predict([4, 5], target_model="sdk-alpha")
    assert (got["model"], got["target"], got["input"]) == ("alpha", "sdk-alpha", [4, 5])
    assert predictor.predict([4, 5], target_model="sdk-beta") == {"model": "beta", "scaled": [12, 15]}
    raw = session.sagemaker_runtime_client.invoke_endpoint(Body=b"[1]", EndpointName="local-mme",
                                                           ContentType="application/json", TargetModel="missing")
    assert raw["Body"].status == 404
    assert server.unload("sdk-alpha").status == 200
    assert server.unload("sdk-beta").status == 200


# ------------------------------------------------------------------------------ memory accounting


def test_available_memory_counts_the_containers_cgroup_limit(tmp_path: Path) -> None:
    from toolkit.serving.multimodel import memory

    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text(f"{1024 * 2**20}\n")
    (v2 / "memory.current").write_text(f"{900 * 2**20}\n")
    (v2 / "memory.stat").write_text(f"anon 1\ninactive_file {100 * 2**20}\nactive_file 5\n")
    assert memory.cgroup_available(v2) == 224 * 2**20  # page cache that can be dropped is not "used"
    (v2 / "memory.max").write_text("max\n")
    assert memory.cgroup_available(v2) is None  # no limit: the host's MemAvailable decides
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text(f"{2048 * 2**20}\n")
    (v1 / "memory" / "memory.usage_in_bytes").write_text(f"{1024 * 2**20}\n")
    (v1 / "memory" / "memory.stat").write_text("total_inactive_file 0\n")
    assert memory.cgroup_available(v1) == 1024 * 2**20
    (v1 / "memory" / "memory.limit_in_bytes").write_text(f"{2**63 - 4096}\n")  # v1's "no limit"
    assert memory.cgroup_available(v1) is None
    # the smaller of MemAvailable and what the cgroup leaves, each when known
    meminfo, missing = tmp_path / "meminfo", tmp_path / "no-meminfo"
    meminfo.write_text("MemTotal:        8000000 kB\nMemFree:  100 kB\nMemAvailable:    4000000 kB\n")
    assert memory.meminfo_available(meminfo) == 4000000 * 1024
    assert memory.meminfo_available(missing) is None
    assert memory.available_bytes(meminfo, v1) == 4000000 * 1024  # no cgroup limit
    (v1 / "memory" / "memory.limit_in_bytes").write_text(f"{2048 * 2**20}\n")
    assert memory.available_bytes(meminfo, v1) == 1024 * 2**20  # the limit leaves less
    assert memory.available_bytes(missing, v1) == 1024 * 2**20
    assert memory.available_bytes(missing, tmp_path / "no-cgroup") is None
    # and on this machine (Linux: /proc/meminfo is always there)
    assert (memory.meminfo_available() or 0) > 0
    assert (memory.available_bytes() or 0) > 0
