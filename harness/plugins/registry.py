"""The registry: every backend and task the plugins provide, by unique name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from harness.api import Backend, Task, name_problem
from harness.executor import Executor
from harness.plugins.manager import Plugins, _describe, call_each, make_plugin_manager

KINDS: dict[str, tuple[str, type]] = {  # kind -> (hook, base class)
    "backend": ("bench_backends", Backend),
    "task": ("bench_tasks", Task),
    "executor": ("bench_executors", Executor),
}


class DuplicateNameError(ValueError):
    """Two plugins registered a backend (or task) under the same name."""


@dataclass
class Registry:
    backends: dict[str, type[Backend]] = field(default_factory=dict)
    tasks: dict[str, type[Task]] = field(default_factory=dict)
    owner: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> plugin name
    executors: dict[str, type[Executor]] = field(default_factory=dict)

    def table(self, kind: str) -> dict[str, type]:
        return {"backend": self.backends, "task": self.tasks, "executor": self.executors}[kind]

    def add(self, kind: str, cls: type, plugin: str) -> None:
        """Register one class; a name already taken raises DuplicateNameError naming both plugins."""
        base = KINDS[kind][1]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError(f"{cls!r} is not a {base.__name__} subclass")
        name = getattr(cls, "name", None)
        problem = name_problem(name)
        if problem:
            raise ValueError(f"{kind} name {name!r} of {cls.__name__} {problem}")
        modes = getattr(cls, "modes", ()) if kind == "backend" else ()
        if not isinstance(modes, (tuple, list)):
            raise TypeError(f"backend {name}: modes must be a tuple of names, not {type(modes).__name__}")
        for mode in modes:
            problem = name_problem(mode)
            if problem:
                raise ValueError(f"backend {name}: mode name {mode!r} {problem}")
        table = self.table(kind)
        if name in table:
            raise DuplicateNameError(
                f"{kind} name {name!r} from plugin {plugin!r} is already registered "
                f"by plugin {self.owner[(kind, name)]!r}"
            )
        table[name] = cls
        self.owner[(kind, name)] = plugin


def build_registry(plugins: Plugins | None = None) -> tuple[Registry, Plugins]:
    """Ask every plugin for its backends and tasks. A plugin whose hook raises or returns a
    bad or duplicate class is marked broken and contributes nothing; built-ins are asked
    first, so they keep their names."""
    plugins = plugins or make_plugin_manager()
    staged: dict[str, list[tuple[str, type]]] = {}
    failed: dict[str, str] = {}
    for kind, (hook, _) in KINDS.items():
        for plugin_name, classes, exc in call_each(plugins, hook):
            if exc is not None:
                failed.setdefault(plugin_name, _describe(exc))
            else:
                staged.setdefault(plugin_name, []).extend((kind, cls) for cls in classes or [])
    registry = Registry()
    for plugin_name, info in plugins.infos.items():
        if info.broken:
            continue
        if plugin_name in failed:
            plugins.mark_broken(plugin_name, failed[plugin_name])
            continue
        trial = Registry(dict(registry.backends), dict(registry.tasks), dict(registry.owner),
                         dict(registry.executors))
        try:
            for kind, cls in staged.get(plugin_name, []):
                trial.add(kind, cls, plugin_name)
        except (TypeError, ValueError) as exc:
            plugins.mark_broken(plugin_name, str(exc))
            continue
        registry = trial
        info.provides = [f"{kind} {cls.name}" for kind, cls in staged.get(plugin_name, [])]
    return registry, plugins


def names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))
