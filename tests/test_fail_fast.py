"""Fail fast: an API that no request has reached, after a few failed connects, ends every
request at once, naming the URL and what to check, instead of retrying for minutes."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import httpx
import pytest
from test_cli import FAST_POLL, catalog, cli, out, report

from seedream_async import APIUnreachable, AsyncSeedream, RetryPolicy, TransportError
from seedream_async._network._driver import Driver

pytestmark = pytest.mark.anyio

QUICK = RetryPolicy(initial_delay=0.0, max_delay=0.0, max_attempts=6)
URL = "https://api.wrong.test:8443/api/v1/model/prediction/p"


def refused() -> httpx.ConnectError:
    return httpx.ConnectError("refused", request=httpx.Request("GET", URL))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Attempt:
    """Fails with ``errors`` in turn (None answers), counting calls."""

    def __init__(self, *errors: Exception | None) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error
        return "ok"


async def call(driver: Driver, attempt: Attempt, policy: RetryPolicy = QUICK) -> str:
    return await driver.call(attempt, policy=policy, what="poll of p", operation="poll")


async def test_unreachable_after_n_connect_failures() -> None:
    """Three refused connects with nothing reached: APIUnreachable naming the origin; the
    next request fails at once without being sent."""
    driver = Driver(rng=random.Random(1))
    first = Attempt(*[refused()] * 6)
    with pytest.raises(APIUnreachable) as info:
        await call(driver, first)
    assert first.calls == QUICK.unreachable_after == 3
    message = str(info.value)
    assert "cannot reach the API at https://api.wrong.test:8443" in message
    assert "Check the URL (--base-url or ATLASCLOUD_BASE_URL" in message
    assert isinstance(info.value, TransportError)  # existing handlers still catch it
    later = Attempt()
    with pytest.raises(APIUnreachable):
        await call(driver, later)
    assert later.calls == 0


async def test_connect_failures_after_an_answer_are_retried() -> None:
    """Once the API has answered, refused connects are a passing blip: retried as usual."""
    driver = Driver(rng=random.Random(1))
    assert await call(driver, Attempt()) == "ok"
    blip = Attempt(refused(), refused(), refused(), refused(), None)
    assert await call(driver, blip) == "ok"
    assert blip.calls == 5


@pytest.mark.parametrize(
    ("policy", "raised"),
    [
        pytest.param(QUICK, APIUnreachable, id="default"),
        pytest.param(RetryPolicy(initial_delay=0.0, unreachable_after=0), TransportError, id="off"),
    ],
)
async def test_switch(policy: RetryPolicy, raised: type[Exception]) -> None:
    """unreachable_after=0 keeps the old behaviour: every attempt, then the transport error."""
    driver = Driver(rng=random.Random(1))
    attempt = Attempt(*[refused()] * 6)
    with pytest.raises(raised) as info:
        await call(driver, attempt, policy)
    assert type(info.value) is raised
    assert attempt.calls == (3 if raised is APIUnreachable else policy.max_attempts)


async def test_storage_downloads_do_not_count() -> None:
    """Downloads go to the storage host, not the API: their connect failures judge nothing."""
    driver = Driver(rng=random.Random(1))
    attempt = Attempt(*[refused()] * 6)
    with pytest.raises(TransportError) as info:
        await driver.call(attempt, policy=QUICK, what="d", operation="download", gated=False)
    assert not isinstance(info.value, APIUnreachable)
    assert attempt.calls == QUICK.max_attempts


async def test_client_against_a_closed_port() -> None:
    """A whole client on a wrong URL: the first edit fails fast, naming the URL."""
    port = free_port()
    policy = RetryPolicy(initial_delay=0.001, max_delay=0.002)
    async with AsyncSeedream("k", base_url=f"http://127.0.0.1:{port}", retry=policy) as client:
        with pytest.raises(APIUnreachable) as info:
            await client.edit("p", ["https://example.com/a.png"])
        assert client.requests["submit"] == 3
    assert f"http://127.0.0.1:{port}" in str(info.value)


class TestCommandLine:
    """The CLI on a wrong --base-url: ends in seconds, one line, no traceback."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"  # a subprocess: see test_cli.py

    async def test_run_against_a_wrong_url(self, tmp_path: Path) -> None:
        """run exits 1 with one line naming the URL and what to check; the report and the
        review sheet are still written, every item failed with APIUnreachable."""
        manifest = catalog(tmp_path / "cat", 6)
        port = free_port()
        done = await cli(
            "run", manifest, "--out", tmp_path / "out", "--base-url", f"http://127.0.0.1:{port}",
            *FAST_POLL,
        )  # fmt: skip
        text = out(done)
        assert done.returncode == 1, text
        assert text.count(f"cannot reach the API at http://127.0.0.1:{port}") == 1
        assert "Traceback" not in text
        lines = report(tmp_path / "out")
        assert {line["error_type"] for line in lines} == {"APIUnreachable"}
        assert (tmp_path / "out" / "review.html").is_file()
