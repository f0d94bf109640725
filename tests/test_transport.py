"""The client's own HTTP/1.1 transport, against the simulator and against small servers that
misbehave on purpose (close kept-alive connections, answer nothing, hang up mid-answer)."""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest
from _helpers import Handler, guarded, simulated

from seedream_async import EditRequest
from seedream_async._network._bounded import timed_out
from seedream_async._network._deadline import Steps
from seedream_async._network._transport import Http11Transport
from seedream_async.testing import make_png, serve

pytestmark = pytest.mark.anyio

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _read_head(stream: anyio.abc.ByteStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive()
        data += chunk
    return data


@asynccontextmanager
async def _server(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """A TCP (or TLS) server on 127.0.0.1 running ``handler`` per connection; yields its URL."""
    listener: anyio.abc.Listener[anyio.abc.ByteStream]
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    listener = tcp if tls is None else anyio.streams.tls.TLSListener(tcp, tls, False)

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, guarded(handler))
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        group.cancel_scope.cancel()


async def _answer_forever(stream: anyio.abc.ByteStream) -> None:
    while True:
        await _read_head(stream)
        await stream.send(_OK)


async def test_sequential_requests_reuse_one_connection() -> None:
    async with _server(_answer_forever) as url:
        transport = Http11Transport(max_connections=8)
        async with httpx.AsyncClient(transport=transport) as http:
            for _ in range(5):
                assert (await http.get(url)).text == "ok"
        assert transport.opened == 1


async def test_many_requests_at_once_stay_within_max_connections() -> None:
    """40 requests, 6 slots: never more than 6 in flight, every answer arrives, every slot
    is free once bodies are closed (read to the end, or closed unread)."""
    async with serve(time_scale=0.001, seed=3) as sim:
        transport = Http11Transport(max_connections=6)
        path = "/api/v1/model/prediction/nope"
        headers = {"Authorization": f"Bearer {sim.api_key}"}
        most = 0
        async with httpx.AsyncClient(transport=transport, base_url=sim.base_url) as http:

            async def one(n: int) -> None:
                nonlocal most
                async with http.stream("GET", path, headers=headers) as response:
                    most = max(most, transport.in_flight)
                    assert response.status_code in (400, 404)
                    if n % 2:
                        await response.aread()

            async with anyio.create_task_group() as group:
                for n in range(40):
                    group.start_soon(one, n)
            assert transport.in_flight == 0
            assert most <= 6
            assert transport.opened <= 40
            assert transport.idle <= 6


async def test_a_kept_alive_connection_the_server_closed_is_not_reused() -> None:
    """The server answers once and hangs up; the next request opens a new connection
    instead of failing on the dead one."""

    async def once(stream: anyio.abc.ByteStream) -> None:
        await _read_head(stream)
        await stream.send(_OK)

    async with _server(once) as url:
        transport = Http11Transport(max_connections=4)
        async with httpx.AsyncClient(transport=transport) as http:
            for _ in range(3):
                assert (await http.get(url)).text == "ok"
                await anyio.sleep(0.05)  # the server's close reaches us
        assert transport.opened == 3


async def test_connection_refused_is_a_connect_error() -> None:
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    await tcp.aclose()
    transport = Http11Transport(max_connections=2)
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(httpx.ConnectError) as caught:
            await http.get(f"http://127.0.0.1:{port}/")
    assert caught.value.request.url.port == port
    assert transport.in_flight == 0


async def test_no_answer_is_a_read_timeout_and_frees_the_slot() -> None:
    async def silent(stream: anyio.abc.ByteStream) -> None:
        await _read_head(stream)
        await anyio.sleep(30)

    async with _server(silent) as url:
        transport = Http11Transport(max_connections=2)
        async with httpx.AsyncClient(transport=transport, timeout=0.2) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(url)
        assert transport.in_flight == 0
        assert transport.idle == 0


async def test_a_hang_up_before_the_answer_is_a_protocol_error() -> None:
    async def hang_up(stream: anyio.abc.ByteStream) -> None:
        await _read_head(stream)

    async with _server(hang_up) as url:
        transport = Http11Transport(max_connections=2)
        async with httpx.AsyncClient(transport=transport) as http:
            with pytest.raises(httpx.RemoteProtocolError, match="disconnected"):
                await http.post(url, content=b"x" * 1000)
        assert transport.in_flight == 0


async def test_a_body_cut_short_is_a_protocol_error_and_the_connection_is_dropped() -> None:
    async def cut(stream: anyio.abc.ByteStream) -> None:
        await _read_head(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")

    async with _server(cut) as url:
        transport = Http11Transport(max_connections=2)
        async with httpx.AsyncClient(transport=transport) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get(url)
        assert (transport.in_flight, transport.idle) == (0, 0)


async def test_chunked_answers_and_streamed_uploads() -> None:
    """A streamed request body (no length: chunked) arrives whole; a chunked answer is
    read whole, and the connection is reused after it."""
    received: list[bytes] = []

    async def echo_size(stream: anyio.abc.ByteStream) -> None:
        while True:
            data = await _read_head(stream)
            while not data.endswith(b"0\r\n\r\n"):
                data += await stream.receive()
            received.append(data)
            await stream.send(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
            )

    async def parts() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"\x01" * 10_000

    async with _server(echo_size) as url:
        transport = Http11Transport(max_connections=2)
        async with httpx.AsyncClient(transport=transport) as http:
            for _ in range(2):
                response = await http.post(url, content=parts())
                assert response.text == "abcdefg"
        assert transport.opened == 1
        assert all(message.count(b"\x01") == 200_000 for message in received)


async def test_fetch_reads_whole_answers_and_drops_those_over_the_cap() -> None:
    """``fetch`` (the client's own API calls): a whole answer, its connection reused; an
    answer declared over the cap, or whose chunks run over it, is not read, and its
    connection is closed, never reused; no slot is left held."""
    bodies = iter([b"7\r\nabcdefg\r\n0\r\n\r\n", None, b"4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n"])

    async def answers(stream: anyio.abc.ByteStream) -> None:
        while True:
            await _read_head(stream)
            body = next(bodies)
            if body is None:
                await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100)
            else:
                await stream.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)

    async with _server(answers) as url:
        transport = Http11Transport(max_connections=2)
        fetched = await transport.fetch(httpx.Request("GET", url), limit=7)
        assert (fetched.status_code, fetched.body) == (200, b"abcdefg")
        declared = await transport.fetch(httpx.Request("GET", url), limit=7)
        assert (declared.body, declared.over) == (None, "100 bytes declared")
        arrived = await transport.fetch(httpx.Request("GET", url), limit=7)
        assert (arrived.body, arrived.over) == (None, "more arrived")
        assert transport.opened == 2  # reused after the first; the second's was closed
        assert (transport.in_flight, transport.idle) == (0, 0)
        await transport.aclose()


async def test_a_cancelled_request_frees_its_slot_and_drops_its_connection() -> None:
    async def slow(stream: anyio.abc.ByteStream) -> None:
        await _read_head(stream)
        await anyio.sleep(30)

    async with _server(slow) as url:
        transport = Http11Transport(max_connections=1)
        async with httpx.AsyncClient(transport=transport) as http:
            with anyio.move_on_after(0.2):
                await http.get(url)
            assert (transport.in_flight, transport.idle) == (0, 0)


def _self_signed(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for 127.0.0.1, and a client context
    that trusts it."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


async def test_https_verifies_the_certificate(tmp_path: Path) -> None:
    """Over TLS: a trusted certificate carries requests on one reused connection; an
    untrusted one is a ConnectError (nothing was sent)."""
    server_tls, client_tls = _self_signed(tmp_path)
    async with _server(_answer_forever, tls=server_tls) as url:
        transport = Http11Transport(max_connections=2, ssl_context=client_tls)
        async with httpx.AsyncClient(transport=transport) as http:
            for _ in range(3):
                assert (await http.get(url)).text == "ok"
        assert transport.opened == 1
        untrusting = Http11Transport(max_connections=2)
        async with httpx.AsyncClient(transport=untrusting) as http:
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await http.get(url)


async def test_the_client_runs_through_its_own_transport() -> None:
    """A client made without an http_client sends uploads, submits and polls through an
    Http11Transport, on a few reused connections, and leaves no slot held."""
    async with simulated() as (sim, client):
        transport = client._http._transport
        assert isinstance(transport, Http11Transport)
        uploaded = await client.upload(make_png(8, 8))
        prediction = await client.submit(EditRequest(prompt="x", images=[uploaded.download_url]))
        done = await client.wait(prediction.id)
        assert done.done
        assert transport.in_flight == 0
        assert transport.opened <= 2  # the API and the storage host
    assert sim.ledger.executions == 1


async def _moved_then_answered(stream: anyio.abc.ByteStream) -> None:
    """``/api/v1/model/prediction/p1`` moved (308) to ``.../p1b``, which answers JSON;
    ``.../p2`` moved to another origin."""
    body = b'{"id": "p1", "status": "processing"}'
    while True:
        target = (await _read_head(stream)).split(b" ", 2)[1]
        if target.endswith(b"/p1"):
            await stream.send(
                b"HTTP/1.1 308 Permanent Redirect\r\nLocation: /api/v1/model/prediction/p1b"
                b"\r\nContent-Length: 0\r\n\r\n"
            )
        elif target.endswith(b"/p2"):
            await stream.send(
                b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://elsewhere.invalid/p2"
                b"\r\nContent-Length: 0\r\n\r\n"
            )
        else:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d"
            await stream.send(head % len(body) + b"\r\n\r\n" + body)


async def test_the_client_follows_same_origin_redirects_on_its_own_transport() -> None:
    """On the client's direct path (no ``httpx.AsyncClient.send``), a same-origin redirect
    is followed and one to another origin is refused, as through an HTTP client."""
    from seedream_async import AsyncSeedream, MalformedResponse, RetryPolicy

    retry = RetryPolicy(max_attempts=1)
    async with (
        _server(_moved_then_answered) as url,
        AsyncSeedream("key", base_url=url, retry=retry) as client,
    ):
        assert isinstance(client._http._transport, Http11Transport)
        prediction = await client.get_prediction("p1")
        assert (prediction.id, prediction.status) == ("p1", "processing")
        with pytest.raises(MalformedResponse, match="another origin"):
            await client.get_prediction("p2")


def test_max_connections_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Http11Transport(max_connections=0)


async def test_a_proxy_in_the_environment_gets_httpx_own_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Our transport connects straight to hosts; with HTTPS_PROXY set the client uses
    httpx's transport, which routes through the proxy."""
    from seedream_async import AsyncSeedream

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    async with AsyncSeedream("key", base_url="https://api.example.test") as client:
        assert not isinstance(client._http._transport, Http11Transport)
        assert client._http._transport_for_url(httpx.URL("https://x.test/")) is not (
            client._http._transport
        )


async def _fetch_within(
    transport: Http11Transport, request: httpx.Request, seconds: float | None
) -> httpx.TimeoutException:
    """``fetch`` under one ``Steps`` (as the client's own calls run): the timeout error
    the endpoint would raise."""
    steps = Steps(seconds)
    with pytest.raises(TimeoutError), steps:
        await transport.fetch(request, limit=1000, steps=steps)
    assert steps.expired
    return timed_out(request, steps)


async def test_one_scope_names_the_limit_that_ended_the_exchange() -> None:
    """Under one ``Steps`` (the client's own API calls: one cancel scope whose deadline
    each step moves), a silent server is the read timeout's, a trickling one the overall
    deadline's, and a peer that reads nothing the write timeout's; each frees its slot
    and drops its connection, as the per-step scopes did."""

    async def silent(stream: anyio.abc.ByteStream) -> None:
        await _read_head(stream)
        await anyio.sleep(30)

    async def trickle(stream: anyio.abc.ByteStream) -> None:
        await _read_head(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            await stream.send(b"x")
            await anyio.sleep(0.05)

    timeout = httpx.Timeout(5.0, read=0.2, write=0.2)
    big = b"x" * 64_000_000  # beyond what the kernel buffers on loopback
    transport = Http11Transport(max_connections=2)
    async with _server(silent) as url:
        request = httpx.Request("GET", url, extensions={"timeout": timeout.as_dict()})
        error = await _fetch_within(transport, request, 5.0)
        assert isinstance(error, httpx.ReadTimeout)
        assert "no answer within 0.2 s" in str(error)
    async with _server(trickle) as url:
        request = httpx.Request("GET", url, extensions={"timeout": timeout.as_dict()})
        error = await _fetch_within(transport, request, 0.4)
        assert isinstance(error, httpx.ReadTimeout)
        assert "within 0.4s (overall request deadline)" in str(error)
    # Deaf: a socket that is never accepted, so never read (an anyio server's stream reads
    # what arrives into memory whether its handler reads or not).
    with socket.socket() as deaf:
        deaf.bind(("127.0.0.1", 0))
        deaf.listen(1)
        url = f"http://127.0.0.1:{deaf.getsockname()[1]}"
        request = httpx.Request("POST", url, content=big, extensions={"timeout": timeout.as_dict()})
        error = await _fetch_within(transport, request, 5.0)
        assert isinstance(error, httpx.WriteTimeout), repr(error)
        assert "request not sent within 0.2 s" in str(error)
    assert (transport.in_flight, transport.idle) == (0, 0)
    await transport.aclose()


def _record_fetches(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """Every request the client's transport fetches, in order (the same object when a
    request is sent again)."""
    sent: list[httpx.Request] = []
    fetch = Http11Transport.fetch

    async def spy(self: Http11Transport, request: httpx.Request, *args: object) -> object:
        sent.append(request)
        return await fetch(self, request, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Http11Transport, "fetch", spy)
    return sent


async def test_a_poll_is_built_once_and_per_call_headers_still_reach_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A GET the client sends again (a poll) is built once, its HTTP/1.1 head too; a copy
    with other headers builds its own: its header reaches that poll only."""
    sent = _record_fetches(monkeypatch)
    async with simulated() as (sim, client):
        uploaded = await client.upload(make_png(8, 8))
        prediction = await client.submit(EditRequest(prompt="p", images=[uploaded.download_url]))
        await client.get_prediction(prediction.id)
        await client.with_options(headers={"X-Trace": "t"}).get_prediction(prediction.id)
        await client.get_prediction(prediction.id)
        polls = [headers for endpoint, headers in sim.ledger.headers if endpoint == "poll"]
        assert [h.get("x-trace") for h in polls] == [None, "t", None]
        first, traced, again = (r for r in sent if r.method == "GET")
        assert again is first
        assert traced is not first
        assert "x-trace" not in first.headers


async def test_reused_polls_are_bounded_least_recent_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kept GETs are bounded (a poll's request with its head is ~2.7 KB): past the
    bound the least recently sent is dropped and built again when next sent."""
    from seedream_async._network import _endpoint

    monkeypatch.setattr(_endpoint, "_GETS_KEPT", 2)
    sent = _record_fetches(monkeypatch)
    async with simulated() as (_sim, client):
        uploaded = await client.upload(make_png(8, 8))
        request = EditRequest(prompt="p", images=[uploaded.download_url])
        a, b, c = [(await client.submit(request)).id for _ in range(3)]
        for prediction_id in (a, b, a, c, a, b):
            await client.get_prediction(prediction_id)
        polls = [r for r in sent if r.method == "GET"]
        # a, b kept; a again (reused, now most recent); c drops b; a reused; b rebuilt.
        assert polls[2] is polls[0]
        assert polls[4] is polls[0]
        assert polls[5] is not polls[1]
        assert polls[5].url == polls[1].url


async def test_over_tls_a_body_cut_short_is_a_protocol_error(tmp_path: Path) -> None:
    """A TLS server that hangs up mid-body without TLS's goodbye (a ragged EOF, as a
    crashed proxy leaves it): the same RemoteProtocolError as over plain TCP, no SSL error,
    and no slot or connection left behind."""
    server_tls, client_tls = _self_signed(tmp_path)

    async def cut(stream: anyio.abc.ByteStream) -> None:
        await _read_head(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")

    async with _server(cut, tls=server_tls) as url:
        transport = Http11Transport(max_connections=2, ssl_context=client_tls)
        async with httpx.AsyncClient(transport=transport) as http:
            with anyio.fail_after(10), pytest.raises(httpx.RemoteProtocolError):
                await http.get(url)
        assert (transport.in_flight, transport.idle) == (0, 0)


async def test_over_tls_a_large_answer_arrives_whole(tmp_path: Path) -> None:
    """3 MiB over TLS, more than the stream buffers before it pauses reading: whole, in
    order, and the connection reused for the next request."""
    server_tls, client_tls = _self_signed(tmp_path)
    body = bytes(i % 253 for i in range(3 << 20))

    async def large(stream: anyio.abc.ByteStream) -> None:
        while True:
            await _read_head(stream)
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            await stream.send(body)

    async with _server(large, tls=server_tls) as url:
        transport = Http11Transport(max_connections=2, ssl_context=client_tls)
        async with httpx.AsyncClient(transport=transport) as http:
            for _ in range(2):
                with anyio.fail_after(20):
                    assert (await http.get(url)).content == body
        assert transport.opened == 1
