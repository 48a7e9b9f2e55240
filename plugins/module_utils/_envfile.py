# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse and edit environment (.env) files without losing anything the user wrote.

Pure logic, no I/O: `parse()` turns the text of a file into lines that keep every byte
(comments, blank lines, order, `export ` prefixes, quoting, inline comments, CRLF or LF
line ends, a missing final newline, a UTF-8 byte order mark); `apply_flags()` computes
the edits for a dict of flags; `render()` turns the lines back into text.

What value the application sees follows python-dotenv, which agrees with shell and
systemd ``EnvironmentFile`` for the files people write by hand:

- ``NAME=value``; optional ``export `` before the name; spaces around ``=`` allowed.
- unquoted values are stripped; an inline comment starts at whitespace followed by ``#``
  (``A=b#c`` is ``b#c``, ``A=b #c`` is ``b``).
- ``'single'`` quotes: literal except ``\\\\`` and ``\\'``.
- ``"double"`` quotes: the escapes ``\\\\ \\' \\" \\a \\b \\f \\n \\r \\t \\v``; a quoted
  value may span lines.
- where a name is assigned more than once, the last assignment wins.
- ``${VAR}`` interpolation is not performed: values are reported as written.

Values are written unquoted when they are made only of ``[A-Za-z0-9_./:,@%+=-]`` and
non-ASCII characters other than spaces,
otherwise in single quotes (read literally by shell, systemd and python-dotenv), or, when
the value itself holds a single quote or a backslash, in double quotes with ``\\`` and
``"`` escaped. A replaced line keeps its own quoting style when the new value can be
written in it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
# ASCII that no reader treats specially, plus any non-ASCII character that is not a space
SAFE_UNQUOTED_RE = re.compile(r"\A(?:[A-Za-z0-9_./:,@%+=-]|[^\x00-\x7f\s])+\Z")
BOM = u"\ufeff"

_EOL_RE = re.compile(r"\r\n|\n|\r")
# lead (indent + optional export), name, separator (spaces = spaces), rest of the line
_ASSIGN_RE = re.compile(
    r"\A(?P<lead>[ \t]*(?:export[ \t]+)?)(?P<name>[^=#\s'\"]+)(?P<sep>[ \t]*=[ \t]*)(?P<rest>.*)\Z",
    re.DOTALL)
_TRAIL_RE = re.compile(r"\A(?P<trail>[ \t]*(?:#.*)?)\Z", re.DOTALL)
_DQ_ESCAPES = {u"\\": u"\\", u"'": u"'", u'"': u'"', u"a": u"\a", u"b": u"\b", u"f": u"\f",
               u"n": u"\n", u"r": u"\r", u"t": u"\t", u"v": u"\v"}
_SQ_ESCAPES = {u"\\": u"\\", u"'": u"'"}

QUOTE_NONE = u""
QUOTE_SINGLE = u"'"
QUOTE_DOUBLE = u'"'


class Line(object):
    """One logical line of an env file (a quoted value may span several physical lines).

    `raw` is the exact text without the final line end, `eol` the line end (``\\r\\n``,
    ``\\n``, ``\\r`` or empty for a last line without newline). For an assignment, `name`,
    `value` (what the app sees), `quote` (``''``, ``"'"`` or ``'"'``), `lead` (indent and
    ``export ``), `sep` (the ``=`` with its spaces) and `trail` (spaces and inline comment
    after the value) are set; for anything else (comment, blank, unparsable) `name` is None.
    `lineno` is the 1-based number of its first physical line in the parsed file.
    """

    __slots__ = ("raw", "eol", "name", "value", "quote", "lead", "sep", "trail", "lineno")

    def __init__(self, raw, eol, name=None, value=None, quote=QUOTE_NONE, lead=u"", sep=u"=",
                 trail=u"", lineno=None):
        self.raw = raw
        self.eol = eol
        self.name = name
        self.value = value
        self.quote = quote
        self.lead = lead
        self.sep = sep
        self.trail = trail
        self.lineno = lineno

    @property
    def is_assignment(self):
        """True when the line assigns a value to a name."""
        return self.name is not None

    def text(self):
        """The line as written in the file, line end included."""
        return self.raw + self.eol

    def __repr__(self):
        return "Line(%r, %r, name=%r, value=%r)" % (self.raw, self.eol, self.name, self.value)


class EnvDocument(object):
    """A parsed env file: `lines`, a leading byte order mark, and whether it ended with a
    newline (kept as is when the file is rendered again)."""

    def __init__(self, lines, bom=False, final_newline=True):
        self.lines = lines
        self.bom = bom
        self.final_newline = final_newline

    def default_eol(self):
        """The line end used for new lines: the file's first one, LF for a file without any."""
        for line in self.lines:
            if line.eol:
                return line.eol
        return u"\n"

    def copy(self):
        """A shallow copy whose line list can be edited without touching this one."""
        return EnvDocument(list(self.lines), bom=self.bom, final_newline=self.final_newline)


def _unescape(text, table):
    out = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == u"\\" and i + 1 < len(text) and text[i + 1] in table:
            out.append(table[text[i + 1]])
            i += 2
        else:
            out.append(char)
            i += 1
    return u"".join(out)


def _find_closing_quote(text, start, quote):
    """Index of the quote closing a value opened at `start - 1`, or -1 (backslash escapes)."""
    i = start
    while i < len(text):
        char = text[i]
        if char == u"\\" and i + 1 < len(text):
            i += 2
            continue
        if char == quote:
            return i
        i += 1
    return -1


def _split_physical(text):
    """[(content, eol)] for each physical line; the last has eol '' when the text does not end
    with a line end. Splits on CRLF, LF and CR only (not on the unicode separators that
    str.splitlines() also honours)."""
    out = []
    pos = 0
    for match in _EOL_RE.finditer(text):
        out.append((text[pos:match.start()], match.group(0)))
        pos = match.end()
    if pos < len(text):
        out.append((text[pos:], u""))
    return out


def _parse_assignment(raw):
    """(lead, name, sep, value, quote, trail) for an assignment, None when `raw` is not one
    python-dotenv would accept, "open" when a quote is not closed within `raw`."""
    match = _ASSIGN_RE.match(raw)
    if not match:
        return None
    rest = match.group("rest")
    if rest[:1] in (QUOTE_SINGLE, QUOTE_DOUBLE):
        quote = rest[0]
        end = _find_closing_quote(rest, 1, quote)
        if end < 0:
            return "open"
        trail = rest[end + 1:]
        if not _TRAIL_RE.match(trail):
            return None
        value = _unescape(rest[1:end], _DQ_ESCAPES if quote == QUOTE_DOUBLE else _SQ_ESCAPES)
    else:
        quote = QUOTE_NONE
        comment = re.search(r"[ \t]+#", rest)
        body = rest[:comment.start()] if comment else rest
        value = body.rstrip(u" \t")
        trail = rest[len(value):]
    return (match.group("lead"), match.group("name"), match.group("sep"), value, quote, trail)


def parse(text):
    """Parse the text of an env file into an EnvDocument that renders back to `text` exactly."""
    bom = text.startswith(BOM)
    if bom:
        text = text[1:]
    physical = _split_physical(text)
    final_newline = not physical or physical[-1][1] != u""
    lines = []
    i = 0
    while i < len(physical):
        raw, eol = physical[i]
        parsed = _parse_assignment(raw)
        consumed = 1
        if parsed == "open":
            # A quoted value that spans lines: join physical lines until the quote closes.
            parsed = None
            joined = raw
            for j in range(i + 1, len(physical)):
                joined = joined + physical[j - 1][1] + physical[j][0]
                candidate = _parse_assignment(joined)
                if candidate == "open":
                    continue
                if candidate is not None:
                    parsed, raw, eol, consumed = candidate, joined, physical[j][1], j - i + 1
                break
        if parsed:
            lead, name, sep, value, quote, trail = parsed
            lines.append(Line(raw, eol, name=name, value=value, quote=quote, lead=lead, sep=sep,
                              trail=trail, lineno=i + 1))
        else:
            lines.append(Line(raw, eol, lineno=i + 1))
        i += consumed
    return EnvDocument(lines, bom=bom, final_newline=final_newline)


def render(doc):
    """The text of an EnvDocument (inverse of parse())."""
    parts = [line.text() for line in doc.lines]
    if parts and not doc.final_newline:
        last = doc.lines[-1]
        parts[-1] = last.raw
    text = u"".join(parts)
    return (BOM + text) if doc.bom else text


def values(doc):
    """Dict name -> value as the application sees it (the last assignment of a name wins)."""
    seen = {}
    for line in doc.lines:
        if line.is_assignment:
            seen[line.name] = line.value
    return seen


def flag_to_text(name, value):
    """The text written for a flag value: booleans `true`/`false`, numbers as written, None
    stays None (remove). Raises ProdreadyError naming the flag for other types."""
    if value is None:
        return None
    if isinstance(value, bool):
        return u"true" if value else u"false"
    if isinstance(value, (int, float)):
        return u"%s" % (value,)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if not isinstance(value, str):
        raise ProdreadyError("flags: the value of flag %s is a %s; a flag value must be a "
                             "string, a number, a boolean or null"
                             % (name, type(value).__name__), flag=name)
    return value


def validate_flags(flags, check_values=True):
    """Check names and values for an env file; return a dict name -> text (None = remove).

    Names must match ``[A-Za-z_][A-Za-z0-9_]*``; values must not contain a line break or a
    NUL character. The error names the flag.
    """
    out = {}
    for name in flags:
        if not isinstance(name, str):
            raise ProdreadyError("flags: flag name %r is not a string" % (name,), flag=name)
        if not NAME_RE.match(name):
            raise ProdreadyError("flags: flag name %r is not a valid environment variable name "
                                 "(expected [A-Za-z_][A-Za-z0-9_]*)" % (name,), flag=name)
        text = flag_to_text(name, flags[name]) if check_values else None
        if text is not None and (u"\n" in text or u"\r" in text or u"\x00" in text):
            raise ProdreadyError("flags: the value of flag %s contains a line break or a NUL "
                                 "character, which an env file cannot hold on one line" % name,
                                 flag=name)
        out[name] = text
    return out


def can_write(value, quote, keep_style=False):
    """True when `value` reads back unchanged when written with the given quote style.

    Unquoted, a value must be made of SAFE_UNQUOTED_RE characters; with `keep_style` (an
    unquoted line being replaced) a ``#`` inside the value is accepted too, as the user's
    own ``A=a#b`` was: shell and python-dotenv start a comment only at ``#`` after a space.
    """
    if quote == QUOTE_NONE:
        if value == u"" or SAFE_UNQUOTED_RE.match(value):
            return True
        return bool(keep_style and not value.startswith(u"#") and
                    SAFE_UNQUOTED_RE.match(value.replace(u"#", u"_")))
    if quote == QUOTE_SINGLE:
        return u"'" not in value and u"\\" not in value
    return True


# Control characters a double-quoted value is written with as escapes (read back by
# _unescape), so that a value read from `A="a\tb"` is written back as the same bytes.
_DQ_WRITE_ESCAPES = ((u"\t", u"\\t"), (u"\r", u"\\r"), (u"\a", u"\\a"), (u"\b", u"\\b"),
                     (u"\f", u"\\f"), (u"\v", u"\\v"))


def choose_quote(value, preferred=None):
    """The quote style to write `value` with: `preferred` (the style of the line it
    replaces) when it can hold the value, else the plainest style that can (none, single,
    double)."""
    if preferred is not None and can_write(value, preferred, keep_style=True):
        return preferred
    for quote in (QUOTE_NONE, QUOTE_SINGLE, QUOTE_DOUBLE):
        if can_write(value, quote):
            return quote
    return QUOTE_DOUBLE


def quote_value(value, quote):
    """`value` written in the quote style `quote` (see can_write())."""
    if quote == QUOTE_NONE:
        return value
    if quote == QUOTE_SINGLE:
        return u"'" + value + u"'"
    escaped = value.replace(u"\\", u"\\\\").replace(u'"', u'\\"')
    for char, escape in _DQ_WRITE_ESCAPES:
        escaped = escaped.replace(char, escape)
    return u'"' + escaped + u'"'


def _assignment_line(template, name, value, eol):
    """A new Line for `name=value`, keeping lead/sep/trail/quote style of `template`."""
    if template is None:
        lead, sep, trail, quote = u"", u"=", u"", choose_quote(value)
    else:
        lead, sep, trail = template.lead, template.sep, template.trail
        quote = choose_quote(value, template.quote)
        if quote == QUOTE_NONE and value == u"" and trail.lstrip(u" \t").startswith(u"#"):
            # `A= # note` reads as "# note" in python-dotenv: quote the empty value
            quote = QUOTE_SINGLE
    raw = lead + name + sep + quote_value(value, quote) + trail
    return Line(raw, eol, name=name, value=value, quote=quote, lead=lead, sep=sep, trail=trail)


class EditResult(object):
    """What apply_flags() did.

    - `doc`: the edited EnvDocument (the input is not modified)
    - `previous`: name -> value the app saw before (None where absent), for every flag given
    - `current`: name -> value after the edit (None where absent)
    - `changed_flags`: names whose line(s) changed, in the order given
    - `removed_duplicates`: [{name, line, value}] later assignments that were dropped
    - `changes`: [(lineno or None, before_text or None, after_text or None)] in file order,
      for a diff that shows only the lines that changed
    """

    def __init__(self, doc, previous, current, changed_flags, removed_duplicates, changes):
        self.doc = doc
        self.previous = previous
        self.current = current
        self.changed_flags = changed_flags
        self.removed_duplicates = removed_duplicates
        self.changes = changes

    @property
    def changed(self):
        """True when the rendered text differs from the input."""
        return bool(self.changes)


def apply_flags(doc, flags, state="present"):
    """Edit `doc` for `flags` (name -> text or None, see validate_flags()) and return an
    EditResult.

    state=present: a None value removes every assignment of the name; any other value
    replaces the first assignment (keeping its `export `, spacing, inline comment and, when
    possible, its quoting) and removes the later ones; a name not assigned yet is added at
    the end. state=absent: every name given is removed, whatever its value.
    A flag whose first assignment already holds the value and has no duplicates leaves the
    line untouched (byte for byte).
    """
    before = values(doc)
    out = doc.copy()
    eol = doc.default_eol()
    previous = dict((name, before.get(name)) for name in flags)
    changed_flags = []
    removed_duplicates = []
    changes = []
    appended = []

    for name in flags:
        target = None if state == "absent" else flags[name]
        positions = [i for i, line in enumerate(out.lines) if line.name == name]
        flag_changed = False
        if target is None:
            for i in positions:
                changes.append((out.lines[i].lineno, out.lines[i].text(), None))
                out.lines[i] = None
            flag_changed = bool(positions)
        elif positions:
            first = out.lines[positions[0]]
            if first.value != target:
                line_eol = first.eol or eol
                new = _assignment_line(first, name, target, line_eol)
                new.lineno = first.lineno
                changes.append((first.lineno, first.text(), new.text()))
                out.lines[positions[0]] = new
                flag_changed = True
            for i in positions[1:]:
                dup = out.lines[i]
                removed_duplicates.append({"name": name, "line": dup.lineno, "value": dup.value})
                changes.append((dup.lineno, dup.text(), None))
                out.lines[i] = None
                flag_changed = True
        else:
            appended.append(_assignment_line(None, name, target, eol))
            flag_changed = True
        out.lines = [line for line in out.lines if line is not None]
        if flag_changed:
            changed_flags.append(name)

    if appended:
        if out.lines and not out.final_newline and not out.lines[-1].eol:
            # the old last line had no newline; it needs one now that lines follow it
            last = out.lines[-1]
            out.lines[-1] = Line(last.raw, eol, name=last.name, value=last.value,
                                 quote=last.quote, lead=last.lead, sep=last.sep,
                                 trail=last.trail, lineno=last.lineno)
        for line in appended:
            changes.append((None, None, line.text()))
        out.lines.extend(appended)
    current = values(out)
    result_current = dict((name, current.get(name)) for name in flags)
    changes.sort(key=lambda change: (change[0] is None, change[0] or 0))
    if render(out) == render(doc):
        changes, changed_flags, removed_duplicates = [], [], []
        out = doc
    return EditResult(out, previous, result_current, changed_flags, removed_duplicates, changes)


def diff_texts(changes):
    """(before, after) texts made of only the changed lines, for Ansible's --diff output.

    Only the lines that changed are shown, so the rest of the file (which may hold secrets
    such as a database URL) never reaches the output.
    """
    before = []
    after = []
    for _lineno, old, new in changes:
        if old is not None:
            before.append(old.rstrip(u"\r\n") + u"\n")
        if new is not None:
            after.append(new.rstrip(u"\r\n") + u"\n")
    return u"".join(before), u"".join(after)
