#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Put servers of one haproxy backend in a state through the runtime API (admin socket).

Usage: haproxy_servers_state.py SOCKET BACKEND STATE SERVER [SERVER ...]
The rollback role puts every color in `maint` while a database restore runs, so that
haproxy answers 503 and no release writes to the database being replaced.
Prints one JSON object: {"backend": ..., "state": ..., "servers": [...], "at": epoch}.
"""

import json
import socket
import sys
import time


def command(path, line):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect(path)
        sock.sendall(line.encode("ascii") + b"\n")
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks).decode("utf-8", "replace").strip()
    finally:
        sock.close()


def main(argv):
    if len(argv) < 5 or argv[3] not in ("ready", "drain", "maint"):
        sys.stderr.write("usage: haproxy_servers_state.py SOCKET BACKEND ready|drain|maint SERVER...\n")
        return 2
    path, backend, state, servers = argv[1], argv[2], argv[3], argv[4:]
    for server in servers:
        answer = command(path, "set server %s/%s state %s" % (backend, server, state))
        if answer:
            sys.stderr.write("haproxy refused `set server %s/%s state %s`: %s\n"
                             % (backend, server, state, answer))
            return 1
    print(json.dumps({"backend": backend, "state": state, "servers": servers, "at": time.time()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
