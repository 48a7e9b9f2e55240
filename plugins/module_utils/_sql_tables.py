# -*- coding: utf-8 -*-
# Copyright: prodready.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tables a PostgreSQL script touches, read from its text (no I/O, no database).

alembic_migrate uses it on the offline SQL (``alembic upgrade --sql``) of the revisions it
applied, to know which tables need fresh planner statistics (``ANALYZE``).

A table is touched when a statement creates it (``CREATE [UNLOGGED] TABLE``, also ``AS``
and ``PARTITION OF``), alters it (``ALTER TABLE``), indexes it (``CREATE [UNIQUE] INDEX
[CONCURRENTLY] [IF NOT EXISTS] [name] ON [ONLY] tbl``) or writes rows to it (``INSERT
INTO``, ``UPDATE``, ``DELETE FROM``, ``MERGE INTO``, ``COPY ... FROM``), also in the
data-modifying parts of a ``WITH`` and in the body of a PL/pgSQL ``DO`` block. Statements
are read in order: ``DROP TABLE`` removes a table touched before it, ``ALTER TABLE ...
RENAME TO`` / ``SET SCHEMA`` carries it to its new name. Temporary tables are left out
(they are gone when the migration's session ends).

The script is split into statements the way psql splits it: on ``;`` outside parentheses,
string literals (``'...'``, ``E'...'``, ``$tag$...$tag$``), quoted identifiers and
comments (``--``, nested ``/* */``), and outside ``BEGIN ... END`` of SQL-standard function
bodies. Names are returned as PostgreSQL reads them: unquoted parts folded to lower case,
quoted parts kept as written, ``db.schema.table`` reduced to ``(schema, table)``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

WORD, IDENT, STRING, PUNCT, OTHER = "word", "ident", "string", "punct", "other"

_SPACE_RE = re.compile(r"\s+")
_WORD_RE = re.compile(r"[^\W\d][\w$]*")
_NUMBER_RE = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DOLLAR_TAG_RE = re.compile(r"\$(?:[^\W\d]\w*)?\$")
_PUNCT = "(),.;*"
_ASCII_UPPER = dict((ord(c), ord(c.lower())) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Words after which a PL/pgSQL statement may start, besides `;`.
_PLPGSQL_STARTERS = ("begin", "then", "else", "loop")


def fold(word):
    """An unquoted identifier as PostgreSQL stores it (ASCII letters lowered, others kept)."""
    return word.translate(_ASCII_UPPER)


def _quoted_end(sql, start, quote, backslash=False):
    """(content, index after the closing quote) of a literal opened at `start`; a doubled
    quote is one quote; an unterminated literal runs to the end of the text."""
    out = []
    i = start + 1
    while i < len(sql):
        ch = sql[i]
        if backslash and ch == "\\" and i + 1 < len(sql):
            out.append(sql[i + 1])
            i += 2
            continue
        if ch == quote:
            if sql.startswith(quote, i + 1):
                out.append(quote)
                i += 2
                continue
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    return "".join(out), len(sql)


def tokenize(sql):
    """The tokens of `sql` as (kind, value) pairs, comments and whitespace left out.

    Kinds: WORD (an unquoted identifier or keyword, folded), IDENT (a quoted identifier,
    unescaped), STRING (a literal's content), PUNCT (one of ``( ) , . ; *``), OTHER
    (numbers, operators, parameters). Never raises: an unterminated literal or comment
    runs to the end of the text.
    """
    tokens = []
    i, size = 0, len(sql)
    while i < size:
        ch = sql[i]
        space = _SPACE_RE.match(sql, i)
        if space:
            i = space.end()
            continue
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = size if end < 0 else end + 1
            continue
        if sql.startswith("/*", i):
            depth, i = 1, i + 2
            while i < size and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            continue
        if ch == "'":
            value, i = _quoted_end(sql, i, "'")
            tokens.append((STRING, value))
            continue
        if ch == '"':
            value, i = _quoted_end(sql, i, '"')
            tokens.append((IDENT, value))
            continue
        if ch == "$":
            tag = _DOLLAR_TAG_RE.match(sql, i)
            if tag:
                end = sql.find(tag.group(0), tag.end())
                end = size if end < 0 else end
                tokens.append((STRING, sql[tag.end():end]))
                i = min(size, end + len(tag.group(0)))
                continue
        word = _WORD_RE.match(sql, i)
        if word:
            text, i = word.group(0), word.end()
            lowered = text.lower()
            # E'..' takes backslash escapes; B'..', X'..', N'..' and U&'..' are plain literals.
            if lowered in ("e", "b", "x", "n") and sql.startswith("'", i):
                value, i = _quoted_end(sql, i, "'", backslash=lowered == "e")
                tokens.append((STRING, value))
            elif lowered == "u" and sql.startswith("&'", i):
                value, i = _quoted_end(sql, i + 1, "'")
                tokens.append((STRING, value))
            elif lowered == "u" and sql.startswith('&"', i):
                value, i = _quoted_end(sql, i + 1, '"')
                tokens.append((IDENT, value))
            else:
                tokens.append((WORD, fold(text)))
            continue
        number = _NUMBER_RE.match(sql, i)
        if number:
            tokens.append((OTHER, number.group(0)))
            i = number.end()
            continue
        tokens.append((PUNCT if ch in _PUNCT else OTHER, ch))
        i += 1
    return tokens


def _defines_routine(tokens):
    """Whether a statement so far starts with CREATE [OR REPLACE] FUNCTION|PROCEDURE."""
    words = [value for kind, value in tokens[:4] if kind == WORD]
    if words[:2] == ["create", "or"] and words[2:3] == ["replace"]:
        words = words[:1] + words[3:]
    return len(words) >= 2 and words[0] == "create" and words[1] in ("function", "procedure")


def split_statements(tokens):
    """Token lists of the statements, split on `;` as psql splits them (see module doc)."""
    statements, current = [], []
    depth = begin_depth = 0
    for kind, value in tokens:
        if kind == PUNCT and value == ";" and depth == 0 and begin_depth == 0:
            if current:
                statements.append(current)
            current = []
            continue
        if kind == PUNCT and value == "(":
            depth += 1
        elif kind == PUNCT and value == ")":
            depth = max(0, depth - 1)
        elif kind == WORD and depth == 0 and _defines_routine(current):
            # psql's rule: in CREATE [OR REPLACE] FUNCTION|PROCEDURE, BEGIN (and CASE inside
            # it) open a block that END closes, so a `BEGIN ATOMIC ... END` body is one statement.
            if value == "begin" or (value == "case" and begin_depth):
                begin_depth += 1
            elif value == "end" and begin_depth:
                begin_depth -= 1
        current.append((kind, value))
    if current:
        statements.append(current)
    return statements


class _Reader(object):
    """Positional helpers over one token list."""

    def __init__(self, tokens):
        self.tokens = tokens

    def word(self, i):
        if 0 <= i < len(self.tokens) and self.tokens[i][0] == WORD:
            return self.tokens[i][1]
        return None

    def words(self, i, *expected):
        return all(self.word(i + k) == w for k, w in enumerate(expected))

    def punct(self, i, value):
        return 0 <= i < len(self.tokens) and self.tokens[i] == (PUNCT, value)

    def name(self, i):
        """((schema or None, table), index after it) of a dotted name at i, or (None, i)."""
        parts = []
        j = i
        while j < len(self.tokens) and self.tokens[j][0] in (WORD, IDENT):
            parts.append(self.tokens[j][1])
            if not (self.punct(j + 1, ".") and j + 2 < len(self.tokens)
                    and self.tokens[j + 2][0] in (WORD, IDENT)):
                j += 1
                break
            j += 2
        if not parts:
            return None, i
        if len(parts) == 1:
            return (None, parts[0]), j
        return (parts[-2], parts[-1]), j

    def group_end(self, i):
        """Index of the `)` closing the `(` at i (the end of the tokens if unbalanced)."""
        depth = 0
        for j in range(i, len(self.tokens)):
            if self.punct(j, "("):
                depth += 1
            elif self.punct(j, ")"):
                depth -= 1
                if depth == 0:
                    return j
        return len(self.tokens)

    def skip_if_exists(self, i):
        if self.words(i, "if", "not", "exists"):
            return i + 3
        if self.words(i, "if", "exists"):
            return i + 2
        return i


def _touch(reader, i):
    table, dummy = reader.name(i)
    return [("touch", table)] if table else []


def _create(reader, i):
    j = i
    if reader.word(j) in ("global", "local"):
        j += 1
    if reader.word(j) in ("temp", "temporary"):
        return []
    if reader.word(j) == "unlogged":
        j += 1
    if reader.word(j) == "table":
        return _touch(reader, reader.skip_if_exists(j + 1))
    if reader.word(j) == "unique":
        j += 1
    if reader.word(j) != "index":
        return []
    j += 1
    if reader.word(j) == "concurrently":
        j += 1
    j = reader.skip_if_exists(j)
    if reader.word(j) != "on" or reader.word(j + 1) == "on":
        dummy, j = reader.name(j)  # the index's own name, optional in PostgreSQL
    if reader.word(j) != "on":
        return []
    j += 1
    if reader.word(j) == "only":
        j += 1
    return _touch(reader, j)


def _alter(reader, i):
    if reader.word(i) != "table":
        return []
    j = reader.skip_if_exists(i + 1)
    if reader.word(j) == "only":
        j += 1
    if reader.word(j) == "all" and reader.word(j + 1) == "in":
        return []  # ALTER TABLE ALL IN TABLESPACE moves storage, not rows
    table, j = reader.name(j)
    if not table:
        return []
    if reader.punct(j, "*"):
        j += 1
    if reader.words(j, "rename", "to"):
        new, dummy = reader.name(j + 2)
        return [("rename", table, (table[0], new[1]))] if new else [("touch", table)]
    if reader.words(j, "set", "schema"):
        schema, dummy = reader.name(j + 2)
        return [("rename", table, (schema[1], table[1]))] if schema else [("touch", table)]
    return [("touch", table)]


def _drop(reader, i):
    if reader.word(i) != "table":
        return []
    j = reader.skip_if_exists(i + 1)
    effects = []
    while True:
        table, j = reader.name(j)
        if not table:
            break
        effects.append(("drop", table))
        if not reader.punct(j, ","):
            break
        j += 1
    return effects


def _with(reader, i):
    """Effects of the data-modifying common table expressions, then of the main statement."""
    effects = []
    j = i + 1
    if reader.word(j) == "recursive":
        j += 1
    while j < len(reader.tokens):
        dummy, j = reader.name(j)
        if reader.punct(j, "("):
            j = reader.group_end(j) + 1
        if reader.word(j) != "as":
            return effects
        j += 1
        if reader.word(j) == "not":
            j += 1
        if reader.word(j) == "materialized":
            j += 1
        if not reader.punct(j, "("):
            return effects
        end = reader.group_end(j)
        effects.extend(statement_effects(reader.tokens[j + 1:end]))
        j = end + 1
        # SEARCH / CYCLE clauses of a recursive CTE come before the next `,` or the statement.
        while j < len(reader.tokens) and not reader.punct(j, ",") and \
                reader.word(j) not in ("select", "insert", "update", "delete", "merge", "values", "table"):
            j += 1
        if not reader.punct(j, ","):
            break
        j += 1
    effects.extend(_effects_at(reader, j))
    return effects


def _do(reader, i):
    """Effects of the statements of a PL/pgSQL DO block (best effort: dynamic SQL is not read)."""
    language = "plpgsql"
    body = None
    j = i
    while j < len(reader.tokens):
        kind, value = reader.tokens[j]
        if kind == STRING and body is None:
            body = value
        elif reader.word(j) == "language" and j + 1 < len(reader.tokens):
            language = reader.tokens[j + 1][1].lower()
            j += 1
        j += 1
    if body is None or language != "plpgsql":
        return []
    tokens = tokenize(body)
    body_reader = _Reader(tokens)
    effects = []
    for k in range(len(tokens)):
        if k == 0 or tokens[k - 1] == (PUNCT, ";") or body_reader.word(k - 1) in _PLPGSQL_STARTERS:
            effects.extend(_effects_at(body_reader, k))
    return effects


def _effects_at(reader, i):
    word = reader.word(i)
    if word == "create":
        return _create(reader, i + 1)
    if word == "alter":
        return _alter(reader, i + 1)
    if word == "drop":
        return _drop(reader, i + 1)
    if word in ("insert", "merge") and reader.word(i + 1) == "into":
        return _touch(reader, i + 2)
    if word == "update":
        return _touch(reader, i + 2 if reader.word(i + 1) == "only" else i + 1)
    if word == "delete" and reader.word(i + 1) == "from":
        return _touch(reader, i + 3 if reader.word(i + 2) == "only" else i + 2)
    if word == "copy" and not reader.punct(i + 1, "("):
        table, j = reader.name(i + 1)
        if reader.punct(j, "("):
            j = reader.group_end(j) + 1
        return [("touch", table)] if table and reader.word(j) == "from" else []
    if word == "with":
        return _with(reader, i)
    if word == "do":
        return _do(reader, i + 1)
    return []


def statement_effects(tokens):
    """What one statement does to tables: a list of ("touch", t), ("drop", t) and
    ("rename", old, new), t being (schema or None, table)."""
    return _effects_at(_Reader(tokens), 0)


def touched_tables(sql, exclude=()):
    """Tables `sql` creates, alters, indexes or writes to and does not drop again.

    A list of (schema or None, table) tuples in the order they are first touched, without
    duplicates; tables named `exclude` (in any schema, e.g. Alembic's version table) are
    left out.
    """
    touched = []
    for statement in split_statements(tokenize(sql or "")):
        for effect in statement_effects(statement):
            kind, table = effect[0], effect[1]
            if kind in ("drop", "rename") and table in touched:
                touched.remove(table)
            target = effect[2] if kind == "rename" else table
            if kind != "drop" and target not in touched:
                touched.append(target)
    return [t for t in touched if t[1] not in exclude]
