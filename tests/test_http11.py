"""The client's HTTP/1.1 codec (``_network/_http11.py``) checked against h11, byte for byte.

h11 is the independent reference: each response below goes to both, whole, cut at every
point and a byte at a time, and both must make the same of it: head, body, error and reuse.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import h11
import pytest

from seedream_async._network._http11 import (
    END,
    MAX_HEAD,
    NEED_DATA,
    Broken,
    ClientConnection,
    Closed,
    LocalError,
    RequestHead,
    ResponseHead,
)

HOST = [(b"Host", b"example.com")]
OK = b"HTTP/1.1 200 OK\r\n"
OK10 = b"HTTP/1.0 200 OK\r\n"
CL2 = b"Content-Length: 2\r\n\r\nok"
TE = OK + b"Transfer-Encoding: chunked\r\n\r\n"
CL, TE_ = b"Content-Length", b"Transfer-Encoding"
BIG = OK + b"X-Big: " + b"a" * MAX_HEAD + b"\r\nContent-Length: 2\r\n\r\nok"


class Reading(NamedTuple):
    """What a client made of a response: how the reading ended ("end", "broken" or
    "waiting"), the final head, the body, and whether the connection can be reused."""

    ending: str
    status: int | None
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    reusable: bool


def h11_reads(method: bytes, pieces: list[bytes]) -> Reading:
    """h11's reading of ``pieces`` (``b""``: EOF), stopped at the message's end."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=HOST))
    conn.send(h11.EndOfMessage())
    status, reason, headers, body = None, b"", [], bytearray()
    try:
        for piece in pieces:
            conn.receive_data(piece)
            while (event := conn.next_event()) is not h11.NEED_DATA:
                if isinstance(event, h11.Response):
                    status, reason, headers = event.status_code, event.reason, list(event.headers)
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    done = conn.our_state is h11.DONE and conn.their_state is h11.DONE
                    # EOF already in (a body read to the close) leaves h11 DONE, yet closed.
                    done = done and not isinstance(conn.next_event(), h11.ConnectionClosed)
                    return Reading("end", status, reason, headers, bytes(body), done)
                elif isinstance(event, h11.ConnectionClosed):  # EOF before any head:
                    raise h11.RemoteProtocolError("no answer")  # httpcore's error too
    except h11.ProtocolError:
        return Reading("broken", status, reason, headers, bytes(body), False)
    return Reading("waiting", status, reason, headers, bytes(body), False)


def our_reads(method: bytes, pieces: list[bytes]) -> Reading:
    """``ClientConnection``'s reading of ``pieces``, read as :func:`h11_reads` reads them."""
    conn = ClientConnection()
    conn.head(RequestHead.of(method, b"/", HOST))
    conn.end()
    head: ResponseHead | None = None
    body, ending, reusable = bytearray(), "waiting", False
    try:
        for piece in pieces:
            conn.receive(piece)
            if head is None and (head := conn.next_head()) is None:
                continue
            while (data := conn.next_data()) is not END and data != NEED_DATA:
                body += data
            if data is END:
                ending, reusable = "end", conn.next_cycle()
                break
    except Broken:
        ending = "broken"
    if head is None:
        return Reading(ending, None, b"", [], bytes(body), reusable)
    return Reading(ending, head.status_code, head.reason, head.headers, bytes(body), reusable)


def feeds(raw: bytes, eof: bool) -> Iterator[tuple[str, list[bytes]]]:
    """``raw`` whole, cut once at every index, and a byte at a time; then EOF if ``eof``."""
    tail = [b""] if eof else []
    yield "whole", ([raw] if raw else []) + tail
    # Over 2 KiB (the 16 KiB heads), for the runtime: every 61st cut and each one near the cap,
    # and 7 bytes at a time.
    short = len(raw) <= 2048
    cuts = (
        range(1, len(raw))
        if short
        else [*range(1, len(raw), 61), *range(MAX_HEAD - 3, MAX_HEAD + 9)]
    )
    for cut in cuts:
        yield f"cut at {cut}", [raw[:cut], raw[cut:], *tail]
    step = 1 if short else 7
    yield f"{step} at a time", [raw[i : i + step] for i in range(0, len(raw), step)] + tail


def both_read(raw: bytes, eof: bool, method: bytes) -> list[Reading]:
    """Each feed's reading, asserted the same for h11 and for ours."""
    readings = []
    for name, pieces in feeds(raw, eof):
        theirs, ours = h11_reads(method, pieces), our_reads(method, pieces)
        assert ours == theirs, f"fed {name}: ours {ours} but h11 {theirs}"
        readings.append(ours)
    return readings


def case(raw: bytes, name: str, *, eof: bool = False, method: bytes = b"GET") -> object:
    return pytest.param(raw, eof, method, id=name)


VALID = [
    case(OK + b"Content-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello", "content-length"),
    case(OK + b"Content-Length: 0\r\n\r\n", "content-length-0"),
    case(TE + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "chunked"),
    case(TE + b'5;a=b\r\nhello\r\nA;x="y" \r\n0123456789\r\n0;last\r\n\r\n', "chunk-extensions"),
    case(TE + b"5\r\nhello\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n", "chunked-trailers"),
    case(TE + b"0\r\nX: y\n\n", "chunked-trailers-bare-lf"),
    case(OK + b"Transfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n0\r\n\r\n", "te-beats-cl"),
    case(OK10 + b"Content-Type: text/plain\r\n\r\nhello world", "until-close-1.0", eof=True),
    case(OK + b"\r\nhello", "until-close-1.1", eof=True),
    case(OK + b"\r\n", "until-close-empty", eof=True),
    case(b"HTTP/1.1 204 No Content\r\n\r\n", "204"),
    case(b'HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: "x"\r\n\r\n', "304"),
    case(b"HTTP/1.1 100 Continue\r\n\r\n" + OK + CL2, "100-first"),
    case(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n" + TE + b"2\r\nok\r\n0\r\n\r\n",
        "103-and-100-first",
    ),
    case(b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello", "bare-lf"),
    case(OK + b"A: b\nContent-Length: 5\n\r\nhello", "mixed-line-ends"),
    case(OK + b"X-Long: a\r\n  b\r\n\tc\r\nContent-Length: 0\r\n\r\n", "obs-fold"),
    case(OK + b"Content-Length: 5, 5\r\nContent-Length: 5\r\n\r\nhello", "repeated-equal-cl"),
    case(b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", "empty-reason"),
    case(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", "no-reason"),
    case(b"HTTP/1.1 404 Not  Found \xe9\r\nContent-Length: 0\r\n\r\n", "reason-spaces-obs-text"),
    case(OK + b"X-E:\r\nX-P: \t pad \t\r\nX-U: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n", "values"),
    case(OK + b"Connection: close\r\n" + CL2, "connection-close"),
    case(OK + b"Connection: keep-alive, Close\r\n" + CL2, "keep-alive-close"),
    case(OK + b"Connection: keep-alive\r\n" + CL2, "keep-alive"),
    case(OK10 + b"Connection: keep-alive\r\n" + CL2, "1.0-keep-alive"),
    case(OK + b"Content-Length: 5\r\n\r\n", "head-with-length", method=b"HEAD"),
    case(TE, "head-with-chunked", method=b"HEAD"),
    case(BIG, "head-16k-whole-or-too-long"),
]

BROKEN = [
    case(b"HTTP/1.1 2OO OK\r\n\r\n", "bad-status-code"),
    case(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not-http"),
    case(b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "blank-line-first"),
    case(OK + b"this is not a header\r\n\r\n", "garbage-header-line"),
    case(OK + b"Content-Length : 5\r\n\r\nhello", "space-before-colon"),
    case(OK + b"X: a\x00b\r\nContent-Length: 0\r\n\r\n", "nul-in-value"),
    case(OK + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "conflicting-cl"),
    case(OK + b"Content-Length: 5, 6\r\n\r\nhello!", "conflicting-cl-in-one"),
    case(OK + b"Content-Length: 5a\r\n\r\nhello", "non-digit-cl"),
    case(OK + b"Content-Length: " + b"1" * 21 + b"\r\n\r\n", "cl-21-digits"),
    case(OK + b"Transfer-Encoding: gzip\r\n\r\nxx", "te-gzip"),
    case(OK + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "te-gzip-chunked"),
    case(OK + b"Transfer-Encoding: chunked\r\n" * 2 + b"\r\n0\r\n\r\n", "two-te"),
    case(TE + b"zz\r\nhello\r\n0\r\n\r\n", "bad-chunk-size"),
    case(TE + b"5 ;x\r\nhello\r\n0\r\n\r\n", "space-before-chunk-extension"),
    case(TE + b"5\r\nhelloXY0\r\n\r\n", "chunk-without-crlf"),
    case(TE + b"5\r\nhello\n0\r\n\r\n", "chunk-with-lf-only"),
    case(TE + b"0\r\nnot a trailer\r\n\r\n", "bad-trailer"),
    case(TE + b"0\r\nTransfer-Encoding: gzip\r\n\r\n", "te-gzip-trailer"),
    # We never ask to switch, so h11 refuses a 101 too.
    case(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n" + OK + b"\r\n", "101"),
    case(OK + b" folded\r\nContent-Length: 0\r\n\r\n", "continuation-first"),
    case(OK + b"Content-Le", "eof-mid-head", eof=True),
    case(b"HTTP/1.1 100 Continue\r\n\r\n", "eof-after-100", eof=True),
    case(OK + b"Content-Length: 10\r\n\r\nhello", "eof-mid-length-body", eof=True),
    case(TE + b"5\r\nhel", "eof-mid-chunk", eof=True),
    case(TE + b"5\r\nhello\r", "eof-mid-chunk-crlf", eof=True),
    case(TE + b"0\r\nX: y\r\n", "eof-mid-trailers", eof=True),
    case(b"", "eof-with-nothing", eof=True),
    case(OK + b"X-Big: " + b"a" * MAX_HEAD, "head-over-16k"),
]


@pytest.mark.parametrize(("raw", "eof", "method"), VALID)
def test_a_valid_response_cut_anywhere_reads_as_h11_reads_it(
    raw: bytes, eof: bool, method: bytes
) -> None:
    readings = both_read(raw, eof, method)
    if raw is not BIG:  # a head over MAX_HEAD in the buffer before its end breaks both
        assert {reading.ending for reading in readings} == {"end"}


@pytest.mark.parametrize(("raw", "eof", "method"), BROKEN)
def test_a_broken_response_cut_anywhere_breaks_both_readers_alike(
    raw: bytes, eof: bool, method: bytes
) -> None:
    readings = both_read(raw, eof, method)
    assert readings[-1].ending == "broken"  # the byte-at-a-time feed


@pytest.mark.parametrize(
    ("raw", "method"),
    [
        pytest.param(OK + b"Content-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n", b"GET", id="length"),
        pytest.param(TE + b"0\r\n\r\n\r\n", b"GET", id="chunked"),
        pytest.param(b"HTTP/1.1 204 No Content\r\n\r\nstray", b"GET", id="204-with-body"),
        pytest.param(OK + b"Content-Length: 5\r\n\r\nhello", b"HEAD", id="head-with-body"),
    ],
)
def test_bytes_past_the_answer_end_refuse_reuse_where_h11_would_read_them_next(
    raw: bytes, method: bytes
) -> None:
    # The documented difference: h11 keeps such bytes for the next answer; we close instead.
    theirs, ours = h11_reads(method, [raw]), our_reads(method, [raw])
    assert (theirs.ending, theirs.reusable) == ("end", True)
    assert ours == theirs._replace(reusable=False)


@pytest.mark.parametrize(
    ("raw", "closed"),
    [
        pytest.param(b"", True, id="nothing"),
        pytest.param(OK + b"Content-", True, id="mid-head"),
        pytest.param(b"HTTP/1.1 103 Early Hints\r\n\r\n", True, id="after-1xx"),
        pytest.param(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 3000, False, id="head-too-long"),
        pytest.param(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", False, id="101"),
        pytest.param(OK + b"Content-Length: 9\r\n\r\nhello", False, id="mid-length-body"),
        pytest.param(TE + b"9\r\nhello", False, id="mid-chunk"),
    ],
)
def test_eof_before_a_whole_head_is_closed_and_any_other_break_only_broken(
    raw: bytes, closed: bool
) -> None:
    conn = ClientConnection()
    conn.head(RequestHead.of(b"GET", b"/", HOST))
    conn.receive(raw)
    conn.receive(b"")
    with pytest.raises(Broken) as raised:  # noqa: PT012 - the head or the body raises
        if conn.next_head() is not None:
            assert conn.next_data() == b"hello"
            conn.next_data()
    assert isinstance(raised.value, Closed) == closed


@pytest.mark.parametrize("code", [b"099", b"000"])
def test_a_status_code_under_100_is_broken_as_h11_says(code: bytes) -> None:
    raw = b"HTTP/1.1 " + code + b" X\r\n\r\n" + OK + b"Content-Length: 0\r\n\r\n"
    assert h11_reads(b"GET", [raw]).ending == "broken"
    assert our_reads(b"GET", [raw]).ending == "broken"


def test_a_chunk_size_line_over_16k_is_broken_as_h11_says() -> None:
    pieces = [TE + b"5;" + b"a" * MAX_HEAD]
    assert h11_reads(b"GET", pieces).ending == "broken"
    assert our_reads(b"GET", pieces).ending == "broken"


# The request side.


def h11_sends(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    conn = h11.Connection(h11.CLIENT)
    data = conn.send(h11.Request(method=method, target=target, headers=headers))
    assert data is not None
    return data


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        pytest.param(b"GET", b"/", HOST, id="host-only"),
        pytest.param(
            b"POST",
            b"/v1/images?x=1&y=%20",
            [(b"User-Agent", b"ua/1"), (b"Host", b"h:8080"), (CL, b"12")],
            id="host-moved-first",
        ),
        pytest.param(
            b"PUT",
            b"*",
            [(b"X-MiXeD-CaSe", b"V a l"), (b"host", b"h"), (TE_, b"chunked")],
            id="name-casing-kept",
        ),
        pytest.param(
            b"GET",
            b"http://h/p",
            [(b"Host", b"h"), (b"X-Empty", b""), (b"Connection", b"close"), (b"X-U", b"\xe9")],
            id="empty-value-close-obs-text",
        ),
    ],
)
def test_a_request_head_is_the_bytes_h11_sends(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    assert RequestHead.of(method, target, headers).data == h11_sends(method, target, headers)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param([(TE_, b"Chunked")], id="te-casing"),
        pytest.param([(CL, b"5, 5")], id="cl-list"),
        pytest.param([(CL, b"5"), (CL, b"5")], id="cl-twice"),
    ],
)
def test_a_request_head_h11_normalizes_is_sent_as_h11_sends_it(
    extra: list[tuple[bytes, bytes]],
) -> None:
    headers = HOST + extra
    assert RequestHead.of(b"POST", b"/", headers).data == h11_sends(b"POST", b"/", headers)


def refused(
    name: str,
    *extra: tuple[bytes, bytes],
    method: bytes = b"GET",
    target: bytes = b"/",
    host: list[tuple[bytes, bytes]] = HOST,
) -> object:
    return pytest.param(method, target, [*host, *extra], id=name)


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        refused("cr-in-value", (b"X", b"a\rb")),
        refused("lf-in-value", (b"X", b"a\nb")),
        refused("nul-in-value", (b"X", b"a\x00b")),
        refused("leading-space", (b"X", b" a")),
        refused("trailing-tab", (b"X", b"a\t")),
        refused("space-in-name", (b"X Y", b"a")),
        refused("colon-in-name", (b"X:", b"a")),
        refused("empty-name", (b"", b"a")),
        refused("space-in-method", method=b"GE T"),
        refused("empty-method", method=b""),
        refused("space-in-target", target=b"/a b"),
        refused("empty-target", target=b""),
        refused("no-host", host=[]),
        refused("two-hosts", (b"HOST", b"b")),
        refused("cl-conflict-in-one", (CL, b"1, 2")),
        refused("cl-conflict", (CL, b"1"), (CL, b"2")),
        refused("cl-not-digits", (CL, b"-1")),
        refused("te-gzip", (TE_, b"gzip")),
        refused("te-twice", (TE_, b"chunked"), (TE_, b"chunked")),
    ],
)
def test_a_request_head_h11_refuses_is_a_local_error(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    with pytest.raises(h11.LocalProtocolError):
        h11_sends(method, target, headers)
    with pytest.raises(LocalError):
        RequestHead.of(method, target, headers)


def test_connect_is_refused_before_anything_is_sent() -> None:
    # h11 would send it and read the answer as a tunnel; this transport never opens one.
    with pytest.raises(LocalError, match="CONNECT"):
        RequestHead.of(b"CONNECT", b"example.com:443", HOST)


def sending(headers: list[tuple[bytes, bytes]]) -> tuple[ClientConnection, h11.Connection]:
    """Ours and h11's client, each with the same request head sent."""
    ours, theirs = ClientConnection(), h11.Connection(h11.CLIENT)
    ours.head(RequestHead.of(b"POST", b"/", HOST + headers))
    theirs.send(h11.Request(method=b"POST", target=b"/", headers=HOST + headers))
    return ours, theirs


def test_a_content_length_body_must_be_exactly_that_long() -> None:
    ours, theirs = sending([(CL, b"5")])
    assert ours.data(b"hel") == theirs.send(h11.Data(data=b"hel")) == b"hel"
    with pytest.raises(LocalError, match="Too much"):
        ours.data(b"lo!")
    with pytest.raises(h11.LocalProtocolError, match="Too much"):
        theirs.send(h11.Data(data=b"lo!"))
    ours, theirs = sending([(CL, b"5")])
    assert ours.data(b"hell") == theirs.send(h11.Data(data=b"hell"))
    with pytest.raises(LocalError, match="Too little"):
        ours.end()
    with pytest.raises(h11.LocalProtocolError, match="Too little"):
        theirs.send(h11.EndOfMessage())
    assert ours.data(b"o") == b"o"
    assert ours.end() == b""


def test_a_request_without_body_headers_takes_no_body() -> None:
    ours, theirs = sending([])
    assert ours.data(b"") == theirs.send(h11.Data(data=b"")) == b""
    with pytest.raises(LocalError):
        ours.data(b"x")
    with pytest.raises(h11.LocalProtocolError):
        theirs.send(h11.Data(data=b"x"))
    assert ours.end() == b""


def test_a_chunked_body_is_encoded_as_h11_encodes_it() -> None:
    ours, theirs = sending([(TE_, b"chunked"), (CL, b"3")])
    for piece in [b"hello", b"", b"x" * 300, b"\r\n0\r\n"]:
        assert ours.data(piece) == theirs.send(h11.Data(data=piece))
    assert ours.data(b"") == b""  # an empty chunk would end the body
    assert ours.end() == theirs.send(h11.EndOfMessage()) == b"0\r\n\r\n"


def exchange(conn: ClientConnection, headers: list[tuple[bytes, bytes]], answer: bytes) -> bytes:
    """One whole request and its answer read to the end; the body."""
    conn.head(RequestHead.of(b"GET", b"/", HOST + headers))
    conn.end()
    conn.receive(answer)
    assert conn.next_head() is not None
    body = b""
    while (data := conn.next_data()) is not END:
        assert data != NEED_DATA
        body += data
    return body


def test_a_kept_alive_connection_carries_a_second_exchange() -> None:
    conn = ClientConnection()
    assert exchange(conn, [], OK + b"Content-Length: 5\r\n\r\nhello") == b"hello"
    with pytest.raises(LocalError):
        conn.head(RequestHead.of(b"GET", b"/", HOST))  # not before next_cycle
    assert conn.next_cycle()
    assert exchange(conn, [], TE + b"3\r\nbye\r\n0\r\n\r\n") == b"bye"
    assert conn.next_cycle()
    assert exchange(conn, [(b"Connection", b"close")], OK + b"Content-Length: 0\r\n\r\n") == b""
    assert not conn.next_cycle()


@pytest.mark.parametrize(
    ("answer", "end_request", "read_body", "then"),
    [
        pytest.param(OK + CL2, True, False, None, id="body-unread"),
        pytest.param(OK + CL2[:-1], True, True, None, id="body-short"),
        pytest.param(OK + CL2, False, True, None, id="request-open"),
        pytest.param(OK + CL2, True, True, b"", id="after-eof"),
        pytest.param(OK + CL2, True, True, b"X", id="bytes-past"),
    ],
)
def test_next_cycle_refuses_a_connection_whose_exchange_is_not_cleanly_over(
    answer: bytes, end_request: bool, read_body: bool, then: bytes | None
) -> None:
    conn = ClientConnection()
    conn.head(RequestHead.of(b"GET", b"/", HOST))
    if end_request:
        conn.end()
    conn.receive(answer)
    assert conn.next_head() is not None
    while read_body and (data := conn.next_data()) not in (END, NEED_DATA):
        assert data
    if then is not None:
        conn.receive(then)  # b"": the server's EOF
    assert not conn.next_cycle()
    with pytest.raises(LocalError):
        conn.head(RequestHead.of(b"GET", b"/", HOST))  # still the old exchange's
