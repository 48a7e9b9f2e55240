"""The sample service: FastAPI + SQLAlchemy on PostgreSQL, a Redis-backed cache, flags.

Run: `python -m sampleapp --port 28101` from a release directory (its `.env` or the
process environment provide DATABASE_URL and REDIS_URL).
"""

import asyncio
import json
import logging
import os
import sys
import threading
import time
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import create_engine, text

from . import settings as settings_mod

log = logging.getLogger("sampleapp")


class Metrics:
    """Process-local counters exported at /metrics in Prometheus text format."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = {}  # (path, status) -> count
        self.latency_sum = 0.0
        self.latency_count = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.errors = 0
        self.served = 0

    def observe(self, path, status, seconds):
        with self.lock:
            key = (path, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            self.latency_sum += seconds
            self.latency_count += 1
            if status >= 500:
                self.errors += 1

    def render(self, version):
        with self.lock:
            lines = [
                "# HELP app_info Release running in this process.",
                "# TYPE app_info gauge",
                'app_info{version="%s"} 1' % version,
                "# HELP http_requests_total Requests by path and status.",
                "# TYPE http_requests_total counter",
            ]
            for (path, status), count in sorted(self.requests.items()):
                lines.append('http_requests_total{path="%s",status="%d"} %d' % (path, status, count))
            lines += [
                "# HELP http_request_duration_seconds Request latency.",
                "# TYPE http_request_duration_seconds summary",
                "http_request_duration_seconds_sum %.6f" % self.latency_sum,
                "http_request_duration_seconds_count %d" % self.latency_count,
                "# HELP errors_total Responses with a 5xx status.",
                "# TYPE errors_total counter",
                "errors_total %d" % self.errors,
                "# HELP cache_hits_total Cache reads served from Redis.",
                "# TYPE cache_hits_total counter",
                "cache_hits_total %d" % self.cache_hits,
                "# HELP cache_misses_total Cache reads that went to the database.",
                "# TYPE cache_misses_total counter",
                "cache_misses_total %d" % self.cache_misses,
            ]
        return "\n".join(lines) + "\n"


class FaultInjector:
    """The `errors` behaviour: a deterministic share of 5xx after the first N requests."""

    def __init__(self, rate, after):
        self.rate = max(0.0, min(1.0, rate))
        self.after = after
        self.seen = 0
        self.acc = 0.0
        self.lock = threading.Lock()

    def should_fail(self):
        if self.rate <= 0:
            return False
        with self.lock:
            self.seen += 1
            if self.seen <= self.after:
                return False
            self.acc += self.rate
            if self.acc >= 1.0:
                self.acc -= 1.0
                return True
            return False


class PurchaseOrderIn(BaseModel):
    buyer_company_id: int
    seller_company_id: int
    product_id: int
    quantity: int = 1
    status: str = "open"


def create_app(cfg=None):
    cfg = cfg or settings_mod.load()
    metrics = Metrics()
    faults = FaultInjector(cfg.error_rate, cfg.errors_after)
    engine = create_engine(cfg.database_url, pool_size=5, max_overflow=10, pool_pre_ping=True,
                           connect_args={"connect_timeout": 3}) if cfg.database_url else None
    cache = redis.Redis.from_url(cfg.redis_url, socket_timeout=2, socket_connect_timeout=2) \
        if cfg.redis_url else None

    def in_maintenance():
        """Maintenance mode: MAINTENANCE_FILE exists (an operator or a deploy creates it)."""
        return bool(cfg.maintenance_file) and os.path.exists(cfg.maintenance_file)

    @asynccontextmanager
    async def lifespan(_app):
        started = time.perf_counter()
        positions = count_open_positions()
        log.warning("Recovery successful: loaded %s positions in %.0fms",
                    positions if positions is not None else 0,
                    (time.perf_counter() - started) * 1000)
        log.warning("sampleapp %s (%s) ready", cfg.version, cfg.variant)
        yield
        log.warning("sampleapp %s shutting down gracefully", cfg.version)
        if engine is not None:
            engine.dispose()

    app = FastAPI(title="prodready sample app", version=cfg.version, lifespan=lifespan)

    def count_open_positions():
        if engine is None:
            return None
        try:
            with engine.connect() as conn:
                return conn.execute(
                    text("SELECT count(*) FROM portfolio_positions WHERE status = 'open'")).scalar()
        except Exception:  # noqa: BLE001 - health must answer even when the DB does not
            return None

    @app.middleware("http")
    async def instrument(request: Request, call_next):
        started = time.perf_counter()
        path = request.url.path
        if cfg.extra_latency_ms > 0:
            await asyncio.sleep(cfg.extra_latency_ms / 1000.0)
        if path != "/metrics" and faults.should_fail():
            response = JSONResponse({"error": "simulated failure", "version": cfg.version},
                                    status_code=500)
        elif request.method not in ("GET", "HEAD", "OPTIONS") and in_maintenance():
            # No new work in maintenance mode (runbook 003: "temporarily return 503");
            # reads and /health keep answering so a deploy can watch the drain.
            response = JSONResponse({"error": "maintenance", "version": cfg.version},
                                    status_code=503, headers={"Retry-After": "30"})
        else:
            response = await call_next(request)
        metrics.observe(path, response.status_code, time.perf_counter() - started)
        response.headers["X-App-Version"] = cfg.version
        return response

    def health_body():
        return {"status": "healthy", "version": cfg.version, "variant": cfg.variant,
                "positions": count_open_positions(), "maintenance": in_maintenance()}

    @app.get("/health")
    @app.get("/api/v1/health")
    def health():
        return health_body()

    @app.get("/version", response_class=PlainTextResponse)
    def version():
        return cfg.version + "\n"

    @app.get("/ready")
    @app.get("/api/v1/ready")
    def ready():
        checks = {}
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["database"] = "error: %s" % type(exc).__name__
        try:
            cache.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = "error: %s" % type(exc).__name__
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ok else "not ready", "version": cfg.version,
                             "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus():
        return metrics.render(cfg.version)

    @app.get("/api/flags")
    def flags():
        runtime = {}
        try:
            for key in cache.scan_iter(match=cfg.flag_redis_prefix + "*", count=500):
                name = key.decode()[len(cfg.flag_redis_prefix):]
                runtime[name] = (cache.get(key) or b"").decode()
        except Exception as exc:  # noqa: BLE001
            runtime = {"error": type(exc).__name__}
        return {"env_file": cfg.flags, "redis": runtime}

    def po_row(row):
        return {"id": row.id, "buyer_company_id": row.buyer_company_id,
                "seller_company_id": row.seller_company_id, "product_id": row.product_id,
                "quantity": row.quantity, "status": row.status,
                "created_at": row.created_at.isoformat()}

    @app.get("/api/purchase-orders/{po_id}")
    def get_purchase_order(po_id: int):
        key = "%spo:%d" % (cfg.cache_prefix, po_id)
        try:
            cached = cache.get(key)
        except redis.RedisError:
            cached = None
        if cached is not None:
            with metrics.lock:
                metrics.cache_hits += 1
            return json.loads(cached)
        with metrics.lock:
            metrics.cache_misses += 1
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT id, buyer_company_id, seller_company_id, product_id, quantity, status, "
                "created_at FROM purchase_orders WHERE id = :id"), {"id": po_id}).first()
        if row is None:
            raise HTTPException(status_code=404, detail="purchase order %d not found" % po_id)
        body = po_row(row)
        try:
            cache.set(key, json.dumps(body), ex=cfg.cache_ttl)
        except redis.RedisError:
            pass
        return body

    @app.get("/api/purchase-orders")
    def list_purchase_orders(status: str = "open", limit: int = 50):
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT id, buyer_company_id, seller_company_id, product_id, quantity, status, "
                "created_at FROM purchase_orders WHERE status = :s ORDER BY created_at DESC "
                "LIMIT :n"), {"s": status, "n": min(limit, 500)}).fetchall()
        return [po_row(r) for r in rows]

    @app.post("/api/purchase-orders", status_code=201)
    def create_purchase_order(po: PurchaseOrderIn):
        with engine.begin() as conn:
            new_id = conn.execute(text(
                "INSERT INTO purchase_orders (buyer_company_id, seller_company_id, product_id, "
                "quantity, status) VALUES (:b, :s, :p, :q, :st) RETURNING id"),
                {"b": po.buyer_company_id, "s": po.seller_company_id, "p": po.product_id,
                 "q": po.quantity, "st": po.status}).scalar()
        return {"id": new_id}

    @app.get("/api/admin/performance-metrics")
    def performance_metrics(request: Request):
        expected = "Bearer " + cfg.admin_token
        if not cfg.admin_token or request.headers.get("authorization") != expected:
            raise HTTPException(status_code=401, detail="bearer token required")
        with metrics.lock:
            lookups = metrics.cache_hits + metrics.cache_misses
            return {"version": cfg.version,
                    "requests": metrics.latency_count,
                    "mean_latency_ms": (metrics.latency_sum / metrics.latency_count * 1000)
                    if metrics.latency_count else None,
                    "errors": metrics.errors,
                    "cache_hit_ratio": (metrics.cache_hits / lookups) if lookups else None,
                    "flags": cfg.flags}

    return app


HEARTBEAT_TABLE = "worker_heartbeats"


def heartbeat_worker(cfg, every=1.0):
    """A background worker's loop, in a process of its own: one row per second in
    worker_heartbeats (version, pid), the table created when missing, as a real app's worker
    re-creates what it finds gone; reconnects after any error. Runs until it is killed: a
    process manager that stops only the app's main process leaves it writing."""
    import psycopg2  # the driver SQLAlchemy uses; a plain connection per attempt

    url = cfg.database_url.replace("postgresql+psycopg2://", "postgresql://", 1)
    while True:
        try:
            conn = psycopg2.connect(url, connect_timeout=3)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS %s (id bigserial PRIMARY KEY, at timestamptz NOT NULL "
                            "DEFAULT clock_timestamp(), version text NOT NULL, pid integer NOT NULL)" % HEARTBEAT_TABLE)
                while True:
                    cur.execute("INSERT INTO %s (version, pid) VALUES (%%s, %%s)" % HEARTBEAT_TABLE,
                                (cfg.version, os.getpid()))
                    time.sleep(every)
        except Exception as exc:  # noqa: BLE001 - a worker keeps going, as real ones do
            log.warning("heartbeat worker %d: %s; again in %.0f s", os.getpid(), exc, every)
            time.sleep(every)


def start_heartbeat_worker(cfg):
    """Fork the background worker (same process group as the app); its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            heartbeat_worker(cfg)
        finally:
            os._exit(0)
    log.warning("sampleapp %s: heartbeat worker started, pid %d", cfg.version, pid)
    return pid


def main(argv=None):
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(prog="sampleapp")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
                        stream=sys.stdout)
    cfg = settings_mod.load()
    if cfg.variant in ("crash", "leaky"):
        log.error("sampleapp %s: refusing to start (%s variant)", cfg.version, cfg.variant)
        sys.exit(3)
    if cfg.heartbeat_worker and cfg.database_url:
        start_heartbeat_worker(cfg)
    # uvicorn stops accepting on SIGTERM and finishes in-flight requests (graceful).
    uvicorn.run(create_app(cfg), host=args.host, port=args.port, log_level="warning",
                access_log=False, timeout_graceful_shutdown=10, timeout_keep_alive=30)


if __name__ == "__main__":
    main()
