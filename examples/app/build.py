#!/usr/bin/env python3
"""Build a release artifact of the sample app: a reproducible tarball per version/variant.

    python examples/app/build.py --version 1.1.0 --variant good --out dist/

Writes `<out>/sampleapp-<version>.tar.gz` and `<out>/sampleapp-<version>.tar.gz.sha256`
and prints a JSON line {path, sha256, version, variant, revisions}. The same inputs give
the same bytes (fixed mtimes, sorted entries), so a deploy can reuse a release it built.

Variants (what each release does, for the gates to catch):
  base           revisions 0001-0002 (six runbook-002 tables, runbook-003/004 tables, idx_po_*)
  good           + 0003 (a backward-compatible column)
  crash          + 0003; exits at start
  slow           + 0003; +600 ms per request (APP_EXTRA_LATENCY_MS)
  errors         + 0003, 0004_audit; 50% 5xx after its first 150 requests (SIMULATE_ERROR_RATE,
                 SIMULATE_ERRORS_AFTER): passes a short direct gate, fails under traffic
  bad-migration  + 0003, 0004_bad (fails half-way; the database stays at 0003)
  leaky          + 0003, 0004_leaky (its downgrade leaves po_cache behind); exits at start
  worker         + 0003; forks a background worker that writes a row per second into
                 worker_heartbeats, creating the table when missing (APP_HEARTBEAT_WORKER)
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "base": [],
    "good": ["0003_po_notes.py"],
    "crash": ["0003_po_notes.py"],
    "slow": ["0003_po_notes.py"],
    "errors": ["0003_po_notes.py", "0004_audit_events.py"],
    "bad-migration": ["0003_po_notes.py", "0004_bad_shipments.py"],
    "leaky": ["0003_po_notes.py", "0004_leaky_cache.py"],
    "worker": ["0003_po_notes.py"],
}
VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")


def release_files(version, variant):
    """(archive name, bytes) of every file in the release, sorted by name."""
    files = {}
    for path in sorted((HERE / "sampleapp").glob("*.py")):
        files["sampleapp/" + path.name] = path.read_bytes()
    files["sampleapp/_release.py"] = (
        "# Written by build.py\nVERSION = %r\nVARIANT = %r\n" % (version, variant)).encode()
    for name in ("alembic.ini", "requirements.txt"):
        files[name] = (HERE / name).read_bytes()
    for name in ("env.py", "script.py.mako"):
        files["migrations/" + name] = (HERE / "migrations" / name).read_bytes()
    for path in sorted((HERE / "migrations" / "versions").glob("*.py")):
        files["migrations/versions/" + path.name] = path.read_bytes()
    for name in VARIANTS[variant]:
        files["migrations/versions/" + name] = (HERE / "migrations" / "extra" / name).read_bytes()
    files["RELEASE.json"] = (json.dumps({"name": "sampleapp", "version": version,
                                         "variant": variant}, sort_keys=True) + "\n").encode()
    return sorted(files.items())


def build(version, variant, out_dir):
    if not VERSION_RE.match(version):
        raise SystemExit("build.py: --version %r is not a valid version string" % version)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in release_files(version, variant):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    data = packed.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    target = out_dir / ("sampleapp-%s.tar.gz" % version)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    (out_dir / (target.name + ".sha256")).write_text("%s  %s\n" % (digest, target.name))
    revisions = sorted(name for name, data in release_files(version, variant)
                       if name.startswith("migrations/versions/"))
    return {"path": str(target), "sha256": digest, "version": version, "variant": variant,
            "revisions": [Path(r).stem for r in revisions]}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build a sample app release artifact.")
    parser.add_argument("--version", required=True)
    parser.add_argument("--variant", default="good", choices=sorted(VARIANTS))
    parser.add_argument("--out", default=str(HERE / "dist"))
    args = parser.parse_args(argv)
    print(json.dumps(build(args.version, args.variant, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
