"""Time the phases of our ``train`` start-up inside one fresh interpreter; print JSON (ms).

Run by bench_train.py with our Python, in the benchmark job's environment, many times. Each phase
is timed with perf_counter, in the order ``train`` meets them, so a module imported by an earlier
phase is not counted again. Uses a few internals of toolkit.manager (BUILTIN_PLUGINS,
_entry_points): a phase whose names moved is reported as an error instead of a time.
"""

import json
import os
import sys
import time

phases = {}
errors = {}
last = time.perf_counter()


def phase(name, fn):
    global last
    try:
        fn()
    except Exception as exc:  # report, keep timing the rest
        errors[name] = f"{type(exc).__name__}: {exc}"
    now = time.perf_counter()
    phases[name] = (now - last) * 1000
    last = now


def builtin_plugins():
    import importlib

    from toolkit.builtin import BUILTIN_PLUGINS, SERVING_ONLY

    for name, module in BUILTIN_PLUGINS.items():
        if name not in SERVING_ONLY:  # train does not load the serving-only ones
            importlib.import_module(module)


def entry_points():
    from toolkit.manager import _entry_points

    list(_entry_points())


def plugin_manager():
    from toolkit.manager import get_plugin_manager

    get_plugin_manager(os.environ, training=True)


def training_env():
    from toolkit.environment import TrainingEnv

    TrainingEnv.from_environ(os.environ)


phase("import toolkit, toolkit.scripts (the train console script: re-exports on first use, no click)",
      lambda: __import__("toolkit.scripts"))
phase("import toolkit.training (pluggy -> inspect, typing; pathlib, json, the toolkit's modules)",
      lambda: __import__("toolkit.training"))
phase("import the built-in plugin modules train registers (toolkit/builtin/*, not the serving-only ones)",
      builtin_plugins)
phase("get_plugin_manager() (registers the built-ins, reads entry_points.txt of installed distributions)",
      plugin_manager)
phase("TrainingEnv.from_environ() (reads the config files)", training_env)
# For reference, not part of train's sequence: what the entry-point scan alone costs.
reference = {}
started = time.perf_counter()
try:
    entry_points()
    reference["of which: one scan of the installed distributions for toolkit.plugins entry points"] = (
        (time.perf_counter() - started) * 1000)
except Exception as exc:
    errors["scan"] = f"{type(exc).__name__}: {exc}"
json.dump({"phases": phases, "reference": reference, "errors": errors, "modules": len(sys.modules)}, sys.stdout)
