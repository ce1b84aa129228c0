"""Suite-wide rules (on CI, env CI set, a skipped test is a failure: Docker and browser tests must really run)
and the fixtures several folders share."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from era_apps import DirectEras

from builder.pythons import discover
from spaces_runtime.config import Settings

_skipped: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop running in the main thread for the rest of
    the session, where no asyncio test could start its own."""
    items.sort(key=lambda item: "tests/browser/" in item.path.as_posix())


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A whole module skipped while it is collected (a module-level ``importorskip``, e.g. of Playwright) never
    reaches the hook above: count it too."""
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") and _skipped:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"CI is set and {len(_skipped)} test(s) skipped: that is a failure here:", red=True)
            for node in _skipped:
                reporter.write_line(f"  {node}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def direct_eras(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DirectEras]:
    """The era apps run directly, shared by the process and the docker backend's era tests (tests/era_apps.py)."""
    pythons = {i.minor_version: i.path for i in discover(Settings())}
    yield DirectEras(tmp_path_factory.mktemp("direct-eras"), pythons)
