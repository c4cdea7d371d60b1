"""The NBD wire protocol spoken by hand, for the test clients that must send
what no real client would (export_badclient.py, export_meta.py,
export_tls.py, export_burst.py).  One copy of the constants (from the NBD
protocol document, proto.md upstream) and of the framing helpers; the
checks themselves stay in each script.

check() counts failures in nbdwire.failures; a script ends with
sys.exit(1 if nbdwire.failures else 0).  Sockets get a 10 s timeout, so a
server that stops answering fails the test instead of hanging it.
"""
import socket
import ssl
import struct
import sys

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPMAGIC = 0x0003E889045565A9
REQ_MAGIC = 0x25609513
REPLY_MAGIC = 0x67446698                # simple reply
CHUNK_MAGIC = 0x668E33EF                # structured reply chunk
EXT_REQ_MAGIC, EXT_REPLY_MAGIC = 0x21E41C71, 0x6E8A278C

OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_INFO, OPT_GO = 1, 2, 3, 5, 6, 7
OPT_STRUCTURED_REPLY, OPT_LIST_META, OPT_SET_META, OPT_EXTENDED = 8, 9, 10, 11
REP_ACK, REP_SERVER, REP_INFO, REP_META = 1, 2, 3, 4
ERR = 1 << 31
REP_ERR_UNSUP, REP_ERR_INVALID, REP_ERR_TLS_REQD = ERR | 1, ERR | 3, ERR | 5
REP_ERR_UNKNOWN, REP_ERR_TOO_BIG, REP_ERR_EXT_HEADER_REQD = ERR | 6, ERR | 9, ERR | 10

CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_CACHE, CMD_ZEROES, CMD_BLOCK_STATUS = range(8)
FLAG_DONE = 1                           # reply chunk flag
FLAG_DF, FLAG_REQ_ONE, FLAG_PAYLOAD_LEN = 4, 8, 32     # command flags
TYPE_NONE, TYPE_OFFSET_DATA, TYPE_BLOCK_STATUS, TYPE_BLOCK_STATUS_EXT = 0, 1, 5, 6
TYPE_ERROR = (1 << 15) + 1
EPERM, EINVAL, ENOSPC = 1, 22, 28

failures = 0


def check(cond, what):
    global failures
    if cond:
        print("ok:", what)
    else:
        failures += 1
        print("FAIL:", what, file=sys.stderr)


def recvall(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError("server closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def closed_by_server(s, timeout=5):
    """True if the server closes the connection (EOF or reset) in time."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


def connect(host, port=None, client_flags=3):
    """Connects (HOST a unix socket path when PORT is None), checks the
    greeting and sends CLIENT_FLAGS (3: fixed newstyle, no zeroes)."""
    if port is None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(host)
    else:
        s = socket.create_connection((host, port))
    s.settimeout(10)
    magic, opt, _ = struct.unpack(">QQH", recvall(s, 18))
    assert magic == NBDMAGIC and opt == IHAVEOPT, "bad greeting"
    s.sendall(struct.pack(">I", client_flags))
    return s


def send_opt(s, opt, data=b"", length=None):
    """One option; LENGTH, if given, is what the header claims."""
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data) if length is None else length) + data)


def read_reply(s):
    """One option reply: (option, reply type, data)."""
    magic, opt, rtype, length = struct.unpack(">QIII", recvall(s, 20))
    assert magic == REPMAGIC, "bad reply magic"
    return opt, rtype, recvall(s, length)


def name_opt(name, infos=()):
    """The data of NBD_OPT_INFO/GO: export NAME, then the INFOS asked."""
    return (struct.pack(">I", len(name)) + name + struct.pack(">H", len(infos)) +
            b"".join(struct.pack(">H", i) for i in infos))


def go(s, name):
    """NBD_OPT_GO: (final reply type, {info type: info data})."""
    send_opt(s, OPT_GO, name_opt(name))
    info = {}
    while True:
        _, rtype, data = read_reply(s)
        if rtype == REP_INFO:
            info[struct.unpack(">H", data[:2])[0]] = data[2:]
        else:
            return rtype, info


def list_exports(s):
    """NBD_OPT_LIST: (final reply type, [export names])."""
    send_opt(s, OPT_LIST)
    names = []
    while True:
        _, rtype, data = read_reply(s)
        if rtype != REP_SERVER:
            return rtype, names
        names.append(data[4:4 + struct.unpack(">I", data[:4])[0]])


def req(cmd, cookie, off, length, flags=0):
    """A compact (28-byte) request header."""
    return struct.pack(">IHHQQI", REQ_MAGIC, flags, cmd, cookie, off, length)


def request(s, cmd, off, length, flags=0, cookie=7, payload=b""):
    s.sendall(req(cmd, cookie, off, length, flags) + payload)


def reply(s, datalen=0):
    """One simple reply: (error, cookie, data); DATALEN bytes follow a
    successful one."""
    magic, err, cookie = struct.unpack(">IIQ", recvall(s, 16))
    assert magic == REPLY_MAGIC, "expected a simple reply, got magic %#x" % magic
    data = recvall(s, datalen) if err == 0 and datalen else b""
    return err, cookie, data


def chunk(s):
    """One structured chunk: (flags, type, cookie, payload)."""
    magic = struct.unpack(">I", recvall(s, 4))[0]
    assert magic == CHUNK_MAGIC, "expected a structured chunk, got magic %#x" % magic
    flags, rtype, cookie, length = struct.unpack(">HHQI", recvall(s, 16))
    return flags, rtype, cookie, recvall(s, length)


def ext_request(s, cmd, off, length, flags=0, cookie=7, payload=b""):
    """An extended (32-byte) request header, 64-bit length."""
    s.sendall(struct.pack(">IHHQQQ", EXT_REQ_MAGIC, flags, cmd, cookie, off, length) + payload)


def ext_chunk(s):
    """One extended reply chunk: (flags, type, cookie, offset, payload)."""
    magic, flags, rtype, cookie, off, length = struct.unpack(">IHHQQQ", recvall(s, 32))
    assert magic == EXT_REPLY_MAGIC, "expected an extended reply, got magic %#x" % magic
    assert length < 1 << 32, "reply length %d" % length
    return flags, rtype, cookie, off, recvall(s, length)
