#!/usr/bin/python3
"""Connection-level attacks on a csnap daemon (master or export), for
tests/integration/hostile_conns.sh.

usage: hostile_conns.py idle HOST PORT N SECONDS PID
         Opens N TCP connections (HOST a path: unix ones) that send nothing (non-blocking connects,
         so a full accept queue does not stop us), holds them SECONDS, and
         prints how many were opened and the CPU time PID used meanwhile:
           opened N
           cpu_ms MS
       hostile_conns.py bigmsg HOST PORT N PID
         Opens N connections that each send a csnap header announcing a
         1 MiB AUTH message and then 900 KiB of it, before authenticating;
         prints PID's resident memory growth and how many of the
         connections the daemon closed:
           rss_growth_kib KIB
           closed N
       hostile_conns.py burst HOST PORT N PID CMD...
         With PID stopped (SIGSTOP): opens N//10 connections, starts CMD (a
         real client: it connects behind them), opens the rest, closes all
         N, resumes PID (SIGCONT).  PID then finds in its accept queue a
         real client among N connections whose peer is gone.  Exits with
         CMD's status.
"""
import errno
import os
import socket
import struct
import sys
import time


def cpu_ms(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 (1-based) of the whole line.
    return (int(fields[11]) + int(fields[12])) * 1000 // os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def idle(host, port, n, seconds, pid):
    socks = []
    for _ in range(n):
        unix = host.startswith("/")
        s = socket.socket(socket.AF_UNIX if unix else socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(host if unix else (host, port))
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno not in (errno.EINPROGRESS, errno.ECONNREFUSED, errno.ECONNRESET):
                raise
        socks.append(s)
    time.sleep(0.5)     # let the daemon take the last ones in
    print("opened %d" % len(socks), flush=True)
    c0 = cpu_ms(pid)
    time.sleep(seconds)
    print("cpu_ms %d" % (cpu_ms(pid) - c0), flush=True)
    for s in socks:
        s.close()


def bigmsg(host, port, n, pid):
    r0 = rss_kib(pid)
    mib = 1 << 20
    # type AUTH (2), flags 0, len 1 MiB, id 1, crc 0, reserved 0; then
    # 900 KiB of the payload, so a server that waits for the whole
    # message holds what came.
    hdr = struct.pack("<HHIQII", 2, 0, mib, 1, 0, 0)
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=5)
        socks.append(s)
    payload = b"\0" * (900 << 10)
    for s in socks:
        try:
            s.recv(4096)               # the challenge
            s.sendall(hdr + payload)
        except OSError:
            pass                        # closed on us: that is the point
    time.sleep(1)
    print("rss_growth_kib %d" % (rss_kib(pid) - r0), flush=True)
    closed = 0
    for s in socks:
        s.settimeout(2)
        try:
            while s.recv(65536):
                pass
            closed += 1
        except (ConnectionResetError, BrokenPipeError):
            closed += 1
        except socket.timeout:
            pass
        s.close()
    print("closed %d" % closed, flush=True)


def burst(host, port, n, pid, cmd):
    import signal
    import subprocess

    def opened(k):
        socks = []
        for _ in range(k):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((host, port))
            except BlockingIOError:
                pass
            socks.append(s)
        time.sleep(0.3)     # handshakes done by the kernel
        return socks

    os.kill(pid, signal.SIGSTOP)
    try:
        socks = opened(n // 10)
        client = subprocess.Popen(cmd)
        time.sleep(0.5)
        socks += opened(n - n // 10)
        for s in socks:
            s.close()
    finally:
        os.kill(pid, signal.SIGCONT)
    sys.exit(client.wait(timeout=60))


cmd = sys.argv[1]
if cmd == "idle":
    idle(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]))
elif cmd == "burst":
    burst(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:])
elif cmd == "bigmsg":
    bigmsg(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
else:
    sys.exit("unknown command " + cmd)
