#!/usr/bin/env python3
"""A closed-loop HTTP/1.1 load of an exact number of requests, for `scripts/bench.sh instructions`.

    fixed-load.py PORT REQUESTS [CONNECTIONS] [TOKEN]

Opens CONNECTIONS (default 8) keep-alive connections to 127.0.0.1:PORT and sends `GET /` with
`Authorization: Bearer TOKEN` on each, one at a time per connection, until REQUESTS responses
have arrived. Every response must be a 200 with a Content-Length body; anything else, or no
progress for 60 s, ends it with exit status 1. Prints the number of responses. Standard
library only.
"""
import selectors
import socket
import sys
import time


def main() -> int:
    port, total = int(sys.argv[1]), int(sys.argv[2])
    conns = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    token = sys.argv[4] if len(sys.argv) > 4 else ""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
    if token:
        request += b"Authorization: Bearer " + token.encode() + b"\r\n"
    request += b"\r\n"

    selector = selectors.DefaultSelector()
    sent = done = 0
    buffers = {}
    for _ in range(min(conns, total)):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        buffers[sock] = b""
        sock.sendall(request)
        sent += 1

    last_progress = time.monotonic()
    while done < total:
        if time.monotonic() - last_progress > 60:
            print(f"fixed-load: no response for 60 s after {done} of {total}", file=sys.stderr)
            return 1
        for key, _ in selector.select(timeout=1):
            sock = key.fileobj
            chunk = sock.recv(65536)
            if not chunk:
                print(f"fixed-load: connection closed after {done} responses", file=sys.stderr)
                return 1
            data = buffers[sock] + chunk
            while True:
                end = data.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = data[:end].decode("latin-1")
                if not head.startswith("HTTP/1.1 200"):
                    print(f"fixed-load: unexpected response: {head.splitlines()[0]!r}", file=sys.stderr)
                    return 1
                length = None
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                if length is None:
                    print("fixed-load: a response without Content-Length", file=sys.stderr)
                    return 1
                if len(data) < end + 4 + length:
                    break
                data = data[end + 4 + length:]
                done += 1
                last_progress = time.monotonic()
                if sent < total:
                    sock.sendall(request)
                    sent += 1
            buffers[sock] = data
    for sock in buffers:
        sock.close()
    print(done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
