"""The plugin manager and every hook."""

from __future__ import annotations

import pytest

from harness.plugins.manager import BUILTIN_PLUGINS, make_plugin_manager
from harness.plugins.registry import build_registry
from tests.conftest import bench

BROKEN_AT_IMPORT = "raise RuntimeError('this plugin is broken on purpose')\n"


def test_builtins_register_from_the_explicit_list():
    plugins = make_plugin_manager(autoload=False)
    assert list(plugins.infos) == list(BUILTIN_PLUGINS)
    registry, _ = build_registry(plugins)
    assert set(registry.tasks) == {"linear_regression", "mnist_mlp", "mnist_cnn", "mnist_lstm"}


def test_each_call_builds_a_fresh_manager():
    assert make_plugin_manager().manager is not make_plugin_manager().manager


def test_bench_backends_hook_of_an_entry_point_plugin(fake_plugin):
    registry, plugins = build_registry(make_plugin_manager())
    assert registry.backends["fake"].__name__ == "FakeBackend"
    assert plugins.infos["fake"].source == "entry point"
    assert plugins.infos["fake"].distribution == "bench-fake"
    assert plugins.infos["fake"].provides == ["backend fake", "backend faulty"]


def test_bench_tasks_hook(plugin_site):
    plugin_site.install("bench-tiny-task", "tiny_task", """
        from harness import hookimpl
        from tasks.linear_regression import LinearRegression

        class Tiny(LinearRegression):
            name = "tiny"

        @hookimpl
        def bench_tasks():
            return [Tiny]
    """)
    registry, _ = build_registry(make_plugin_manager())
    assert registry.tasks["tiny"].__name__ == "Tiny"


def test_bench_environment_hook_adds_to_the_environment(plugin_site):
    plugin_site.install("bench-envinfo", "envinfo_plugin", """
        from harness import hookimpl

        @hookimpl
        def bench_environment():
            return {"accelerator_firmware": "7.1"}
    """)
    from harness.cli.loading import environment

    env = environment(make_plugin_manager())
    assert env["accelerator_firmware"] == "7.1"
    assert env["python"] and env["cpu_model"]


def test_bench_cell_finished_hook_sees_every_record(plugin_site, tmp_path):
    seen = tmp_path / "seen.txt"
    plugin_site.install("bench-observer", "observer", f"""
        from harness import hookimpl

        @hookimpl
        def bench_cell_finished(record):
            with open({str(seen)!r}, "a") as f:
                f.write(record["cell_id"] + " " + record["status"] + "\\n")
    """)
    plugin_site.install("bench-fake", "bench_fake", "from tests.fakes import bench_backends\n", {"fake": "bench_fake"})
    out = bench("run", "--backend", "fake", "--task", "linear_regression", "--mode", "eager,compiled", "--epochs",
                "2", "--out", str(tmp_path / "results"), env=plugin_site.env())
    assert out.returncode == 0, out.stderr
    lines = seen.read_text().splitlines()
    assert len(lines) == 2 and all(line.endswith(" ok") for line in lines)


def test_disabling_autoload_hides_third_party_plugins(fake_plugin, monkeypatch):
    assert "fake" not in make_plugin_manager(autoload=False).infos
    monkeypatch.setenv("BENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "fake" not in make_plugin_manager().infos
    monkeypatch.setenv("BENCH_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert "fake" in make_plugin_manager().infos


def test_blocking_one_plugin_by_name(fake_plugin, monkeypatch):
    assert "fake" not in make_plugin_manager(blocked=["fake"]).infos
    monkeypatch.setenv("BENCH_BLOCK_PLUGINS", "backends.jax_backend, fake")
    infos = make_plugin_manager().infos
    assert "fake" not in infos and "backends.jax_backend" not in infos
    assert "backends.torch_backend" in infos


def test_plugin_that_raises_on_import_is_broken_and_others_work(fake_plugin):
    fake_plugin.install("bench-broken", "broken_plugin", BROKEN_AT_IMPORT)
    registry, plugins = build_registry(make_plugin_manager())
    assert plugins.infos["broken_plugin"].broken == "RuntimeError: this plugin is broken on purpose"
    assert "fake" in registry.backends


def test_plugin_whose_hook_raises_is_broken(plugin_site):
    plugin_site.install("bench-bad-hook", "bad_hook", """
        from harness import hookimpl

        @hookimpl
        def bench_backends():
            raise ValueError("cannot list backends")
    """)
    registry, plugins = build_registry(make_plugin_manager())
    assert plugins.infos["bad_hook"].broken == "ValueError: cannot list backends"
    assert "linear_regression" in registry.tasks


def test_plugin_with_a_misspelt_hook_is_broken(plugin_site):
    plugin_site.install("bench-typo", "typo_plugin", """
        from harness import hookimpl

        @hookimpl
        def bench_backend():
            return []
    """)
    _, plugins = build_registry(make_plugin_manager())
    assert "unknown hook(s): bench_backend" in plugins.infos["typo_plugin"].broken


def test_a_plugin_returning_a_non_backend_is_broken(plugin_site):
    plugin_site.install("bench-wrong-type", "wrong_type", """
        from harness import hookimpl

        @hookimpl
        def bench_backends():
            return [object]
    """)
    _, plugins = build_registry(make_plugin_manager())
    assert "is not a Backend subclass" in plugins.infos["wrong_type"].broken


@pytest.mark.parametrize("env_value", ["1", "yes", "true"])
def test_autoload_switch_values(env_value, fake_plugin, monkeypatch):
    monkeypatch.setenv("BENCH_DISABLE_PLUGIN_AUTOLOAD", env_value)
    assert "fake" not in make_plugin_manager().infos


def test_hooks_are_called_through_pluggy_so_argument_subsets_and_wrappers_work(plugin_site):
    # pluggy lets an implementation take fewer arguments than the spec, and wrappers wrap every call;
    # calling implementation functions directly broke both (TypeError on the subset).
    plugin_site.install("bench-observer", "observer", """
        from harness import hookimpl

        seen = []

        @hookimpl
        def bench_cell_finished():
            seen.append("called without the record")

        @hookimpl(wrapper=True)
        def bench_environment():
            extra = yield
            seen.append("wrapped")
            return extra

        @hookimpl
        def bench_backends():
            return []
    """, {"observer": "observer"})
    plugin_site.install("bench-facts", "facts", """
        from harness import hookimpl

        @hookimpl
        def bench_environment():
            return {"lab": "bench-facts"}
    """, {"facts": "facts"})
    from harness.plugins.manager import call_each

    plugins = make_plugin_manager()
    answers = call_each(plugins, "bench_cell_finished", record={"cell_id": "x"})
    assert [(name, exc) for name, _, exc in answers] == [("observer", None)]
    facts = call_each(plugins, "bench_environment")
    assert [(name, value, exc) for name, value, exc in facts] == [("facts", {"lab": "bench-facts"}, None)]
    import observer

    assert observer.seen == ["called without the record", "wrapped"]
