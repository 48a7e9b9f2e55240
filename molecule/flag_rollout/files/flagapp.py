"""A minimal service for the flag_rollout scenario: reads its env file once, at start.

GET /health answers {"status": "healthy", "pid": ..., "flags": {...}}: the flags this
process started with, so a test sees whether a restart picked up the file's new values.
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def read_env(path):
    flags = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                name, value = line.split("=", 1)
                flags.setdefault(name.strip(), value.strip())  # the first assignment wins, as in the app
    return flags


FLAGS = read_env(sys.argv[2])


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path != "/health":
            self.send_error(404)
            return
        body = json.dumps({"status": "healthy", "pid": os.getpid(), "flags": FLAGS}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
