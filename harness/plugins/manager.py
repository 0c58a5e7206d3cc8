"""The plugin manager: built-in plugins from an explicit list, then third-party entry points.

Nothing here runs at import time; every caller builds its own manager with
`make_plugin_manager`, so tests get a fresh one each.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field
from typing import Iterable

import pluggy

from harness import hookspecs
from harness.store.safe_text import one_line

ENTRY_POINT_GROUP = "bench.plugins"
DISABLE_AUTOLOAD_ENV = "BENCH_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_ENV = "BENCH_BLOCK_PLUGINS"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "harness.execute.builtin",
    "tasks.builtin",
    "backends.torch_backend",
    "backends.tf_backend",
    "backends.jax_backend",
    "backends.keras_backend",
)


@dataclass
class PluginInfo:
    name: str
    source: str  # "builtin" or "entry point"
    module: str
    distribution: str | None = None
    version: str | None = None
    broken: str | None = None  # why it could not be used, if it could not
    provides: list[str] = field(default_factory=list)


@dataclass
class Plugins:
    """A plugin manager together with what was tried and what broke."""

    manager: pluggy.PluginManager
    infos: dict[str, PluginInfo]

    def mark_broken(self, name: str, reason: str) -> None:
        self.infos[name].broken = one_line(reason)
        plugin = self.manager.get_plugin(name)
        if plugin is not None:
            self.manager.unregister(plugin)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _blocked_from_env() -> set[str]:
    return {n.strip() for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip()}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return one_line(f"{type(exc).__name__}: {text[-1]}" if text else type(exc).__name__)


def make_plugin_manager(
    autoload: bool | None = None,
    blocked: Iterable[str] = (),
    builtins: Iterable[str] = BUILTIN_PLUGINS,
) -> Plugins:
    """Build a plugin manager.

    autoload: load third-party entry points; default is on unless the
    BENCH_DISABLE_PLUGIN_AUTOLOAD environment variable is set.
    blocked: plugin names (a builtin's module name or an entry point's name) to
    skip, in addition to those in BENCH_BLOCK_PLUGINS (comma-separated).
    """
    if autoload is None:
        autoload = not _env_flag(DISABLE_AUTOLOAD_ENV)
    blocked = set(blocked) | _blocked_from_env()
    pm = pluggy.PluginManager("bench")
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(pm, {})

    for module_name in builtins:
        if module_name in blocked:
            continue
        info = PluginInfo(module_name, "builtin", module_name)
        plugins.infos[module_name] = info
        _register(plugins, info, lambda: importlib.import_module(module_name))

    if autoload:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in blocked or ep.name in plugins.infos:
                continue
            dist = ep.dist.name if ep.dist else None
            info = PluginInfo(ep.name, "entry point", ep.value, dist, ep.dist.version if ep.dist else None)
            plugins.infos[ep.name] = info
            _register(plugins, info, ep.load)
    return plugins


def call_each(plugins: Plugins, hook: str, **kwargs) -> list[tuple[str, object, BaseException | None]]:
    """Call one hook plugin by plugin, so one failing implementation doesn't hide the others' answers.

    Each call goes through pluggy (a subset caller holding that plugin and every wrapper of the hook),
    so an implementation may take any subset of the hook's arguments and wrappers wrap each call.
    Returns (plugin name, result, exception) per implementation, in registration order.
    """
    manager = plugins.manager
    impls = getattr(manager.hook, hook).get_hookimpls()
    wrappers = {id(i.plugin) for i in impls if i.hookwrapper or i.wrapper}
    plain = [i for i in impls if not (i.hookwrapper or i.wrapper)]
    answers = []
    for impl in reversed(plain):  # pluggy lists LIFO
        others = [i.plugin for i in plain if i.plugin is not impl.plugin and id(i.plugin) not in wrappers]
        try:
            result = manager.subset_hook_caller(hook, remove_plugins=others)(**kwargs)
            answers.append((impl.plugin_name, result[0] if result else None, None))
        except (Exception, SystemExit) as exc:
            answers.append((impl.plugin_name, None, exc))
    return answers


def _register(plugins: Plugins, info: PluginInfo, load) -> None:
    """Import and register one plugin; on any failure mark it broken and go on."""
    try:
        plugin = load()
        plugins.manager.register(plugin, name=info.name)
    except (Exception, SystemExit) as exc:  # a broken plugin never takes the others down
        info.broken = _describe(exc)
        return
    unknown = sorted(
        caller.name for caller in plugins.manager.get_hookcallers(plugin) or [] if caller.spec is None
    )
    if unknown:
        plugins.mark_broken(info.name, f"implements unknown hook(s): {', '.join(unknown)}")
