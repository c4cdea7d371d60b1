#!/usr/bin/env python3
"""tests/integration/agent_client.py - a hostile and a well-behaved client
of `csnap agent`, for agent_cluster.sh.

  agent_client.py SOCKET hostile STORE   malformed input; checks each answer
  agent_client.py SOCKET many N STORE    N clients at once, each WHERE + PING

Exits 0 when every answer was as expected, else prints what was wrong.
"""
import socket
import sys


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(path)
    f = s.makefile("rb")
    greet = f.readline().decode()
    if not greet.startswith("CSNAP-AGENT 1 "):
        raise SystemExit("bad greeting: %r" % greet)
    return s, f


def ask(s, f, data):
    s.sendall(data)
    return f.readline().decode().rstrip("\n")


def expect(got, prefix, what):
    if not got.startswith(prefix):
        raise SystemExit("%s: expected %r..., got %r" % (what, prefix, got))


def hostile(path, store):
    s, f = connect(path)
    expect(ask(s, f, b"FROB x\n"), "ERR unknown verb 'FROB'", "unknown verb")
    expect(ask(s, f, b"\n"), "ERR empty request", "empty line")
    expect(ask(s, f, b"WHERE\n"), "ERR WHERE needs a store", "missing argument")
    expect(ask(s, f, b"WHERE no-such-store\n"), "ERR unknown store 'no-such-store'",
           "unknown store")
    expect(ask(s, f, b"WHERE \xff\xfe\x01\n"), "ERR bad character 0xff", "binary")
    expect(ask(s, f, b"PING extra\n"), "ERR PING takes no argument", "extra argument")
    # an overlong line, sent in pieces: one ERR, and the connection lives on
    s.sendall(b"WHERE " + b"x" * 5000)
    s.sendall(b"y" * 70000 + b"\n")
    expect(f.readline().decode(), "ERR line too long", "overlong line")
    expect(ask(s, f, b"ping\r\n"), "PONG", "ping after abuse")
    # pipelined requests are answered in order
    s.sendall(b"PING\nWHERE %s\nBOGUS\nPING\n" % store.encode())
    got = [f.readline().decode().rstrip("\n") for _ in range(4)]
    expect(got[0], "PONG", "pipelined 1")
    if not got[1].split(" ")[0] in ("MASTER", "NONE", "CHANGING"):
        raise SystemExit("pipelined WHERE: %r" % got[1])
    expect(got[2], "ERR unknown verb", "pipelined 3")
    expect(got[3], "PONG", "pipelined 4")
    expect(ask(s, f, b"QUIT\n"), "BYE", "quit")
    if f.readline() != b"":
        raise SystemExit("connection not closed after QUIT")
    # a client that vanishes mid-line and one that half-closes after a request
    s2, _ = connect(path)
    s2.sendall(b"WHERE " + store.encode())
    s2.close()
    s3, f3 = connect(path)
    s3.sendall(b"WHERE %s\n" % store.encode())
    s3.shutdown(socket.SHUT_WR)
    line = f3.readline().decode()
    if not line.split(" ")[0] in ("MASTER", "NONE", "CHANGING"):
        raise SystemExit("answer after half-close: %r" % line)
    if f3.readline() != b"":
        raise SystemExit("not closed after answering a half-closed client")


def many(path, n, store):
    conns = [connect(path) for _ in range(n)]
    for s, _ in conns:
        s.sendall(b"WHERE %s\nPING\n" % store.encode())
    for s, f in conns:
        a = f.readline().decode()
        if not a.startswith("MASTER "):
            raise SystemExit("client: %r" % a)
        expect(f.readline().decode(), "PONG", "many ping")
        s.close()


if __name__ == "__main__":
    if sys.argv[2] == "hostile":
        hostile(sys.argv[1], sys.argv[3])
    elif sys.argv[2] == "many":
        many(sys.argv[1], int(sys.argv[3]), sys.argv[4])
    print("ok")
