"""`bench list`, `bench plugins` and `bench env`: what is installed and what a run would record."""

from __future__ import annotations

import argparse
import json

from harness.cli.loading import environment, registry
from harness.cli.output import table_cells, terminal_width
from harness.exits import EXIT_OK
from harness.store.safe_text import one_line


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("list", help="tasks and backends, with availability").set_defaults(handler=list_command)
    sub.add_parser("plugins", help="plugins, versions, and broken ones with the reason").set_defaults(
        handler=plugins_command)
    sub.add_parser("env", help="the machine and software a run would record").set_defaults(handler=env_command)


def list_command(args: argparse.Namespace, argv: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    reg, _ = registry(args)
    tasks = Table(title="Tasks")
    for column in ("task", "description", "target", "defaults"):
        tasks.add_column(column)
    for name, cls in sorted(reg.tasks.items()):
        hp = cls.defaults
        tasks.add_row(*table_cells(name, cls.description, cls.target_text(),
                                   f"{hp.optimizer} lr={hp.lr:g} batch={hp.batch_size} epochs={hp.epochs}"))
    backends = Table(title="Backends")
    for column in ("backend", "available", "version", "modes", "devices", "precisions"):
        backends.add_column(column)
    for name, cls in sorted(reg.backends.items()):
        a = cls.availability()
        backends.add_row(*table_cells(name, "yes" if a.ok else f"no: {a.reason}", a.version or "-",
                                      ", ".join(cls.modes), ", ".join(map(str, cls.devices)),
                                      ", ".join(map(str, cls.precisions))))
    console = Console(width=max(100, terminal_width()))
    console.print(tasks)
    console.print(backends)
    return EXIT_OK


def plugins_command(args: argparse.Namespace, argv: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    reg, plugins = registry(args)
    table = Table(title="Plugins")
    for column in ("plugin", "source", "distribution", "provides", "status"):
        table.add_column(column)
    for name, info in plugins.infos.items():
        dist = f"{info.distribution} {info.version}" if info.distribution else "bench (built in)"
        provided = []
        for item in info.provides:
            kind, _, item_name = item.partition(" ")
            if kind == "backend":
                a = reg.backends[item_name].availability()
                item += f" ({a.version})" if a.ok else f" (unavailable: {a.reason})"
            provided.append(one_line(item))
        status = f"broken: {info.broken}" if info.broken else "ok"
        table.add_row(*table_cells(name, info.source, dist), "\n".join(table_cells(*provided)) or "-",
                      *table_cells(status))
    Console(width=max(100, terminal_width())).print(table)
    return EXIT_OK


def env_command(args: argparse.Namespace, argv: list[str]) -> int:
    _, plugins = registry(args)
    print(json.dumps(environment(plugins), indent=2, sort_keys=True))
    return EXIT_OK
