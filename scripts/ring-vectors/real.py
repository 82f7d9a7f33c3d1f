"""Ask the real systems where keys go.

* `placed_by_servers`: store every key through a client (pylibmc, or pylibmc pointed at a
  nutcracker) and then ask each memcached which of the keys it holds.
* `LibmemcachedHash`: the same libmemcached library, called through ctypes:
  `memcached_generate_hash` returns the server index for a key without any server running.
  Used for fast 100k runs and for member counts too large to start as processes; gen.py checks
  it against the server placement first.
"""

import ctypes

import pylibmc

CHUNK = 2000


def placed_by_servers(store_client, servers, keys):
    """servers: list of (host, port). Returns a list of server indices, one per key."""
    directs = [pylibmc.Client([f"{h}:{p}"]) for h, p in servers]
    for d in directs:
        d.flush_all()
    for i in range(0, len(keys), CHUNK):
        failed = store_client.set_multi({k: b"1" for k in keys[i:i + CHUNK]})
        if failed:
            raise RuntimeError(f"{len(failed)} sets failed, e.g. {failed[:3]!r}")
    where = {}
    for idx, d in enumerate(directs):
        for i in range(0, len(keys), CHUNK):
            for k in d.get_multi(keys[i:i + CHUNK]):
                k = k if isinstance(k, bytes) else k.encode()
                if k in where:
                    raise RuntimeError(f"key {k!r} found on two servers")
                where[k] = idx
    missing = [k for k in keys if k not in where]
    if missing:
        raise RuntimeError(f"{len(missing)} keys stored nowhere, e.g. {missing[:3]!r}")
    for d in directs:
        d.disconnect_all()
    return [where[k] for k in keys]


# memcached_behavior_t / memcached_hash_t / distribution values from libmemcached's headers
BEHAVIOR_HASH = 2
BEHAVIOR_KETAMA = 3
BEHAVIOR_DISTRIBUTION = 9
BEHAVIOR_KETAMA_WEIGHTED = 16
BEHAVIOR_KETAMA_HASH = 17
HASH_DEFAULT, HASH_MD5 = 0, 1
DISTRIBUTION_MODULA = 0


class LibmemcachedHash:
    """A memcached_st with servers added (never connected) and behaviours set."""

    _lib = None

    @classmethod
    def lib(cls):
        if cls._lib is None:
            lib = ctypes.CDLL("libmemcached.so.11")
            lib.memcached_create.restype = ctypes.c_void_p
            lib.memcached_create.argtypes = [ctypes.c_void_p]
            lib.memcached_free.argtypes = [ctypes.c_void_p]
            lib.memcached_server_add_with_weight.argtypes = [
                ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint16, ctypes.c_uint32]
            lib.memcached_behavior_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
            lib.memcached_generate_hash.restype = ctypes.c_uint32
            lib.memcached_generate_hash.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                    ctypes.c_size_t]
            lib.memcached_lib_version.restype = ctypes.c_char_p
            cls._lib = lib
        return cls._lib

    def __init__(self, servers, behaviors):
        """servers: (host, port, weight); behaviors: list of (behavior, value).

        Order matters in libmemcached and this follows pylibmc: behaviours first, in pylibmc's
        table order (hash before ketama), then the servers. A server added with weight > 1
        switches a plain KETAMA continuum to the weighted one; setting KETAMA after the hash
        would build the continuum with the old hash and never rebuild it."""
        lib = self.lib()
        self.m = lib.memcached_create(None)
        for b, v in behaviors:
            rc = lib.memcached_behavior_set(self.m, b, v)
            if rc != 0:
                raise RuntimeError(f"memcached_behavior_set({b}, {v}) = {rc}")
        for h, p, w in servers:
            rc = lib.memcached_server_add_with_weight(self.m, h.encode(), p, w)
            if rc != 0:
                raise RuntimeError(f"memcached_server_add_with_weight({h}:{p}) = {rc}")

    def index(self, key):
        return self.lib().memcached_generate_hash(self.m, key, len(key))

    def close(self):
        self.lib().memcached_free(self.m)
