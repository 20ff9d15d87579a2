"""The plugin manager: built-ins and installed plugins, registered the same way.

Controls (read from the environment mapping passed in, never from ``os.environ`` directly):

- ``TOOLKIT_PLUGINS``: comma-separated allow-list of installed (entry-point) plugins to load;
  unset loads them all. Built-ins are not subject to it: block those by name instead.
- ``TOOLKIT_DISABLE_PLUGINS``: comma-separated names of plugins (built-in or installed) to skip.
- ``TOOLKIT_TRACE_PLUGINS``: when true, log every hook call with its arguments and result.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Callable, Iterable, Mapping, NamedTuple

import pluggy

from toolkit import hookspecs, settings
from toolkit.builtin import BUILTIN_PLUGINS, SERVING_ONLY
from toolkit.errors import ConfigError
from toolkit.log import log

ENTRY_POINT_GROUP = "toolkit.plugins"


class PluginInfo(NamedTuple):
    """One registered plugin, as ``toolkit plugins`` shows it."""

    name: str
    source: str
    hooks: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "hooks": list(self.hooks)}


def _entry_points() -> Iterable[tuple[str, str, str]]:
    """(name, "module:attr", "distribution version") for every installed plugin, first per name.

    Reads the ``entry_points.txt`` of each installed distribution on sys.path directly, the way
    importlib.metadata finds them, but without importing importlib.metadata (and email, csv,
    zipfile...) on every job start: with no plugin installed this costs a directory listing.
    A zip file on sys.path (rare) is read with zipfile. tests/test_startup_shortcuts.py checks
    the result against importlib.metadata.entry_points.
    """
    seen: set[str] = set()
    for name, read in _distributions():
        for ep_name, value in _group_entries(read("entry_points.txt")):
            if ep_name not in seen:
                seen.add(ep_name)
                yield ep_name, value, _distribution(read("METADATA") or read("PKG-INFO"), name)


INFO = (".dist-info", ".egg-info")


def _distributions() -> Iterable[tuple[str, Callable[[str], str]]]:
    """(metadata folder name, read(file in it)) for each distribution on sys.path, in order."""
    for folder in sys.path:
        try:
            names = sorted(os.listdir(folder or "."))
        except NotADirectoryError:  # a zip file
            yield from _zipped(folder)
            continue
        except OSError:
            continue
        for name in names:
            if name.endswith(INFO):
                info = os.path.join(folder or ".", name)
                yield name, lambda member, info=info: _read(os.path.join(info, member))


def _zipped(path: str) -> Iterable[tuple[str, Callable[[str], str]]]:
    import zipfile

    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile):
        return
    with zf:
        files = set(zf.namelist())
        for name in sorted({n.split("/", 1)[0] for n in files if n.split("/", 1)[0].endswith(INFO)}):
            yield name, lambda member, info=name: (zf.read(f"{info}/{member}").decode("utf-8")
                                                   if f"{info}/{member}" in files else "")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return ""


def _load(value: str) -> Any:
    """Import what an entry point names: ``module``, ``module:attr.attr``, either with ``[extras]``."""
    module_name, _, attrs = value.split("[", 1)[0].partition(":")
    obj = importlib.import_module(module_name.strip())
    for attr in filter(None, attrs.strip().split(".")):
        obj = getattr(obj, attr)
    return obj


def _group_entries(text: str) -> list[tuple[str, str]]:
    if f"[{ENTRY_POINT_GROUP}]" not in text:
        return []
    entries, inside = [], False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            inside = line == f"[{ENTRY_POINT_GROUP}]"
        elif inside and "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            entries.append((key.strip(), value.strip()))
    return entries


def _distribution(metadata: str, folder_name: str) -> str:
    """ "name version" from the METADATA (or PKG-INFO) header, else from the folder name."""
    fields: dict[str, str] = {}
    for line in metadata.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        if key in ("Name", "Version"):
            fields.setdefault(key, value.strip())
    stem = folder_name.rsplit(".", 1)[0]
    name, _, version = stem.partition("-")
    return f"{fields.get('Name', name)} {fields.get('Version', version)}".strip()


def get_plugin_manager(
    environ: Mapping[str, str], extra: Iterable[Any] = (), *, training: bool = False
) -> pluggy.PluginManager:
    """Build the plugin manager: built-ins first, then installed plugins, then ``extra``.

    pluggy calls the most recently registered implementation first, so installed plugins (and
    ``extra`` ones, used by tests and embedding code) answer before the built-ins.
    ``training=True`` (the ``train`` flow) leaves out the serving-only built-ins, which
    implement no hook a training run calls; installed plugins are loaded either way. The names in
    TOOLKIT_DISABLE_PLUGINS are blocked with pluggy's own ``set_blocked`` (and never imported).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in settings.read(environ, "TOOLKIT_DISABLE_PLUGINS"):
        pm.set_blocked(name)
    allowed = settings.read(environ, "TOOLKIT_PLUGINS")

    for name, module_name in BUILTIN_PLUGINS.items():
        if not pm.is_blocked(name) and not (training and name in SERVING_ONLY):
            pm.register(importlib.import_module(module_name), name=name)

    found: set[str] = set()
    for name, value, _origin in _entry_points():
        found.add(name)
        if pm.is_blocked(name) or (allowed and name not in allowed):
            continue
        try:
            plugin = _load(value)
        except Exception as exc:  # a broken plugin must not look like a broken job
            raise ConfigError(
                f"plugin {name!r} ({value}) failed to import: {type(exc).__name__}: {exc}; "
                f"fix it or add it to TOOLKIT_DISABLE_PLUGINS"
            ) from exc
        _register(pm, plugin, name)

    for plugin in extra:
        _register(pm, plugin, getattr(plugin, "__name__", None) or type(plugin).__name__)

    registered = {name for name, plugin in pm.list_name_plugin() if plugin is not None}
    _warn_unknown(environ, known={*BUILTIN_PLUGINS, *found, *registered})
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(_one_line(exc)) from exc
    if settings.read(environ, "TOOLKIT_TRACE_PLUGINS"):
        _trace(pm)
    return pm


def _register(pm: pluggy.PluginManager, plugin: Any, name: str) -> None:
    """Register an installed (or ``extra``) plugin: 0.1 hook signatures adapted, and a plugin
    whose hooks do not fit the specs refused with one line naming it."""
    from toolkit.hookcompat import adapt

    try:
        pm.register(adapt(plugin, name), name=name)
    except pluggy.PluginValidationError as exc:
        raise ConfigError(_one_line(exc)) from exc


def _one_line(exc: pluggy.PluginValidationError) -> str:
    """pluggy's several-line message as one line, with what to do about it."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    name = getattr(exc.plugin, "__name__", None) or type(exc.plugin).__name__
    return f"plugin {name!r} does not fit the hooks: {text}; see docs/hooks.md, or add it to TOOLKIT_DISABLE_PLUGINS"


def _warn_unknown(environ: Mapping[str, str], known: set[str]) -> None:
    """A name in TOOLKIT_PLUGINS / TOOLKIT_DISABLE_PLUGINS that is no plugin here is most likely
    a typo, which would otherwise silently load (or block) nothing."""
    for variable in ("TOOLKIT_PLUGINS", "TOOLKIT_DISABLE_PLUGINS"):
        unknown = sorted(set(settings.read(environ, variable)) - known)
        if unknown:
            log.warning("%s names %s, which %s no plugin here; the plugins are: %s", variable,
                        ", ".join(repr(n) for n in unknown), "is" if len(unknown) == 1 else "are",
                        ", ".join(sorted(known)))


def _trace(pm: pluggy.PluginManager) -> None:
    def before(hook_name: str, impls: list, kwargs: Mapping[str, Any]) -> None:
        names = ", ".join(impl.plugin_name for impl in impls)
        log.info("hook %s(%s) -> [%s]", hook_name, ", ".join(kwargs), names)

    def after(outcome: Any, hook_name: str, impls: list, kwargs: Mapping[str, Any]) -> None:
        from toolkit.redact import mask_value

        exc = outcome.exception
        # masked before it is cut to 200 characters, so a cut never splits a secret from its name
        result = f"raised {type(exc).__name__}: {exc}" if exc else repr(mask_value(outcome.get_result()))[:200]
        log.info("hook %s returned %s", hook_name, result)

    pm.add_hookcall_monitoring(before, after)


def describe(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every registered plugin with where it came from and the hooks it implements."""
    origins = {name: f"entry point ({origin})" for name, _value, origin in _entry_points()}
    origins.update((name, f"builtin ({module})") for name, module in BUILTIN_PLUGINS.items())
    plugins = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked
            continue
        hooks = tuple(sorted(hc.name for hc in pm.get_hookcallers(plugin) or []))
        plugins.append(PluginInfo(name, origins.get(name, "registered in code"), hooks))
    return plugins
