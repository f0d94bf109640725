"""CPU per request of the HTTP protocol engines alone, in memory: h11 (HTTP/1.1) against h2,
and the client's half: h11's against the client's own codec (``_network/_http11.py``).

    pip install h2 && python -m benchmarks.protocol_cost [--n 20000]

Both ends of one exchange run in this process with no sockets: the client encodes a poll
(``GET`` with the client's headers), the server decodes it and answers 200 with a ~400 B
JSON body, the client decodes that (h2: and acknowledges the data, as flow control wants).
It answers one question from issue 22: would HTTP/2 (``httpx[http2]``, one connection, no
pool to scan) make a request cheaper for this client? Connection handling is no longer what
costs (the client's own transport does O(1) work a request), so what is left is the
protocol engine, and h2's (HPACK, frames, flow control) is the heavier of the two.

The second line times the client's half alone, as the client's transport runs it: a poll's
head built once and sent again, a whole answer (head and body, as the simulator writes it)
read, the connection readied for the next request. h11 there is what the client used until
the sixth pass; the codec is what it uses now.
"""

from __future__ import annotations

import argparse
import time

import h11

from seedream_async._network._http11 import END, ClientConnection, RequestHead

_BODY = b'{"code":200,"data":{"id":"abc","status":"processing","outputs":[]}}' * 6
_PATH = "/api/v1/model/prediction/abc"
_HEADERS = [
    ("host", "api.atlascloud.ai"),
    ("accept", "application/json"),
    ("user-agent", "seedream-async/0"),
    ("authorization", "Bearer sk-0123456789abcdef0123456789abcdef"),
    ("accept-encoding", "gzip, deflate"),
]


def _h11(n: int) -> float:
    client, server = h11.Connection(h11.CLIENT), h11.Connection(h11.SERVER)
    start = time.process_time()
    for _ in range(n):
        request = h11.Request(method="GET", target=_PATH, headers=_HEADERS)
        server.receive_data(client.send(request) + (client.send(h11.EndOfMessage()) or b""))
        while not isinstance(server.next_event(), h11.EndOfMessage):
            pass
        head = [("content-type", "application/json"), ("content-length", str(len(_BODY)))]
        answer = server.send(h11.Response(status_code=200, headers=head)) or b""
        answer += (server.send(h11.Data(data=_BODY)) or b"") + (
            server.send(h11.EndOfMessage()) or b""
        )
        client.receive_data(answer)
        while not isinstance(client.next_event(), h11.EndOfMessage):
            pass
        client.start_next_cycle()
        server.start_next_cycle()
    return (time.process_time() - start) / n


def _answer() -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
    return head % len(_BODY) + b"x-request-id: 0123456789abcdef\r\n\r\n" + _BODY


def _client_h11(n: int) -> float:
    conn, answer = h11.Connection(h11.CLIENT), _answer()
    request = h11.Request(method="GET", target=_PATH, headers=_HEADERS)  # built once
    end = h11.EndOfMessage()
    start = time.process_time()
    for _ in range(n):
        conn.send(request)
        conn.send(end)
        conn.receive_data(answer)
        while not isinstance(conn.next_event(), h11.EndOfMessage):
            pass
        conn.start_next_cycle()
    return (time.process_time() - start) / n


def _client_codec(n: int) -> float:
    conn, answer = ClientConnection(), _answer()
    headers = [(name.encode(), value.encode()) for name, value in _HEADERS]
    request = RequestHead.of(b"GET", _PATH.encode(), headers)  # built once
    start = time.process_time()
    for _ in range(n):
        conn.head(request)
        conn.end()
        conn.receive(answer)
        conn.next_head()
        while conn.next_data() is not END:
            pass
        conn.next_cycle()
    return (time.process_time() - start) / n


def _h2(n: int) -> float:
    import h2.config
    import h2.connection
    import h2.events

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    pseudo = [(":method", "GET"), (":scheme", "https"), (":authority", "api.atlascloud.ai")]
    headers = [*pseudo, (":path", _PATH), *_HEADERS[1:]]
    start = time.process_time()
    for _ in range(n):
        stream = client.get_next_available_stream_id()
        client.send_headers(stream, headers, end_stream=True)
        server.receive_data(client.data_to_send())
        head = [(":status", "200"), ("content-type", "application/json")]
        server.send_headers(stream, [*head, ("content-length", str(len(_BODY)))])
        server.send_data(stream, _BODY, end_stream=True)
        for event in client.receive_data(server.data_to_send()):
            if isinstance(event, h2.events.DataReceived):
                client.acknowledge_received_data(event.flow_controlled_length, stream)
        server.receive_data(client.data_to_send())
    return (time.process_time() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.protocol_cost", description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    ns = parser.parse_args()
    for _ in range(ns.repeats):
        one, two = _h11(ns.n), _h2(ns.n)
        print(
            f"h11 {one * 1e6:6.1f} us/request | h2 {two * 1e6:6.1f} us/request | "
            f"h2/h11 = {two / one:.2f} (both ends, in memory, {ns.n} requests)"
        )
        old, new = _client_h11(ns.n), _client_codec(ns.n)
        print(
            f"client half: h11 {old * 1e6:6.1f} us/request | codec {new * 1e6:6.1f} "
            f"us/request | codec/h11 = {new / old:.2f}"
        )


if __name__ == "__main__":
    main()
