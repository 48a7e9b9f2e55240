# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the preflight_check module: judge measured facts, render the report.

Every function here takes facts the module measured (a CPU count, free megabytes, the
values of an env file, a file's mode, the tables a database has, a certificate's end
date) and returns check results; nothing here does I/O. A check result is a dict
``{name, status, detail}`` with status ``ok`` | ``warn`` | ``fail`` | ``skip``. The
module runs every check it was asked for and reports all of them, so one pass lists
every problem instead of stopping at the first.

Details never contain the value of an environment variable (it may be a secret); they
name the variable and the rule it breaks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

OK = "ok"
WARN = "warn"
FAIL = "fail"
SKIP = "skip"
STATUSES = (OK, WARN, FAIL, SKIP)

DEFAULT_PLACEHOLDERS = ("<CHANGE_IN_PRODUCTION>", "changeme", "change_me", "your_secure_password",
                        "replace_me")

# The widest mode a secret file may have: read/write for its owner only.
SECRET_MODE = 0o600


def result(name, status, detail):
    """One check result; ``status`` must be one of STATUSES."""
    if status not in STATUSES:
        raise ValueError("unknown status %r" % status)
    return {"name": name, "status": status, "detail": detail}


def check_minimum(name, value, minimum=None, recommended=None, unit=""):
    """Compare a measured quantity with a minimum (fail below) and a recommendation (warn below).

    >>> check_minimum("cpu_count", 2, minimum=2, recommended=4)["status"]
    'warn'
    """
    suffix = (" " + unit) if unit else ""
    shown = "%s%s" % (_number(value), suffix)
    if minimum is not None and value < minimum:
        return result(name, FAIL, "%s < minimum %s%s" % (shown, _number(minimum), suffix))
    if recommended is not None and value < recommended:
        return result(name, WARN, "%s < recommended %s%s" % (shown, _number(recommended), suffix))
    bounds = []
    if minimum is not None:
        bounds.append("minimum %s%s" % (_number(minimum), suffix))
    if recommended is not None:
        bounds.append("recommended %s%s" % (_number(recommended), suffix))
    return result(name, OK, "%s (%s)" % (shown, ", ".join(bounds)) if bounds else shown)


def _number(value):
    """Integers without a decimal point, other numbers with one decimal."""
    if isinstance(value, float) and not value.is_integer():
        return "%.1f" % value
    return "%d" % value


def check_disk(path, total_mb, free_mb, min_free_mb=None, max_used_percent=None):
    """Judge the file system holding ``path``: free space and used percentage."""
    name = "disk %s" % path
    used_percent = 100.0 * (total_mb - free_mb) / total_mb if total_mb else 0.0
    shown = "%d MB free, %.1f%% used" % (free_mb, used_percent)
    problems = []
    if min_free_mb is not None and free_mb < min_free_mb:
        problems.append("%d MB free < minimum %d MB" % (free_mb, min_free_mb))
    if max_used_percent is not None and used_percent > max_used_percent:
        problems.append("%.1f%% used > maximum %s%%" % (used_percent, _number(max_used_percent)))
    if problems:
        return result(name, FAIL, "; ".join(problems))
    return result(name, OK, shown)


def check_binary(name, path):
    """A program that must be on PATH; ``path`` is where it was found or None."""
    if path:
        return result("binary %s" % name, OK, path)
    return result("binary %s" % name, FAIL, "%s not found on PATH" % name)


def is_placeholder(value, placeholders=DEFAULT_PLACEHOLDERS):
    """True when ``value`` is empty or contains one of ``placeholders`` (case-insensitive)."""
    text = (value or "").strip()
    if not text:
        return True
    low = text.lower()
    return any(p and p.lower() in low for p in placeholders)


def env_text(value):
    """The text an app would read for a value given as data (booleans as true/false, None as '')."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "%s" % value


def _norm(value):
    """Env values compared case-insensitively; YAML booleans as the words apps read."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return ("%s" % value).strip().lower()


def check_env(env_file, values, required=(), placeholders=DEFAULT_PLACEHOLDERS,
              expected=None, forbidden=None):
    """Judge the variables of an env file; ``values`` is name -> value as the app sees them.

    - ``required``: each must be assigned a value that is not empty and not a placeholder;
    - ``expected``: name -> the value it must have (e.g. ``APP_ENV: production``);
    - ``forbidden``: name -> values it must not have (e.g. ``DEBUG: [true, 1, yes]`` in prod).

    One result per variable named anywhere, so the table shows each variable's verdict
    with every rule it breaks. ``values`` None means the file could not be read.
    """
    expected = expected or {}
    forbidden = forbidden or {}
    names = []
    for name in list(required) + list(expected) + list(forbidden):
        if name not in names:
            names.append(name)
    results = []
    for name in names:
        check_name = "env %s" % name
        if values is None:
            results.append(result(check_name, SKIP, "%s could not be read" % env_file))
            continue
        present = name in values
        value = values.get(name)
        problems = []
        if name in required:
            if not present:
                problems.append("missing from %s" % env_file)
            elif not (value or "").strip():
                problems.append("empty")
            elif is_placeholder(value, placeholders):
                problems.append("still a placeholder (%s)" % _which_placeholder(value, placeholders))
        if name in expected and present and _norm(value) != _norm(expected[name]):
            problems.append("must be %s" % _norm(expected[name]))
        elif name in expected and not present and name not in required:
            problems.append("missing from %s (must be %s)" % (env_file, _norm(expected[name])))
        bad = forbidden.get(name)
        if bad is not None and present:
            bad_values = bad if isinstance(bad, (list, tuple)) else [bad]
            if _norm(value) in [_norm(v) for v in bad_values]:
                problems.append("must not be %s" % _norm(value))
        if problems:
            results.append(result(check_name, FAIL, "; ".join(problems)))
        else:
            results.append(result(check_name, OK, "set" if present else "absent (allowed)"))
    return results


def _which_placeholder(value, placeholders):
    low = (value or "").lower()
    for p in placeholders:
        if p and p.lower() in low:
            return p
    return "empty"


def check_secret_file(path, mode=None, owner=None, expected_owner=None, exists=True):
    """A file holding secrets: must exist, have no group/other permission bits, right owner."""
    name = "file %s" % path
    if not exists:
        return result(name, FAIL, "missing")
    problems = []
    perms = mode & 0o7777
    if perms & ~SECRET_MODE:
        problems.append("mode %04o is wider than %04o (run chmod 600)" % (perms, SECRET_MODE))
    if expected_owner and owner != expected_owner:
        problems.append("owner %s, expected %s" % (owner, expected_owner))
    if problems:
        return result(name, FAIL, "; ".join(problems))
    return result(name, OK, "mode %04o, owner %s" % (perms, owner))


def split_qualified(name, default_schema="public"):
    """``schema.name`` -> (schema, name); a bare name is in ``default_schema``."""
    if "." in name:
        schema, bare = name.split(".", 1)
        return schema, bare
    return default_schema, name


def check_present(kind, expected, found, default_schema="public"):
    """One result per expected table or index name.

    ``found`` is a collection of (schema, name) pairs read from the catalog; an expected
    name may be qualified (``audit.logs``) or bare (looked up in ``default_schema``).
    """
    have = set((s, n) for s, n in found)
    results = []
    for name in expected:
        key = split_qualified(name, default_schema)
        check_name = "%s %s" % (kind, name)
        if key in have:
            results.append(result(check_name, OK, "present in schema %s" % key[0]))
        else:
            results.append(result(check_name, FAIL, "missing from schema %s" % key[0]))
    return results


def check_extensions(expected, available, db):
    """One result per expected PostgreSQL extension (e.g. timescaledb, pg_stat_statements).

    ``available`` maps each extension the server offers (pg_available_extensions) to its
    version installed in ``db``, or None when it is available but not installed there.
    """
    results = []
    for name in expected:
        check_name = "extension %s" % name
        if name not in available:
            results.append(result(check_name, FAIL, "not available on the server (package not installed)"))
        elif available[name] is None:
            results.append(result(check_name, FAIL, "available but not installed in %s "
                                  "(CREATE EXTENSION %s)" % (db, name)))
        else:
            results.append(result(check_name, OK, "installed, version %s" % available[name]))
    return results


def skip_all(kind, names, reason):
    """Skipped results for checks that could not run (e.g. the database is unreachable)."""
    return [result("%s %s" % (kind, n), SKIP, reason) for n in names]


_OPENSSL_DATE = re.compile(r"notAfter=(?P<date>.+?)\s*$", re.MULTILINE)


def parse_openssl_enddate(text):
    """Parse ``openssl x509 -enddate`` output (``notAfter=Nov 26 13:00:00 2026 GMT``) to UTC.

    Returns a naive datetime in UTC; raises ValueError when the text has no such line.
    """
    match = _OPENSSL_DATE.search(text or "")
    if not match:
        raise ValueError("no notAfter= line in %r" % (text or "")[:200])
    date = re.sub(r"\s+", " ", match.group("date").strip())
    if date.endswith(" GMT"):
        date = date[:-4]
    return datetime.datetime.strptime(date, "%b %d %H:%M:%S %Y")


def days_left(not_after, now):
    """Whole and fractional days from ``now`` to ``not_after`` (both naive UTC); negative when expired."""
    return (not_after - now).total_seconds() / 86400.0


def check_cert(target, not_after, now, min_days=14, warn_days=None):
    """Judge a certificate's remaining validity: fail under ``min_days``, warn under ``warn_days``."""
    name = "tls %s" % target
    left = days_left(not_after, now)
    when = not_after.strftime("%Y-%m-%d %H:%M UTC")
    if left < 0:
        return result(name, FAIL, "expired %s (%.1f days ago)" % (when, -left))
    shown = "%.1f days left (until %s)" % (left, when)
    if left < min_days:
        return result(name, FAIL, "%s < minimum %s days" % (shown, _number(min_days)))
    if warn_days is not None and left < warn_days:
        return result(name, WARN, "%s < warning %s days" % (shown, _number(warn_days)))
    return result(name, OK, shown)


def parse_endpoint(value, default_host="127.0.0.1"):
    """``8080`` / ``"8080"`` / ``"db.example:5432"`` / ``"[::1]:80"`` -> (host, port).

    Raises ValueError naming the value when it is not an endpoint with a port 1..65535.
    """
    text = ("%s" % value).strip()
    host = default_host
    port_text = text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1:end + 2] != ":":
            raise ValueError("%r is not [ipv6]:port" % text)
        host, port_text = text[1:end], text[end + 2:]
    elif ":" in text:
        host, port_text = text.rsplit(":", 1)
        if not host:
            raise ValueError("%r has an empty host" % text)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("%r does not end with a port between 1 and 65535" % text)
    return host, int(port_text)


def check_port_free(host, port, error=None):
    """A port the app will listen on must be free; ``error`` is the bind error text, if any."""
    name = "port %s:%d free" % (host, port)
    if error:
        return result(name, FAIL, "in use (%s)" % error)
    return result(name, OK, "bind succeeded")


def check_port_listening(host, port, error=None):
    """A port something must already listen on (a dependency); ``error`` is the connect error."""
    name = "port %s:%d listening" % (host, port)
    if error:
        return result(name, FAIL, "nothing accepts connections (%s)" % error)
    return result(name, OK, "accepts connections")


def failed_checks(checks):
    """The results whose status is fail, in order."""
    return [c for c in checks if c["status"] == FAIL]


def counts(checks):
    """Number of results per status (every status present, zero included)."""
    out = dict((s, 0) for s in STATUSES)
    for c in checks:
        out[c["status"]] += 1
    return out


def render_table(checks):
    """A fixed-width text table: CHECK | STATUS | DETAIL, then a summary line."""
    header = ("CHECK", "STATUS", "DETAIL")
    rows = [(c["name"], c["status"].upper(), c["detail"]) for c in checks]
    width0 = max([len(header[0])] + [len(r[0]) for r in rows])
    width1 = max([len(header[1])] + [len(r[1]) for r in rows])
    lines = ["%-*s  %-*s  %s" % (width0, header[0], width1, header[1], header[2]),
             "%s  %s  %s" % ("-" * width0, "-" * width1, "-" * 6)]
    for row in rows:
        lines.append(("%-*s  %-*s  %s" % (width0, row[0], width1, row[1], row[2])).rstrip())
    lines.append(summary_line(checks))
    return "\n".join(lines)


def summary_line(checks):
    """``17 checks: 14 ok, 1 warn, 2 fail, 0 skip``."""
    n = counts(checks)
    return "%d checks: %s" % (len(checks), ", ".join("%d %s" % (n[s], s) for s in STATUSES))


def failure_message(checks):
    """One line naming every failed check and why, or '' when nothing failed."""
    failed = failed_checks(checks)
    if not failed:
        return ""
    return "preflight: %d of %d checks failed: %s" % (
        len(failed), len(checks), "; ".join("%s: %s" % (c["name"], c["detail"]) for c in failed))
