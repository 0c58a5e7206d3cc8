"""The pytest plugin of the conformance suite: the --bench-backend option, fixtures and parametrization.

Load it with `-p harness.conformance.plugin` (pytest reads options before it
imports a package's modules, so the option can't live in a conftest there).
"""

from __future__ import annotations

import pytest

from harness.api import OPTIMIZERS
from harness.conformance.support import (
    Case,
    Subject,
    SubjectError,
    Unusable,
    open_backend,
    resolve,
)

_SUBJECT = pytest.StashKey[Subject]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bench", "bench backend conformance")
    group.addoption("--bench-backend", metavar="NAME",
                    help="backend to check: a registered name (e.g. numpy, torch) or module:Class")
    group.addoption("--bench-device", metavar="DEVICE",
                    help="device to check on (default: cpu when the backend offers it)")


def pytest_configure(config: pytest.Config) -> None:
    _subject(config)  # a backend that can't be found is a usage error, before any collection


def _subject(config: pytest.Config) -> Subject | None:
    if _SUBJECT in config.stash:
        return config.stash[_SUBJECT]
    name = config.getoption("--bench-backend")
    if not name:
        return None
    try:
        subject = resolve(name, config.getoption("--bench-device"))
    except SubjectError as exc:
        raise pytest.UsageError(f"--bench-backend: {exc}") from None
    config.stash[_SUBJECT] = subject
    return subject


def pytest_report_header(config: pytest.Config) -> list[str]:
    subject = _subject(config)
    if subject is None:
        return []
    b = subject.backend
    lines = [f"bench backend: {getattr(b, 'name', '?')} ({subject.ref}) on {subject.device}",
             f"  checked on: {', '.join(c.id for c in subject.cases) or 'nothing (no supported task)'}"]
    lines += [f"  not supported: {case}: {reason}" for case, reason in subject.unsupported.items()]
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    subject = _subject(metafunc.config)
    if subject is None:
        return
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", subject.cases or [None], ids=[c.id for c in subject.cases] or ["no-case"],
                             indirect=True)
    if "mode" in metafunc.fixturenames:
        modes = sorted({c.mode for c in subject.cases})
        metafunc.parametrize("mode", modes or [None], ids=modes or ["no-mode"], indirect=True)
    if "optimizer" in metafunc.fixturenames:
        optimizers = [o for o in OPTIMIZERS if o in tuple(getattr(subject.backend, "optimizers", ()) or ())]
        metafunc.parametrize("optimizer", optimizers)


@pytest.fixture(scope="session")
def subject(request: pytest.FixtureRequest) -> Subject:
    found = _subject(request.config)
    if found is None:
        pytest.skip("name the backend to check with --bench-backend NAME")
    return found


@pytest.fixture
def case(request: pytest.FixtureRequest) -> Case:
    if request.param is None:
        pytest.fail("the backend supports none of the registered tasks in any of its modes", pytrace=False)
    return request.param


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    if request.param is None:
        pytest.fail("the backend supports none of the registered tasks in any of its modes", pytrace=False)
    return request.param


@pytest.fixture
def available(subject: Subject) -> Subject:
    """The subject, when its framework is installed: checks that train need it."""
    availability = subject.backend.availability()
    if not availability.ok:
        pytest.fail(f"backend {subject.backend.name!r} is not available here: {availability.reason}", pytrace=False)
    return subject


@pytest.fixture
def opened(available: Subject):
    """open(cell) -> a fresh, imported backend instance; skips when the device can't be used here."""

    def open_(cell):
        try:
            return open_backend(available, cell)
        except Unusable as exc:
            pytest.skip(f"device {cell.device}: {exc}")

    return open_
