"""Fixtures for the browser tests: the system tests' own fixtures (the
binary, a deployment with tokens, a running strata, stopped cleanly at the
end; stderr tails on failure) from tests/system/conftest.py, and the
browser tools: node, Debian's chromium and playwright-core from
web/node_modules."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

SYSTEM = Path(__file__).resolve().parents[1] / "system"
sys.path.insert(0, str(SYSTEM))

from strata_support import REPO  # noqa: E402

_spec = importlib.util.spec_from_file_location("strata_system_conftest", SYSTEM / "conftest.py")
_system = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_system)
strata_bin, template, deployment, server, tokens = (
    _system.strata_bin, _system.template, _system.deployment, _system.server, _system.tokens)
pytest_runtest_makereport = _system.pytest_runtest_makereport

CHROMIUM = Path("/usr/bin/chromium")
PLAYWRIGHT = REPO / "web" / "node_modules" / "playwright-core"
SCREENSHOTS = []  # paths saved by the tests, printed at the end of the run


@pytest.fixture(scope="session")
def browser_tools():
    """node, Debian's chromium and playwright-core: `make test` installs all
    three (scripts/deps.sh test, npm ci in web/), so a missing one fails."""
    node = shutil.which("node")
    missing = [what for what, ok in (("node", node), (str(CHROMIUM), CHROMIUM.exists()),
                                     (str(PLAYWRIGHT), PLAYWRIGHT.is_dir())) if not ok]
    assert not missing, f"browser tests need {', '.join(missing)} (scripts/deps.sh test; npm ci in web/)"
    return node


def pytest_terminal_summary(terminalreporter):
    for path in SCREENSHOTS:
        terminalreporter.write_line(f"browser screenshot: {path}")
