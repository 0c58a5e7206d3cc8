"""Shared fixtures: installed-looking plugin packages, isolated results and caches, CLI runners."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    # Tests interrupt bench with SIGINT and SIGHUP. A test run started in the background or under nohup
    # inherits those signals ignored, and exec keeps them ignored in every child, so no bench started
    # here could be interrupted: give the children the defaults a terminal gives.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def pytest_collection_modifyitems(config, items):
    from harness.measure.envinfo import gpu_present

    if gpu_present():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's results, caches or plugin settings."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("BENCH_BLOCK_PLUGINS", raising=False)
    monkeypatch.delenv("BENCH_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("BENCH_RESULTS_DIR", raising=False)


class PluginSite:
    """A folder on sys.path holding packages that look pip-installed to importlib.metadata."""

    def __init__(self, path: Path):
        self.path = path

    def install(self, dist: str, module: str, source: str, entry_points: dict[str, str] | None = None) -> None:
        (self.path / f"{module}.py").write_text(textwrap.dedent(source))
        info = self.path / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        eps = entry_points or {module: module}
        (info / "entry_points.txt").write_text(
            "[bench.plugins]\n" + "".join(f"{name} = {target}\n" for name, target in eps.items())
        )
        importlib.invalidate_caches()

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a `bench` subprocess that sees this site (and the repo's tests package)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.path), str(REPO), env.get("PYTHONPATH", "")])
        env.update(extra)
        return env


@pytest.fixture
def plugin_site(tmp_path, monkeypatch) -> PluginSite:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield PluginSite(site)
    for name in list(sys.modules):
        module = sys.modules[name]
        if getattr(module, "__file__", None) and str(site) in str(module.__file__):
            del sys.modules[name]


FAKE_PLUGIN = """
from tests.fakes import FakeBackend, bench_backends  # noqa: F401  (the hook is the plugin)
"""


@pytest.fixture
def fake_plugin(plugin_site) -> PluginSite:
    """The tiny NumPy fake backend installed as a third-party package 'bench-fake'."""
    plugin_site.install("bench-fake", "bench_fake", FAKE_PLUGIN, {"fake": "bench_fake"})
    return plugin_site


@pytest.fixture
def spawn():
    """subprocess.Popen for a test that signals a bench run: whatever the test's outcome, a run still
    going at teardown is killed, so a failed test cannot leave a hanging cell to every later test."""
    started: list[subprocess.Popen] = []

    def start(*args, **kwargs) -> subprocess.Popen:
        started.append(subprocess.Popen(*args, **kwargs))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def bench(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `bench` command line in a fresh process."""
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)
