"""The garbage collector keeps off what a worker holds for its whole life (toolkit.serving.heap):
real ``serve`` processes whose model owns many objects, asked from inside predict_fn."""

from __future__ import annotations

import pytest
import serving_helpers
from serving_helpers import Server

start_server = serving_helpers.start_server  # the fixture

# A model of 200,000 small containers: each is an object the collector tracks (torch and its model held
# ~180,000 in bench_batching.py, and each full collection walked them all: ~100 ms per stop).
MANY = """
    import gc
    import os

    def model_fn(model_dir):
        return [[i] for i in range(200_000)]

    def predict_fn(data, model):
        return {"frozen": gc.get_freeze_count(), "rows": len(model), "pid": os.getpid()}
"""


@pytest.mark.parametrize("preload", ["false", "true"])
def test_what_the_model_loaded_is_out_of_the_collectors_reach(start_server, preload: str) -> None:
    server: Server = start_server(MANY, TOOLKIT_PRELOAD_MODEL=preload)
    answers = [server.invoke(b"{}", "application/json").json() for _ in range(6)]
    assert all(a["rows"] == 200_000 and a["frozen"] >= 200_000 for a in answers), answers


def test_gc_freeze_false_leaves_the_collector_as_python_has_it(start_server) -> None:
    server: Server = start_server(MANY, TOOLKIT_GC_FREEZE="false")
    answer = server.invoke(b"{}", "application/json").json()
    assert answer["rows"] == 200_000 and answer["frozen"] < 100_000, answer  # (CPython keeps a few hundred)
