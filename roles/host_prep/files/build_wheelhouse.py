# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build, on the controller, a wheelhouse for a managed host's interpreter (host_prep).

    build_wheelhouse.py --dest DIR --requirement FILE [--extra REQ ...] --python-version 3.11.2
        --machine x86_64 --libc glibc --libc-version 2.36 [--index-url URL] [--pip-arg ARG ...]

Prints one JSON line: {"changed", "path" (the wheelhouse), "tarball" (the same as one .tar.gz,
for one transfer), "wheels"}. A wheelhouse is built once per requirement set and target
(DIR/<target>-<hash>): a second call finds it complete and changes nothing.

Binary wheels only, for the host's interpreter, machine and C library. pip evaluates the
requirements' environment markers for the interpreter running it, not for the target
(``async-timeout; python_full_version < "3.11.3"`` is skipped on a newer controller and then
missing on Debian 12's 3.11.2), so the wheels' own requirements are read again here with the
target's markers and what is missing is downloaded too, until nothing is.
Written to a temporary directory and renamed when complete, under a lock: never half-written.
"""

from __future__ import absolute_import, division, print_function

import argparse
import email.parser
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

MAX_ROUNDS = 10
COMPLETE = ".complete.json"


def platforms(machine, libc, libc_version):
    """pip --platform tags a host with this machine and C library takes, newest first."""
    major, minor = (int(part) for part in (libc_version or "0.0").split(".")[:2])
    if libc == "glibc":
        tags = ["manylinux_%d_%d_%s" % (major, m, machine) for m in range(minor, 4, -1)]
        legacy = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}
        tags += [name + "_" + machine for name, floor in sorted(legacy.items(), key=lambda i: i[1], reverse=True)
                 if (major, minor) >= floor]
    elif libc == "musl":
        tags = ["musllinux_%d_%d_%s" % (major, m, machine) for m in range(minor, -1, -1)]
    else:
        raise SystemExit("unknown C library %r: give --libc glibc or musl" % libc)
    return tags + ["linux_" + machine]


def target_environment(python_version, machine):
    """The environment markers of the target interpreter (CPython on Linux)."""
    env = default_environment()
    env.update(python_version=".".join(python_version.split(".")[:2]), python_full_version=python_version,
               implementation_version=python_version, implementation_name="cpython",
               platform_python_implementation="CPython", platform_machine=machine,
               sys_platform="linux", platform_system="Linux", os_name="posix")
    return env


def wheels_in(path):
    """{canonical name: version} of the wheels in `path`."""
    found = {}
    for name in os.listdir(path):
        if name.endswith(".whl"):
            dist, version, _build, _tags = parse_wheel_filename(name)
            found[canonicalize_name(dist)] = (version, name)
    return found


def requires(wheel_path):
    """The Requires-Dist lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel_path) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = email.parser.Parser().parsestr(archive.read(meta).decode("utf-8"))
    return message.get_all("Requires-Dist") or []


def missing(path, environment):
    """Requirements of the wheels in `path` that hold on the target and that no wheel there meets."""
    have = wheels_in(path)
    wanted = set()
    for version, filename in have.values():
        for line in requires(os.path.join(path, filename)):
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(dict(environment, extra="")):
                continue
            present = have.get(canonicalize_name(req.name))
            if present is None or not req.specifier.contains(present[0], prereleases=True):
                req.marker = None
                wanted.add(str(req))
    return sorted(wanted)


def pip_download(args, dest, requirements, files=(), no_deps=False):
    """pip download binary wheels for the target into `dest`."""
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
            "--only-binary", ":all:", "--dest", dest, "--python-version", args.python_version,
            "--implementation", "cp", "--abi", "cp" + "".join(args.python_version.split(".")[:2])]
    for tag in platforms(args.machine, args.libc, args.libc_version):
        argv += ["--platform", tag]
    if args.index_url:
        argv += ["--index-url", args.index_url]
    if no_deps:
        argv.append("--no-deps")
    argv += list(args.pip_arg or [])
    for path in files:
        argv += ["--requirement", path]
    argv += list(requirements)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("pip download failed (rc=%d): %s" % (proc.returncode, proc.stdout.strip()[-3000:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", required=True)
    parser.add_argument("--requirement", required=True)
    parser.add_argument("--extra", action="append", default=[])
    parser.add_argument("--python-version", required=True)
    parser.add_argument("--machine", required=True)
    parser.add_argument("--libc", default="glibc")
    parser.add_argument("--libc-version", default="2.17")
    parser.add_argument("--index-url", default="")
    parser.add_argument("--pip-arg", action="append", default=[])
    args = parser.parse_args()

    with open(args.requirement) as fh:
        text = fh.read() + "".join(line + "\n" for line in args.extra)
    target = "cp%s-%s-%s%s" % (args.python_version, args.machine, args.libc, args.libc_version)
    digest = hashlib.sha256((target + "\n" + text + "\n" + args.index_url).encode("utf-8")).hexdigest()[:12]
    os.makedirs(args.dest, mode=0o700, exist_ok=True)
    path = os.path.join(args.dest, "%s-%s" % (target, digest))
    tarball = path + ".tar.gz"
    changed = False
    with open(os.path.join(args.dest, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two hosts of the same target build it once
        if not (os.path.exists(os.path.join(path, COMPLETE)) and os.path.exists(tarball)):
            changed = True
            work = tempfile.mkdtemp(prefix=".build-", dir=args.dest)
            try:
                requirements = os.path.join(work, "requirements.txt")
                with open(requirements, "w") as fh:
                    fh.write(text)
                wheels = os.path.join(work, "wheels")
                os.mkdir(wheels)
                pip_download(args, wheels, [], files=[requirements])
                environment = target_environment(args.python_version, args.machine)
                for _round in range(MAX_ROUNDS):
                    need = missing(wheels, environment)
                    if not need:
                        break
                    pip_download(args, wheels, need, no_deps=True)
                else:
                    raise SystemExit("the target's requirements did not settle after %d rounds: %s"
                                     % (MAX_ROUNDS, ", ".join(missing(wheels, environment))))
                with open(os.path.join(wheels, COMPLETE), "w") as fh:
                    json.dump({"target": target, "requirements": text}, fh)
                partial = os.path.join(work, "wheels.tar.gz")
                with tarfile.open(partial, "w:gz") as archive:
                    for name in sorted(os.listdir(wheels)):
                        archive.add(os.path.join(wheels, name), arcname=name)
                shutil.rmtree(path, ignore_errors=True)
                os.rename(wheels, path)
                os.rename(partial, tarball)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"changed": changed, "path": path, "tarball": tarball,
                      "wheels": sorted(n for n in os.listdir(path) if n.endswith(".whl"))}))


if __name__ == "__main__":
    main()
