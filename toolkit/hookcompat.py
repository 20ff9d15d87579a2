"""Plugins written against 0.1's hook signatures keep working (docs/hooks.md, "Changes").

pluggy matches a hook implementation's argument names against the spec when it registers it. In
0.1 ``toolkit_fetch_code`` and ``toolkit_install_dependencies`` took the settings mapping as
``env``; they now take it as ``settings`` (``env`` is the job's parsed environment everywhere), and
the installer gets the named requirements file as ``requirements`` instead of through a made-up
TOOLKIT_REQUIREMENTS entry. ``toolkit_serve`` took ``(app, sock, env, slot)`` and left the time
limit, draining and balancing to the server; it now takes the ``worker`` that owns them. ``adapt``
gives such a plugin a stand-in whose old implementations are called the old way, and logs one line
saying what to change.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Optional

from toolkit.hookspecs import PROJECT
from toolkit.log import log

OLD_NAME = "env"  # what both hooks called the settings mapping in 0.1
OLD_SERVE = {"app", "sock", "env", "slot"}  # what toolkit_serve took in 0.1


def _settings_as_env(settings: Mapping[str, str], requirements: Optional[str]) -> Mapping[str, str]:
    """The mapping a 0.1 implementation read: the named requirements file was an entry in it."""
    return {**settings, "TOOLKIT_REQUIREMENTS": requirements} if requirements else settings


def _shim(hook: str, impl: Callable[..., Any]) -> Callable[..., Any]:
    """A function with today's argument names (pluggy reads them) that calls ``impl`` with 0.1's."""
    wanted = {p.name for p in inspect.signature(impl).parameters.values() if p.default is p.empty}

    def call(**given: Any) -> Any:
        return impl(**{k: v for k, v in given.items() if k in wanted})

    if hook == "toolkit_fetch_code":
        def shim(uri: Any, dest: Any, settings: Any) -> Any:
            return call(uri=uri, dest=dest, env=settings)
    elif hook == "toolkit_serve":
        def shim(worker: Any) -> Any:  # type: ignore[misc]
            return call(app=worker.app, sock=worker.sock, env=worker.env, slot=worker.slot)
    else:
        def shim(code_dir: Any, settings: Any, requirements: Any) -> Any:  # type: ignore[misc]
            return call(code_dir=code_dir, env=_settings_as_env(settings, requirements))
    shim.__name__ = shim.__qualname__ = hook
    setattr(shim, f"{PROJECT}_impl", getattr(impl, f"{PROJECT}_impl"))
    return shim


class _Adapted:
    """``plugin`` as pluggy should see it: its own attributes, but its 0.1-style hooks replaced."""

    def __init__(self, plugin: Any, shims: Mapping[str, Callable[..., Any]]) -> None:
        self._plugin = plugin
        self.__dict__.update(shims)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._plugin, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._plugin)) | set(self.__dict__))

    def __repr__(self) -> str:
        return f"<{self._plugin!r} with 0.1 hook signatures adapted>"


def adapt(plugin: Any, name: str) -> Any:
    """``plugin`` itself, or a stand-in for it when a hook still takes 0.1's arguments."""
    shims = {}
    for hook in ("toolkit_fetch_code", "toolkit_install_dependencies", "toolkit_serve"):
        impl = getattr(plugin, hook, None)
        if impl is None or not hasattr(impl, f"{PROJECT}_impl"):
            continue
        try:
            params = inspect.signature(impl).parameters
        except (TypeError, ValueError):
            continue
        if hook == "toolkit_serve":
            if params and set(params) <= OLD_SERVE:
                log.warning("plugin %r: toolkit_serve takes (%s), the 0.1 arguments; take the one argument "
                            "'worker' and serve worker.timed_app() (still called for now, without the "
                            "time limit; see docs/hooks.md#changes)", name, ", ".join(params))
                shims[hook] = _shim(hook, impl)
        elif OLD_NAME in params:
            log.warning("plugin %r: %s takes its settings as %r, the 0.1 name; rename the argument to "
                        "'settings' (still called for now; see docs/hooks.md#changes)", name, hook, OLD_NAME)
            shims[hook] = _shim(hook, impl)
    return _Adapted(plugin, shims) if shims else plugin
