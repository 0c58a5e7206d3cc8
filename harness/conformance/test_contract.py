"""What the backend class declares, checked without training anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.api import DEVICES, OPTIMIZERS, PRECISIONS, Availability, name_problem
from harness.conformance.support import Case, Subject, hyperparams_for
from harness.model import LAYER_KINDS


def _strings(value) -> bool:
    return isinstance(value, (tuple, list, frozenset, set)) and all(isinstance(v, str) and v for v in value)


def test_name_module_and_distributions(subject: Subject):
    b = subject.backend
    name = getattr(b, "name", None)
    assert name_problem(name) is None, f"name {name!r} {name_problem(name)}"
    module = getattr(b, "module", "")
    assert module is None or (isinstance(module, str) and module), \
        "module must name the framework's import name, or be None for a backend with no framework to import"
    assert _strings(getattr(b, "distributions", None)) and b.distributions, \
        "distributions must list the pip distribution(s) of the framework (with module None: the plugin's own)"


def test_declared_modes_devices_precisions_optimizers_layers(subject: Subject):
    b = subject.backend
    assert _strings(b.modes) and b.modes and len(set(b.modes)) == len(b.modes), f"modes: {b.modes!r}"
    bad = {m: name_problem(m) for m in b.modes if name_problem(m)}
    assert not bad, f"mode names: {bad}"
    assert _strings(b.devices) and b.devices and set(b.devices) <= set(DEVICES), \
        f"devices {b.devices!r} must be among {DEVICES}"
    assert _strings(b.precisions) and "fp32" in b.precisions and set(b.precisions) <= set(PRECISIONS), \
        f"precisions {b.precisions!r} must include fp32 and be among {PRECISIONS}"
    assert _strings(b.optimizers) and b.optimizers and set(b.optimizers) <= set(OPTIMIZERS), \
        f"optimizers {b.optimizers!r} must be among {OPTIMIZERS}"
    kinds = {k.__name__ for k in LAYER_KINDS}
    assert _strings(b.layer_kinds) and b.layer_kinds and set(b.layer_kinds) <= kinds, \
        f"layer_kinds {sorted(b.layer_kinds)!r} must be among {sorted(kinds)}"


def test_is_available_with_a_version(subject: Subject):
    a = subject.backend.availability()
    assert isinstance(a, Availability)
    assert a.ok, f"not available: {a.reason}"
    assert isinstance(a.version, str) and a.version, "an available backend reports its framework's version"


def test_unsupported_reasons_are_none_or_text(subject: Subject):
    """Every task x mode x device x precision x optimizer gets None or a reason; undeclared choices get a reason."""
    b = subject.backend
    bad = []
    for task in subject.tasks.values():
        for mode in (*b.modes, "no_such_mode"):
            for device in DEVICES:
                for precision in PRECISIONS:
                    for optimizer in OPTIMIZERS:
                        cell = subject.cell(Case(task, mode, hyperparams_for(b, task)), device=device,
                                            precision=precision, hp=task.hyperparams(optimizer=optimizer))
                        reason = b.unsupported_reason(task, cell)
                        declared = (mode in b.modes and device in b.devices and precision in b.precisions
                                    and optimizer in b.optimizers)
                        if reason is not None and not is_sentence(reason):
                            bad.append(f"{cell.cell_id}: reason {reason!r} is not None or a sentence saying why "
                                       f"(at least {SENTENCE_WORDS} words, e.g. 'layer kinds not implemented: "
                                       f"LSTM')")
                        elif reason is None and not declared:
                            bad.append(f"{cell.cell_id}: supported although not declared")
    assert not bad, "\n".join(bad[:20])


SENTENCE_WORDS = 3  # 'no', 'n/a' or 'unsupported' tell a user nothing; the shortest real reason has three


def is_sentence(reason: object) -> bool:
    return isinstance(reason, str) and len(reason.split()) >= SENTENCE_WORDS and any(c.isalpha() for c in reason)


def test_supports_at_least_one_task(subject: Subject):
    assert subject.cases, "no registered task is supported in any mode:\n" + "\n".join(
        f"{case}: {reason}" for case, reason in subject.unsupported.items())


PROBE = """
import json, sys
import harness.api, harness.model, harness.plugins.registry, tasks.builtin
from harness.api import Cell
from harness.api import load_ref
before = {module!r} in sys.modules
cls = load_ref({ref!r})
cls.availability()
cls.version()
for task_cls in tasks.builtin.bench_tasks():
    task = task_cls()
    for mode in cls.modes:
        cls.unsupported_reason(task, Cell(cls.name, task.name, mode, "cpu", task.defaults))
print(json.dumps({{"before": before, "after": {module!r} in sys.modules}}))
"""


def test_class_methods_do_not_import_the_framework(subject: Subject):
    """bench's parent process asks every backend for availability and support; it must stay framework-free."""
    b = subject.backend
    if b.module is None:
        pytest.skip("no framework to import (module is None)")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([os.getcwd(), *(p for p in sys.path if p)]))
    out = subprocess.run([sys.executable, "-c", PROBE.format(module=b.module, ref=subject.ref)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    if seen["before"]:
        pytest.skip(f"the harness itself imports {b.module}")
    assert not seen["after"], (f"importing {subject.ref} or calling availability/unsupported_reason imported "
                               f"{b.module}: keep framework imports inside the worker-side methods")
