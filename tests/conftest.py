from __future__ import annotations

import pytest

# The throwaway PostgreSQL server: postgres_server (session) and postgres_dsn (per test);
# pytester, for the tests of our own pytest plugin (tests/test_pytest_plugin.py).
pytest_plugins = ["_postgres", "pytester"]


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs once on asyncio and once on trio."""
    return str(request.param)
