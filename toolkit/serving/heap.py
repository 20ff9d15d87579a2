"""Keeping CPython's cyclic garbage collector away from what a worker keeps for its whole life.

Why: a full collection walks every object the collector tracks, and a worker that has imported torch
and loaded a model tracks about 180,000 (the MLP of bench/bench_batching.py). Under load each full
collection stopped the worker for 83-123 ms, about once every 8 s, and at 64 connections those
stops were wrk's p99: 48-72 ms against a median of 10 ms. ``gc.freeze()`` moves every object alive
at that moment into a generation the collector never walks. It is called once the model is loaded
(in the supervisor with TOOLKIT_PRELOAD_MODEL, before forking, where it also keeps the collector from
writing to the pages the workers share); in the same sequence of runs p99 was then 17-23 ms.

What it costs: an object alive at the freeze that later becomes garbage inside a reference cycle is
never freed (reference counting still frees everything else). A multi-model worker, whose models
come and go, unfreezes and collects at every load and unload (one full collection each, while its
other models keep serving), so that an unloaded model's cycles are freed.
TOOLKIT_GC_FREEZE=false turns it off.
"""

from __future__ import annotations

import gc


def settle(freeze: bool) -> None:
    """After a model load or unload: collect everything, then (``freeze``) freeze what is alive."""
    gc.unfreeze()  # (what an earlier freeze kept out of reach: an unloaded model's cycles among it)
    gc.collect()
    if freeze:
        gc.freeze()
