"""Configuration from the environment and the shared .env file, read once at start.

Flags in `.env` need a restart to take effect (like systemd's EnvironmentFile); flags in
Redis (keys under FLAG_REDIS_PREFIX) are read at request time.
"""

import os
from dataclasses import dataclass, field

from . import _release

# Faults each release variant brings (tests and the demo use them to exercise the gates).
VARIANT_DEFAULTS = {
    "slow": {"APP_EXTRA_LATENCY_MS": "600"},
    "errors": {"SIMULATE_ERROR_RATE": "0.5", "SIMULATE_ERRORS_AFTER": "150"},
    # A background worker in a forked process (like gunicorn/celery workers of a real app).
    "worker": {"APP_HEARTBEAT_WORKER": "1"},
}


def parse_env_file(path):
    """Name -> value of a dotenv file; the last assignment of a name wins, as in a shell."""
    values = {}
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return values
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        name, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[name.strip()] = value
    return values


def truthy(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Settings:
    version: str
    variant: str
    database_url: str
    redis_url: str
    cache_prefix: str
    flag_redis_prefix: str
    admin_token: str
    extra_latency_ms: float
    error_rate: float
    errors_after: int
    cache_ttl: int
    maintenance_file: str = ""
    heartbeat_worker: bool = False
    flags: dict = field(default_factory=dict)


def load():
    env_file = os.environ.get("APP_ENV_FILE", ".env")
    file_values = parse_env_file(env_file)
    merged = dict(VARIANT_DEFAULTS.get(_release.VARIANT, {}))
    merged.update(file_values)
    # The process environment wins over the file, as with docker/systemd overrides.
    merged.update(os.environ)
    flags = {k: v for k, v in file_values.items() if k.startswith("ENABLE_") or k.startswith("SIMULATE_")}
    return Settings(
        version=_release.VERSION,
        variant=_release.VARIANT,
        database_url=merged.get("DATABASE_URL", ""),
        redis_url=merged.get("REDIS_URL", ""),
        cache_prefix=merged.get("CACHE_PREFIX", "app_"),
        flag_redis_prefix=merged.get("FLAG_REDIS_PREFIX", "flags:"),
        admin_token=merged.get("ADMIN_TOKEN", ""),
        extra_latency_ms=float(merged.get("APP_EXTRA_LATENCY_MS", "0") or 0),
        error_rate=float(merged.get("SIMULATE_ERROR_RATE", "0") or 0),
        errors_after=int(merged.get("SIMULATE_ERRORS_AFTER", "0") or 0),
        cache_ttl=int(merged.get("CACHE_TTL_SECONDS", "300") or 300),
        # Present file = maintenance mode (checked per request, so no restart is needed).
        maintenance_file=merged.get("MAINTENANCE_FILE", ""),
        heartbeat_worker=truthy(merged.get("APP_HEARTBEAT_WORKER", "0")),
        flags=flags,
    )
