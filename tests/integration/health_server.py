"""A small real HTTP server for health_gate tests: fast, slow, flaky, down, wrong JSON...

Started by a fixture on 127.0.0.1 port 0 (threaded, HTTP/1.1 keep-alive). Endpoints:

- ``/fast``                  200 JSON {status: ok, version: 1.4.0, checks: {redis: ok, db: ok}}
- ``/slow/<ms>``             the same after sleeping <ms> milliseconds
- ``/tail/<n>/<ms>``         every <n>-th request (1st, n+1th...) sleeps <ms>, others are fast
- ``/flaky/<n>``             every <n>-th request (1st, n+1th...) answers 500, the others 200
- ``/recover/<id>/<n>``      the first <n> requests of <id> answer 500, then 200
- ``/fail-last/<id>/<n>``    200, except from the <n>-th request of <id> on: 500
- ``/startup/<id>/<ms>``     503 until <ms> after the first request of <id>, then 200
- ``/down``                  503 {"status": "down"}
- ``/wrong-json``            200 {status: ok, version: 1.4.0, checks: {redis: down}}
- ``/not-json``              200 text "all good"
- ``/old-version``           200 JSON with version 1.3.0
- ``/version``               200 text "1.3.2\\n"
- ``/meta``                  200 JSON {build: {info: {version: 2.0.1}}, items: [{id: 7}]}
- ``/auth``                  200 with header "Authorization: Bearer s3cret-token", else 401
- ``/redirect``              302 to /fast
- ``/inflight/<ms>``         sleeps <ms>; the server records the most requests in flight at once
- ``/close``                 200 with ``Connection: close``, then closes the connection
- ``/drop``                  200 as if keep-alive, then closes the connection anyway (as a
                             server's idle timeout does between two requests)
- ``/chunked``               200 JSON (as /fast) in three chunks written 2 ms apart, with a
                             chunk extension and a trailer; the connection stays open
- ``/until-close``           200 JSON (as /fast) without Content-Length: the body ends when the
                             server closes the connection
``state.connections`` counts the TCP connections accepted.
Any method is accepted; HEAD gets headers only.
"""

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GOOD = {"status": "ok", "version": "1.4.0", "checks": {"redis": "ok", "db": "ok"}}
TOKEN = "s3cret-token"


class _State(object):
    def __init__(self):
        self.lock = threading.Lock()
        self.counters = {}
        self.first_seen = {}
        self.inflight = 0
        self.max_inflight = 0
        self.connections = 0

    def count(self, key):
        with self.lock:
            self.counters[key] = self.counters.get(key, 0) + 1
            return self.counters[key]

    def since_first(self, key):
        with self.lock:
            now = time.monotonic()
            start = self.first_seen.setdefault(key, now)
            return now - start


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: avoid the 40 ms delayed-ACK stall
    state = None

    def log_message(self, *args):  # keep test output quiet
        pass

    def setup(self):
        BaseHTTPRequestHandler.setup(self)
        with self.state.lock:
            self.state.connections += 1

    def _send(self, status, body, content_type="application/json", headers=None):
        data = body if isinstance(body, bytes) else (
            json.dumps(body) if not isinstance(body, str) else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_chunked(self, data):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Trailer", "X-Checksum")
        self.end_headers()
        if self.command == "HEAD":
            return
        third = len(data) // 3 + 1
        for index, start in enumerate(range(0, len(data), third)):
            piece = data[start:start + third]
            self.wfile.write(b"%x;part=%d\r\n%s\r\n" % (len(piece), index, piece))
            time.sleep(0.002)
        self.wfile.write(b"0\r\nX-Checksum: %d\r\n\r\n" % len(data))

    def _route(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        name = parts[0] if parts else ""
        state = self.state
        if name == "fast":
            return self._send(200, GOOD)
        if name == "slow":
            time.sleep(int(parts[1]) / 1000.0)
            return self._send(200, GOOD)
        if name == "tail":
            n = state.count(self.path)
            if (n - 1) % int(parts[1]) == 0:
                time.sleep(int(parts[2]) / 1000.0)
            return self._send(200, GOOD)
        if name == "flaky":
            n = state.count(self.path)
            if (n - 1) % int(parts[1]) == 0:
                return self._send(500, {"status": "error", "detail": "flaky failure #%d" % n})
            return self._send(200, GOOD)
        if name == "recover":
            n = state.count(self.path)
            if n <= int(parts[2]):
                return self._send(500, {"status": "error"})
            return self._send(200, GOOD)
        if name == "fail-last":
            n = state.count(self.path)
            if n >= int(parts[2]):
                return self._send(500, {"status": "error"})
            return self._send(200, GOOD)
        if name == "inflight":
            with state.lock:
                state.inflight += 1
                state.max_inflight = max(state.max_inflight, state.inflight)
            try:
                time.sleep(int(parts[1]) / 1000.0)
            finally:
                with state.lock:
                    state.inflight -= 1
            return self._send(200, GOOD)
        if name == "startup":
            state.count(self.path)
            if state.since_first(self.path) * 1000.0 < int(parts[2]):
                return self._send(503, {"status": "starting"})
            return self._send(200, GOOD)
        if name == "down":
            return self._send(503, {"status": "down"})
        if name == "wrong-json":
            return self._send(200, {"status": "ok", "version": "1.4.0", "checks": {"redis": "down", "db": "ok"}})
        if name == "not-json":
            return self._send(200, "all good", "text/plain")
        if name == "old-version":
            return self._send(200, dict(GOOD, version="1.3.0"))
        if name == "version":
            return self._send(200, "1.3.2\n", "text/plain")
        if name == "meta":
            return self._send(200, {"build": {"info": {"version": "2.0.1"}}, "items": [{"id": 7}]})
        if name == "auth":
            if self.headers.get("Authorization") == "Bearer " + TOKEN:
                return self._send(200, GOOD)
            return self._send(401, {"error": "unauthorized"})
        if name == "close":
            self.close_connection = True
            return self._send(200, GOOD, headers={"Connection": "close"})
        if name == "drop":
            self._send(200, GOOD)
            self.close_connection = True
            return None
        if name == "chunked":
            return self._send_chunked(json.dumps(GOOD).encode())
        if name == "until-close":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(json.dumps(GOOD).encode())
            self.close_connection = True
            return None
        if name == "redirect":
            return self._send(302, "", "text/plain", {"Location": "/fast"})
        return self._send(404, {"error": "no such endpoint %s" % self.path})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _route


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog (5) drops the SYN of the 7th+ client that
    # connects at once, which then retries a second later: /inflight would never see 8.
    request_queue_size = 128


class HealthServer(object):
    """Start with ``HealthServer().start()``; ``.url(path)``; ``.stop()``.

    With ``certfile``/``keyfile`` it serves HTTPS (for the TLS options).
    """

    def __init__(self, certfile=None, keyfile=None):
        self.state = _State()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.scheme = "http"
        if certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def url(self, path):
        return "%s://127.0.0.1:%d%s" % (self.scheme, self.port, path)

    def requests_to(self, path):
        """How many requests the server received for exactly ``path``."""
        with self.state.lock:
            return self.state.counters.get(path, 0)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
