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


def nutcracker(listen_host, listen_port, servers, hash_="md5", distribution="ketama"):
    """A nutcracker pool listening on listen_host:listen_port.

    `servers` are twemproxy server lines ("host:port:weight" or "host:port:weight name").
    """
    conf = (
        "pool:\n"
        f"  listen: {listen_host}:{listen_port}\n"
        f"  hash: {hash_}\n"
        f"  distribution: {distribution}\n"
        "  auto_eject_hosts: false\n"
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
