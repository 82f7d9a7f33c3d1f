"""Start and stop memcached and nutcracker on loopback, bounded in time.

Every process started here is remembered and killed by its own handle in `stop_all()`,
which the generator calls from a `finally:` and from an atexit hook.
"""

import atexit
import os
import socket
import subprocess
import tempfile
import time

MEMCACHED = "/usr/bin/memcached"
NUTCRACKER = "/usr/sbin/nutcracker"

_children = []


def _wait_port(host, port, deadline_s=5.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {host}:{port} after {deadline_s}s")


def _port_free(host, port):
    with socket.socket() as s:
        # SO_REUSEADDR: connections of an earlier run in TIME_WAIT do not make it busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def _spawn(argv, host, port):
    if not _port_free(host, port):
        raise RuntimeError(f"{host}:{port} is already in use; refusing to share it")
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _children.append(p)
    try:
        _wait_port(host, port)
    except RuntimeError:
        err = b""
        if p.poll() is not None and p.stderr is not None:
            err = p.stderr.read()
        raise RuntimeError(f"{argv[0]} on {host}:{port} did not start: {err!r}")
    return p


def memcached(host, port, mem_mb=64):
    """One memcached on host:port (TCP only, no UDP)."""
    argv = [MEMCACHED]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]  # memcached refuses to run as root without -u
    return _spawn(
        argv + ["-l", host, "-p", str(port), "-U", "0", "-m", str(mem_mb), "-t", "1",
         "-c", "256"],
        host, port)


def nutcracker(listen_host, listen_port, servers, hash_="md5", distribution="ketama",
               hash_tag=None):
    """A nutcracker pool listening on listen_host:listen_port.

    `servers` are twemproxy server lines ("host:port:weight" or "host:port:weight name");
    `hash_tag` two characters, or None for none.
    """
    conf = (
        "pool:\n"
        f"  listen: {listen_host}:{listen_port}\n"
        f"  hash: {hash_}\n"
        f"  distribution: {distribution}\n"
        + (f'  hash_tag: "{hash_tag}"\n' if hash_tag else "")
        + "  auto_eject_hosts: false\n"
        "  redis: false\n"
        "  timeout: 2000\n"
        "  server_connections: 1\n"
        "  servers:\n" + "".join(f"   - {s}\n" for s in servers))
    fd, path = tempfile.mkstemp(prefix="ring-vectors-", suffix=".yml")
    with os.fdopen(fd, "w") as f:
        f.write(conf)
    atexit.register(lambda: os.path.exists(path) and os.unlink(path))
    # -s 0 would still bind a stats port; give it one next to the listen port.
    return _spawn([NUTCRACKER, "-c", path, "-s", str(listen_port + 1), "-a", listen_host,
                   "-v", "0", "-o", "/dev/null"], listen_host, listen_port)


class FakeMemcached:
    """One thread answering `get KEY` with `END` on many loopback ports, remembering on which
    port each key arrived: where nutcracker sent it. Nothing is stored."""

    def __init__(self, host, ports):
        import selectors
        import threading
        self.sel = selectors.DefaultSelector()
        self.seen = {}  # port -> list of keys
        self.listeners = []
        for port in ports:
            if not _port_free(host, port):
                raise RuntimeError(f"{host}:{port} is already in use; refusing to share it")
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((host, port))
            ls.listen(16)
            ls.setblocking(False)
            self.sel.register(ls, selectors.EVENT_READ, ("listen", port))
            self.listeners.append(ls)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        import selectors
        bufs = {}
        while not self.stopping:
            for sk, _ in self.sel.select(timeout=0.1):
                kind, port = sk.data
                if kind == "listen":
                    c, _ = sk.fileobj.accept()
                    c.setblocking(False)
                    bufs[c] = b""
                    self.sel.register(c, selectors.EVENT_READ, ("conn", port))
                    continue
                c = sk.fileobj
                data = c.recv(65536)
                if not data:
                    self.sel.unregister(c)
                    c.close()
                    bufs.pop(c, None)
                    continue
                bufs[c] += data
                out = b""
                while b"\r\n" in bufs[c]:
                    line, bufs[c] = bufs[c].split(b"\r\n", 1)
                    if line.startswith(b"get "):
                        for k in line[4:].split(b" "):
                            self.seen.setdefault(port, []).append(k)
                        out += b"END\r\n"
                    else:
                        out += b"ERROR\r\n"
                if out:
                    c.setblocking(True)
                    c.sendall(out)
                    c.setblocking(False)

    def take(self):
        """Which port each key came to since the last call: {key: port}."""
        got = {}
        for port, keys in self.seen.items():
            for k in keys:
                if k in got and got[k] != port:
                    raise RuntimeError(f"key {k!r} came to two ports")
                got[k] = port
        self.seen = {}
        return got

    def close(self):
        self.stopping = True
        self.thread.join(timeout=5)
        for sk in list(self.sel.get_map().values()):
            sk.fileobj.close()
        self.sel.close()


def get_through(host, port, keys, deadline_s=60.0):
    """Sends `get KEY` for every key to a memcached (nutcracker) and waits for every END."""
    end = time.monotonic() + deadline_s
    with socket.create_connection((host, port), timeout=5) as s:
        for i in range(0, len(keys), 200):
            chunk = keys[i:i + 200]
            s.sendall(b"".join(b"get " + k + b"\r\n" for k in chunk))
            buf = b""
            while buf.count(b"END\r\n") < len(chunk):
                if time.monotonic() > end:
                    raise RuntimeError("nutcracker did not answer every get in time")
                data = s.recv(65536)
                if not data:
                    raise RuntimeError(f"nutcracker closed the connection: {buf[-200:]!r}")
                buf += data
            if buf != b"END\r\n" * len(chunk):
                raise RuntimeError(f"unexpected answer from nutcracker: {buf[:200]!r}")


def stop(p):
    if p.poll() is None:
        p.kill()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    if p in _children:
        _children.remove(p)


def stop_all():
    for p in list(_children):
        stop(p)


atexit.register(stop_all)
