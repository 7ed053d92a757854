#!/usr/bin/python3
"""
A small, deterministic HTTP client for bench/callgrind.sh: N requests on
CONNS keep-alive connections, visitor and product drawn from a fixed
sequence, so that two runs send the same requests.  With CONNS > 1 it
sends one request on every connection, then reads the answers: nginx then
finds several requests ready at once, as under load, and the module writes
their views to Redis together.

usage: client.py PORT PATH N [CONNS] [VISITORS] [PRODUCTS]
       PATH holds "%d" for the product, e.g. /product/%d
"""

import socket
import sys


def read_response(f):
    status = f.readline()
    if not status:
        raise EOFError("connection closed")
    code = int(status.split()[1])
    length, chunked = 0, False
    while True:
        line = f.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int(f.readline().split(b";")[0], 16)
            f.read(size + 2)
            if size == 0:
                break
    else:
        f.read(length)
    return code


def main():
    port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    conns = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    visitors = int(sys.argv[5]) if len(sys.argv) > 5 else 100
    products = int(sys.argv[6]) if len(sys.argv) > 6 else 1000

    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append((s, s.makefile("rb")))

    bad, i = 0, 0
    while i < n:
        batch = socks[:min(conns, n - i)]
        for s, _ in batch:
            visitor = 1 + (i * 7) % visitors
            product = 1 + (i * 7919) % products
            p = path % product if "%d" in path else path
            s.sendall(("GET %s HTTP/1.1\r\nHost: bench\r\n"
                       "Cookie: sessionid=v%d\r\n\r\n"
                       % (p, visitor)).encode())
            i += 1
        for _, f in batch:
            if read_response(f) != 200:
                bad += 1

    for s, f in socks:
        f.close()
        s.close()

    if bad:
        print("client: %d of %d answers were not 200" % (bad, n),
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
