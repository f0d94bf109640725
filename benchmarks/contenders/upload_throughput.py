"""Upload throughput: ``client.upload`` of one ~8 MB file against two baselines.

* ``httpx``: one ``httpx.AsyncClient`` POST of the same bytes, already in memory, as
  multipart to the same simulator endpoint (same server work, no file streaming);
* ``socket``: a raw loopback TCP copy of the bytes to a thread that discards them (the
  ceiling of the machine, with no HTTP and no server parsing).

Each is repeated; the best and median MB/s are reported.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx

from seedream_async import AsyncSeedream
from seedream_async.testing import make_png

from ._common import Meter, Tally, report

SIZE = 8 * 1000 * 1000


def _payload() -> bytes:
    head = make_png(64, 64, seed=7, label="upload-throughput")
    # A valid PNG head (the type is sniffed) padded with incompressible bytes.
    return head + os.urandom(SIZE - len(head))


def _socket_copy(data: bytes) -> float:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def sink() -> None:
            conn, _ = server.accept()
            with conn:
                while conn.recv(1 << 20):
                    pass

        thread = threading.Thread(target=sink)
        thread.start()
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(data)
            client.shutdown(socket.SHUT_WR)
            thread.join()
        return time.perf_counter() - start


async def _timed(action: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await action()
    return time.perf_counter() - start


async def _run(ns: argparse.Namespace) -> None:
    data = _payload()
    meter, tally = Meter(), Tally()
    rates: dict[str, list[float]] = {"library": [], "httpx": [], "socket": []}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.png"
        path.write_bytes(data)
        headers = {"Authorization": f"Bearer {ns.key}"}
        async with (
            AsyncSeedream(ns.key, base_url=ns.base_url) as client,
            httpx.AsyncClient(base_url=ns.base_url, headers=headers, timeout=60.0) as http,
        ):

            async def raw_post() -> None:
                files = {"file": ("big.png", data, "image/png")}
                response = await http.post("/api/v1/model/uploadMedia", files=files)
                response.raise_for_status()

            meter.start()
            for _ in range(ns.repeats):
                # Alternate, so neither side always runs on a warmer server.
                rates["library"].append(SIZE / 1e6 / await _timed(lambda: client.upload(path)))
                rates["httpx"].append(SIZE / 1e6 / await _timed(raw_post))
                rates["socket"].append(SIZE / 1e6 / _socket_copy(data))
                tally.succeeded += 1
            meter.stop()
    summary = {
        name: {"best_mb_s": max(values), "median_mb_s": statistics.median(values)}
        for name, values in rates.items()
    }
    report(meter, tally, n=ns.repeats, size_bytes=SIZE, rates=rates, summary=summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    anyio.run(_run, parser.parse_args())


if __name__ == "__main__":
    main()
