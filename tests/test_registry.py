"""The registry: unique names, loud duplicates."""

from __future__ import annotations

import pytest

from harness.api import class_ref, load_ref
from harness.plugins.manager import make_plugin_manager
from harness.plugins.registry import DuplicateNameError, Registry, build_registry
from tasks.linear_regression import LinearRegression
from tests.fakes import FakeBackend


def test_duplicate_backend_name_is_rejected_naming_both_plugins():
    registry = Registry()
    registry.add("backend", FakeBackend, "first")
    with pytest.raises(DuplicateNameError, match="'fake' from plugin 'second' is already registered by plugin 'first'"):
        registry.add("backend", FakeBackend, "second")


def test_duplicate_task_name_is_rejected():
    registry = Registry()
    registry.add("task", LinearRegression, "a")
    with pytest.raises(DuplicateNameError):
        registry.add("task", LinearRegression, "b")


def test_a_backend_and_a_task_may_share_a_name():
    class Same(FakeBackend):
        name = "linear_regression"

    registry = Registry()
    registry.add("task", LinearRegression, "a")
    registry.add("backend", Same, "b")
    assert registry.backends["linear_regression"] is Same


def test_plugin_duplicating_a_builtin_name_is_broken_and_builtin_kept(plugin_site):
    plugin_site.install("bench-dup", "dup_tasks", """
        from harness import hookimpl
        from tasks.linear_regression import LinearRegression

        class Impostor(LinearRegression):
            pass

        @hookimpl
        def bench_tasks():
            return [Impostor]
    """)
    registry, plugins = build_registry(make_plugin_manager())
    assert registry.tasks["linear_regression"] is LinearRegression
    assert "already registered by plugin 'tasks.builtin'" in plugins.infos["dup_tasks"].broken


def test_class_refs_round_trip():
    assert load_ref(class_ref(FakeBackend)) is FakeBackend
    assert load_ref(class_ref(LinearRegression)) is LinearRegression
