#!/usr/bin/python3
"""Feeds a golden table through the real `shoal hash` binary and counts matches per column.

    /usr/bin/python3 scripts/ring-vectors/gen.py --keys 100000 --out /tmp/ring100k
    cargo build --release -p shoal
    /usr/bin/python3 scripts/ring-vectors/check_cli.py /tmp/ring100k/memcached.tsv

Exits non-zero if any column that `shoal hash` offers has a mismatch.
"""

import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLI_ALGORITHMS = {"ketama", "ketama-compat", "libvbucket-ketama", "modula", "groupcache",
                  "galaxycache", "jump", "chash", "rendezvous"}


def read_table(path):
    cols, keys, cells, header = [], [], [], False
    for line in open(path, "rb").read().split(b"\n"):
        if not line:
            continue
        if header:
            fields = line.split(b"\t")
            keys.append(fields[0])
            cells.append(fields[1:])
        elif line.startswith(b"#col\t"):
            cols.append(line.decode().split("\t")[1:])
        elif not line.startswith(b"#"):
            header = True
    return cols, keys, cells


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "crates", "ring", "tests", "vectors", "memcached.tsv")
    shoal = os.environ.get("SHOAL", os.path.join(ROOT, "target", "release", "shoal"))
    cols, keys, cells = read_table(path)
    stdin = b"\n".join(keys) + b"\n"
    bad = 0
    for i, (name, algo, members) in enumerate(cols):
        if algo not in CLI_ALGORITHMS:
            continue
        names = members.split(",")
        out = subprocess.run([shoal, "hash", "-a", algo, "-s", members], input=stdin,
                             capture_output=True, check=True, timeout=600).stdout.split(b"\n")
        ok = sum(1 for k, key in enumerate(keys)
                 if out[k] == key + b"\t" + names[int(cells[k][i].split(b",")[0])].encode())
        bad += len(keys) - ok
        print(f"{name:22} {algo:18} {ok}/{len(keys)}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
