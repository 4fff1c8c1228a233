"""Fixtures for strata's system tests.

One template deployment is built per session (migrate, seed --items 40, site
`other`, one token per role and site); each test module gets its own copy of
its database and its own `strata serve` on a free loopback port, stopped by
SIGTERM at the end of the module (and required to exit 0 within 10 s). Tests
that kill or restart a server use `server_factory` on a `fresh_deployment`.

When a test fails, the tail of the stderr of every server it used is attached
to the report.
"""

import os

import pytest

from strata_support import Deployment, Server, binary_path

# A sanitizer build started by these tests reports leaks at exit; libh2o's own
# never-freed caches are suppressed as in tests/run.sh, so a direct pytest run
# behaves like `make test`.
os.environ.setdefault(
    "LSAN_OPTIONS",
    "suppressions=%s:print_suppressions=0"
    % os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lsan.supp"),
)

SEED_ITEMS = 40


@pytest.fixture(scope="session")
def strata_bin():
    path = binary_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"strata binary not found at {path} (run `make`, or set STRATA_BIN)")
    return path


@pytest.fixture(scope="session")
def template(strata_bin, tmp_path_factory):
    made = Deployment.create(strata_bin, tmp_path_factory.mktemp("template"), items=SEED_ITEMS)
    yield made
    made.drop()


@pytest.fixture(scope="module")
def deployment(template, tmp_path_factory, request):
    name = request.module.__name__.rsplit(".", 1)[-1]
    made = template.copy_to(tmp_path_factory.mktemp(name))
    yield made
    made.drop()


@pytest.fixture(scope="module")
def server(deployment):
    srv = deployment.server(name="module-server").start()
    yield srv
    srv.assert_stops_cleanly()


@pytest.fixture(scope="module")
def tokens(deployment):
    return deployment.tokens


@pytest.fixture(scope="module")
def client(server):
    """A keep-alive client without a token (pass token= per request)."""
    return server.client()


@pytest.fixture
def fresh_deployment(template, tmp_path):
    made = template.copy_to(tmp_path / "deployment")
    yield made
    made.drop()


class ServerFactory:
    def __init__(self, default_deployment):
        self.default_deployment = default_deployment
        self.servers = []

    def __call__(self, deployment=None, *, start=True, **kw):
        srv = Server(deployment or self.default_deployment, **kw)
        self.servers.append(srv)
        if start:
            srv.start()
        return srv


@pytest.fixture
def server_factory(fresh_deployment):
    """Starts servers (default: on fresh_deployment); at teardown every one
    still running is stopped with SIGTERM and must exit 0."""
    factory = ServerFactory(fresh_deployment)
    yield factory
    problems = []
    for srv in factory.servers:
        if srv.alive():
            rc = srv.stop(10)
            if rc != 0:
                problems.append(f"{srv.name}: exit {rc} after SIGTERM\n{srv.tail()}")
        else:
            srv.close_clients()
    assert not problems, "\n".join(problems)


def _servers_of(item):
    found = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Server):
            found.append(value)
        elif isinstance(value, ServerFactory):
            found.extend(value.servers)
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        seen = set()
        for srv in _servers_of(item):
            if id(srv) in seen:
                continue
            seen.add(id(srv))
            rep.sections.append((f"strata stderr tail ({srv.name}, {srv.log_path})", srv.tail(30)))
