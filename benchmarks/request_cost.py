"""CPU per request, by HTTP path, against the simulator in its own process.

    python -m benchmarks.request_cost [--n 3000] [--concurrency 64] [--repeats 2]

Polls of one finished prediction, ``--concurrency`` at a time, through:

* ``httpx default``: an ``httpx.AsyncClient`` with httpx's own transport (gather-1's);
* ``httpx + Http11Transport``: the same client on the transport seedream-async makes;
* ``Http11Transport direct``: an ``httpx.Request`` handed straight to that transport and
  its body read, as the client's own requests are (no ``AsyncClient.send`` layers);
* ``get_prediction``: ``AsyncSeedream.get_prediction``, validation and retries included;
* ``raw h11``: h11 over anyio streams with no httpx at all: a floor, not a contender.

The figure is the process's CPU time (user + system) per request, so a busy machine
inflates the wall time, not the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.abc
import h11
import httpx

from seedream_async import AsyncSeedream, EditRequest
from seedream_async._network._transport import Http11Transport
from seedream_async.testing import make_png

from ._sim import SimProcess


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _per_request(get: Callable[[], Awaitable[object]], n: int, concurrency: int) -> float:
    each = max(1, n // concurrency)

    async def worker() -> None:
        for _ in range(each):
            await get()

    start = _cpu()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (_cpu() - start) / (each * concurrency)


class _RawH11:
    """GETs over kept-alive connections with h11 and anyio only (no httpx)."""

    def __init__(self, host: str, port: int, headers: list[tuple[str, str]]) -> None:
        self._address = (host, port)
        self._headers = [("Host", f"{host}:{port}"), *headers]
        self._idle: list[tuple[anyio.abc.SocketStream, h11.Connection]] = []

    async def get(self, target: str) -> bytes:
        if self._idle:
            stream, conn = self._idle.pop()
        else:
            stream, conn = await anyio.connect_tcp(*self._address), h11.Connection(h11.CLIENT)
        request = h11.Request(method="GET", target=target, headers=self._headers)
        await stream.send((conn.send(request) or b"") + (conn.send(h11.EndOfMessage()) or b""))
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive(65536))
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        conn.start_next_cycle()
        self._idle.append((stream, conn))
        return body

    async def aclose(self) -> None:
        for stream, _ in self._idle:
            await stream.aclose()


async def _run(ns: argparse.Namespace, sim: SimProcess) -> None:
    async with AsyncSeedream(sim.key, base_url=sim.base_url) as client:
        uploaded = await client.upload(make_png(8, 8))
        prediction = await client.submit(EditRequest(prompt="x", images=[uploaded.download_url]))
        await client.wait(prediction.id)
        path = f"/api/v1/model/prediction/{prediction.id}"
        url, auth = f"{sim.base_url}{path}", {"Authorization": f"Bearer {sim.key}"}
        url_parts = httpx.URL(url)
        raw = _RawH11(url_parts.host, url_parts.port or 80, list(auth.items()))
        plain = httpx.AsyncClient(headers=auth)
        ours = httpx.AsyncClient(headers=auth, transport=Http11Transport(max_connections=128))
        direct = Http11Transport(max_connections=128)
        fixed = httpx.Headers(auth)
        timeouts = {"timeout": httpx.Timeout(60.0, connect=10.0).as_dict()}

        async def direct_get() -> bytes:
            request = httpx.Request("GET", url_parts, headers=fixed, extensions=timeouts)
            response = await direct.handle_async_request(request)
            return await response.aread()

        paths: dict[str, Callable[[], Awaitable[object]]] = {
            "httpx default": lambda: plain.get(url),
            "httpx + Http11Transport": lambda: ours.get(url),
            "Http11Transport direct": direct_get,
            "get_prediction": lambda: client.get_prediction(prediction.id),
            "raw h11 (floor)": lambda: raw.get(path),
        }
        for repeat in range(ns.repeats):
            figures = {
                name: await _per_request(get, ns.n, ns.concurrency) for name, get in paths.items()
            }
            line = " | ".join(f"{name} {1000 * cpu:.3f} ms" for name, cpu in figures.items())
            print(f"run {repeat + 1}, CPU per request at concurrency {ns.concurrency}: {line}")
        await plain.aclose()
        await ours.aclose()
        await direct.aclose()
        await raw.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.request_cost", description=__doc__)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--time-scale", type=float, default=0.01)
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seedream-request-cost-") as tmp:
        log = Path(tmp) / "sim.log"
        with SimProcess(seed=1, time_scale=ns.time_scale, log=log) as sim:
            asyncio.run(_run(ns, sim))


if __name__ == "__main__":
    main()
