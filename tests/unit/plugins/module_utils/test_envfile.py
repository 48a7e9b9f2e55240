# -*- coding: utf-8 -*-
"""Unit tests of the env file parser/editor: exact output bytes, parsing, revert round trip."""

import itertools

import pytest

from ansible_collections.prodready.deploy.plugins.module_utils import _envfile
from ansible_collections.prodready.deploy.plugins.module_utils._errors import ProdreadyError

FILES = {
    "plain": u"A=1\nB=2\n",
    "comments": u"# header\n\nA=1 # inline\n  # indented comment\nB=2\n",
    "quotes": u"S='single'\nD=\"double\"\nU=plain\n",
    "export": u"export A=1\nexport  B='x'\n",
    "dups": u"A=1\nB=2\nA=3\n",
    "crlf": u"A=1\r\nB=2\r\n",
    "empty_values": u"A=\nB=''\nC=\"\"\n",
    "unicode": u"NAME=café\nGREETING='héllo wörld'\n",
    "no_trailing_newline": u"A=1\nB=2",
    "crlf_no_trailing_newline": u"A=1\r\nB=2",
    "inline_comments": u"A=1 # on\nB=\"x\"  # quoted\nC=a#b\n",
    "spaces_around_equals": u"A = 1\n",
    "bom": u"\ufeffA=1\n",
    "empty_file": u"",
    "multiline_value": u"A=\"l1\nl2\"\nB=1\n",
    "other_lines": u"A\nnot an assignment\nmy-key=1\nB=2\n",
}

# (file, flags, state, expected bytes, expected changed_flags)
EDITS = [
    ("plain", {"A": u"9"}, "present", u"A=9\nB=2\n", ["A"]),
    ("plain", {"C": u"true"}, "present", u"A=1\nB=2\nC=true\n", ["C"]),
    ("plain", {"B": None}, "present", u"A=1\n", ["B"]),
    ("plain", {"A": u"1"}, "present", u"A=1\nB=2\n", []),
    ("plain", {"Z": None}, "present", u"A=1\nB=2\n", []),
    ("plain", {"A": u"x", "B": u"whatever"}, "absent", u"", ["A", "B"]),
    ("comments", {"A": u"0"}, "present",
     u"# header\n\nA=0 # inline\n  # indented comment\nB=2\n", ["A"]),
    ("comments", {"A": None}, "present", u"# header\n\n  # indented comment\nB=2\n", ["A"]),
    ("comments", {"N": u"v"}, "present",
     u"# header\n\nA=1 # inline\n  # indented comment\nB=2\nN=v\n", ["N"]),
    ("quotes", {"S": u"x y", "D": u"new", "U": u"a b"}, "present",
     u"S='x y'\nD=\"new\"\nU='a b'\n", ["S", "D", "U"]),
    ("quotes", {"S": u"it's"}, "present", u"S=\"it's\"\nD=\"double\"\nU=plain\n", ["S"]),
    ("quotes", {"S": u"x"}, "present", u"S='x'\nD=\"double\"\nU=plain\n", ["S"]),
    ("quotes", {"D": u'say "hi" \\o/'}, "present",
     u"S='single'\nD=\"say \\\"hi\\\" \\\\o/\"\nU=plain\n", ["D"]),
    ("export", {"A": u"2"}, "present", u"export A=2\nexport  B='x'\n", ["A"]),
    ("export", {"B": u"y"}, "present", u"export A=1\nexport  B='y'\n", ["B"]),
    ("dups", {"A": u"5"}, "present", u"A=5\nB=2\n", ["A"]),
    ("dups", {"A": u"1"}, "present", u"A=1\nB=2\n", ["A"]),
    ("dups", {"A": u"3"}, "present", u"A=3\nB=2\n", ["A"]),
    ("dups", {"A": None}, "present", u"B=2\n", ["A"]),
    ("dups", {"A": u"anything"}, "absent", u"B=2\n", ["A"]),
    ("crlf", {"B": u"9", "C": u"1"}, "present", u"A=1\r\nB=9\r\nC=1\r\n", ["B", "C"]),
    ("crlf", {"A": None}, "present", u"B=2\r\n", ["A"]),
    ("empty_values", {"A": u"x", "B": u"", "C": u"v"}, "present",
     u"A=x\nB=''\nC=\"v\"\n", ["A", "C"]),
    ("empty_values", {"A": u"", "D": u""}, "present", u"A=\nB=''\nC=\"\"\nD=\n", ["D"]),
    ("empty_values", {"B": u"b"}, "present", u"A=\nB='b'\nC=\"\"\n", ["B"]),
    ("unicode", {"NAME": u"naïve"}, "present", u"NAME=naïve\nGREETING='héllo wörld'\n",
     ["NAME"]),
    ("unicode", {"GREETING": u"ça va", "NEW": u"日本 語"}, "present",
     u"NAME=café\nGREETING='ça va'\nNEW='日本 語'\n", ["GREETING", "NEW"]),
    ("no_trailing_newline", {"B": u"3"}, "present", u"A=1\nB=3", ["B"]),
    ("no_trailing_newline", {"C": u"1"}, "present", u"A=1\nB=2\nC=1", ["C"]),
    ("no_trailing_newline", {"B": None}, "present", u"A=1", ["B"]),
    ("no_trailing_newline", {"A": None}, "present", u"B=2", ["A"]),
    ("crlf_no_trailing_newline", {"C": u"1"}, "present", u"A=1\r\nB=2\r\nC=1", ["C"]),
    ("inline_comments", {"A": u"0"}, "present", u"A=0 # on\nB=\"x\"  # quoted\nC=a#b\n", ["A"]),
    ("inline_comments", {"B": u"y"}, "present", u"A=1 # on\nB=\"y\"  # quoted\nC=a#b\n", ["B"]),
    ("inline_comments", {"C": u"c"}, "present", u"A=1 # on\nB=\"x\"  # quoted\nC=c\n", ["C"]),
    ("inline_comments", {"C": u"a#b"}, "present", u"A=1 # on\nB=\"x\"  # quoted\nC=a#b\n", []),
    ("inline_comments", {"A": u"x#y"}, "present", u"A=x#y # on\nB=\"x\"  # quoted\nC=a#b\n", ["A"]),
    ("inline_comments", {"A": u"#x"}, "present", u"A='#x' # on\nB=\"x\"  # quoted\nC=a#b\n", ["A"]),
    ("inline_comments", {"A": u""}, "present", u"A='' # on\nB=\"x\"  # quoted\nC=a#b\n", ["A"]),
    ("inline_comments", {"A": u"two words"}, "present",
     u"A='two words' # on\nB=\"x\"  # quoted\nC=a#b\n", ["A"]),
    ("spaces_around_equals", {"A": u"2"}, "present", u"A = 2\n", ["A"]),
    ("bom", {"A": u"2", "B": u"3"}, "present", u"\ufeffA=2\nB=3\n", ["A", "B"]),
    ("empty_file", {"A": u"1"}, "present", u"A=1\n", ["A"]),
    ("empty_file", {"A": None}, "present", u"", []),
    ("multiline_value", {"A": u"x"}, "present", u"A=\"x\"\nB=1\n", ["A"]),
    ("multiline_value", {"A": None}, "present", u"B=1\n", ["A"]),
    ("other_lines", {"A": u"1", "B": u"3"}, "present",
     u"A\nnot an assignment\nmy-key=1\nB=3\nA=1\n", ["A", "B"]),
]

# values that need quoting (or a particular quote) when added as a new flag
NEW_VALUE_QUOTING = [
    (u"true", u"V=true\n"),
    (u"postgres://app@db:5432/app", u"V=postgres://app@db:5432/app\n"),
    (u"a=b,c", u"V=a=b,c\n"),
    (u"two words", u"V='two words'\n"),
    (u"$HOME", u"V='$HOME'\n"),
    (u"${OTHER}", u"V='${OTHER}'\n"),
    (u"a#b", u"V='a#b'\n"),
    (u"a # b", u"V='a # b'\n"),
    (u" lead", u"V=' lead'\n"),
    (u"trail ", u"V='trail '\n"),
    (u'x"y', u"V='x\"y'\n"),
    (u"it's", u"V=\"it's\"\n"),
    (u"back\\slash", u"V=\"back\\\\slash\"\n"),
    (u"end\\", u"V=\"end\\\\\"\n"),
    (u"it's \"q\" \\", u"V=\"it's \\\"q\\\" \\\\\"\n"),
    (u"`cmd`", u"V='`cmd`'\n"),
    (u"a;b", u"V='a;b'\n"),
    (u"~/x", u"V='~/x'\n"),
    (u"tab\there", u"V='tab\there'\n"),
    (u"", u"V=\n"),
    (u"ünï", u"V=ünï\n"),
]

# text -> what the application sees
PARSING = [
    (u"A=1 # c\n", {"A": u"1"}),
    (u"A=a#b\n", {"A": u"a#b"}),
    (u"A=a\t#b\n", {"A": u"a"}),
    (u"A='x # y'\n", {"A": u"x # y"}),
    (u"A=\"a\\\"b\"\n", {"A": u'a"b'}),
    (u"A=\"a\\nb\"\n", {"A": u"a\nb"}),
    (u"A=\"a\\\\nb\"\n", {"A": u"a\\nb"}),
    (u"A='a\\'b'\n", {"A": u"a'b"}),
    (u"A='a\\nb'\n", {"A": u"a\\nb"}),
    (u"A='$X'\n", {"A": u"$X"}),
    (u"export A=1\n", {"A": u"1"}),
    (u"A = 1 \n", {"A": u"1"}),
    (u"  A=1\n", {"A": u"1"}),
    (u"A=\n", {"A": u""}),
    (u"A= # note\n", {"A": u"# note"}),
    (u"A\n", {}),
    (u"# A=1\n", {}),
    (u"A=1\nA=2\n", {"A": u"2"}),
    (u"A=1\r\nB=2\r\n", {"A": u"1", "B": u"2"}),
    (u"A=1\rB=2\r", {"A": u"1", "B": u"2"}),
    (u"A=\"multi\nline\"\nB=1\n", {"A": u"multi\nline", "B": u"1"}),
    (u"A=\"unterminated\nB=2\n", {"B": u"2"}),
    (u"A=\"x\"junk\nB=2\n", {"B": u"2"}),
    (u"A=\"x\" # ok\n", {"A": u"x"}),
    (u"my-key=1\n", {"my-key": u"1"}),
    (u"A=café\u2028x\n", {"A": u"café\u2028x"}),
    (u"\ufeffA=1", {"A": u"1"}),
    (u"", {}),
]


@pytest.mark.parametrize("name", sorted(FILES))
def test_parse_render_is_identity(name):
    text = FILES[name]
    assert _envfile.render(_envfile.parse(text)) == text


@pytest.mark.parametrize("text", [case[0] for case in PARSING] + [u"\n\n", u"x", u"A=1\n\r\n", u"'q'=1"])
def test_parse_render_is_identity_for_odd_text(text):
    assert _envfile.render(_envfile.parse(text)) == text


@pytest.mark.parametrize("text,expected", PARSING)
def test_values_app_sees(text, expected):
    assert _envfile.values(_envfile.parse(text)) == expected


@pytest.mark.parametrize("name,flags,state,expected,changed_flags", EDITS,
                         ids=["%s-%d" % (e[0], i) for i, e in enumerate(EDITS)])
def test_edit_output_bytes(name, flags, state, expected, changed_flags):
    original = FILES[name]
    doc = _envfile.parse(original)
    result = _envfile.apply_flags(doc, flags, state)
    out = _envfile.render(result.doc)
    assert out.encode("utf-8") == expected.encode("utf-8")
    assert result.changed_flags == changed_flags
    assert result.changed == (out != original)
    # the input document is not modified
    assert _envfile.render(doc) == original
    # the app sees what was asked
    seen = _envfile.values(_envfile.parse(out))
    for flag, value in flags.items():
        assert seen.get(flag) == (None if state == "absent" else value)
        assert result.current[flag] == seen.get(flag)
    # idempotent: the same edit on the output changes nothing
    again = _envfile.apply_flags(_envfile.parse(out), flags, state)
    assert not again.changed and again.changed_flags == [] and again.changes == []
    assert _envfile.render(again.doc) == out


@pytest.mark.parametrize("value,expected", NEW_VALUE_QUOTING)
def test_new_value_quoting(value, expected):
    result = _envfile.apply_flags(_envfile.parse(u""), {"V": value})
    out = _envfile.render(result.doc)
    assert out == expected
    assert _envfile.values(_envfile.parse(out)) == {"V": value}


@pytest.mark.parametrize("quote", [u"", u"'", u'"'])
@pytest.mark.parametrize("value", [case[0] for case in NEW_VALUE_QUOTING])
def test_replaced_value_reads_back_in_any_original_style(quote, value):
    original = u"V=%sold%s # keep\n" % (quote, quote)
    out = _envfile.render(_envfile.apply_flags(_envfile.parse(original), {"V": value}).doc)
    assert _envfile.values(_envfile.parse(out)) == {"V": value}
    assert out.endswith(u" # keep\n")


def test_duplicates_are_reported():
    result = _envfile.apply_flags(_envfile.parse(FILES["dups"]), {"A": u"5"})
    assert result.previous == {"A": u"3"}
    assert result.removed_duplicates == [{"name": "A", "line": 3, "value": u"3"}]


def test_changes_list_only_changed_lines_in_file_order():
    text = u"SECRET=hunter2\nA=1\nB=2\nA=3\n"
    result = _envfile.apply_flags(_envfile.parse(text), {"B": None, "A": u"9", "C": u"c"})
    before, after = _envfile.diff_texts(result.changes)
    assert before == u"A=1\nB=2\nA=3\n"
    assert after == u"A=9\nC=c\n"
    assert u"hunter2" not in before + after


def test_crlf_diff_lines_have_no_carriage_return():
    result = _envfile.apply_flags(_envfile.parse(FILES["crlf"]), {"A": u"2"})
    assert _envfile.diff_texts(result.changes) == (u"A=1\n", u"A=2\n")


# ---------------------------------------------------------------- revert round trip

# values a line can take without changing its quoting style
SAME_STYLE_VALUES = {
    u"": [u"true", u"false", u"0", u"x.y/z", u"", u"ü"],
    u"'": [u"true", u"two words", u"$X #y", u'q"q', u""],
    u'"': [u"true", u"two words", u"it's", u"back\\slash", u'q"q', u""],
}
NEW_VALUES = [u"true", u"two words", u"it's", u"back\\slash $X", u"", u"日本"]
ROUND_TRIP_FILES = [name for name in sorted(FILES) if name not in ("dups",)]


def _round_trip_cases():
    for name in ROUND_TRIP_FILES:
        doc = _envfile.parse(FILES[name])
        assigned = [line for line in doc.lines if line.is_assignment and
                    _envfile.NAME_RE.match(line.name)]
        for line in assigned:
            for value in SAME_STYLE_VALUES[line.quote]:
                if value == u"" and line.quote == u"" and u"#" in line.trail:
                    continue  # `A= # c` would read "# c": an empty value there gets quoted
                yield name, {line.name: value}
        for value in NEW_VALUES:
            yield name, {"NEW_FLAG": value}
        if assigned:
            yield name, dict((line.name, u"changed value") for line in assigned
                             if line.quote != u"")
            yield name, dict([(line.name, u"true") for line in assigned] + [("ADDED", u"1")])


ROUND_TRIP = list(_round_trip_cases())


@pytest.mark.parametrize("name,flags", ROUND_TRIP,
                         ids=["%s-%d" % (c[0], i) for i, c in enumerate(ROUND_TRIP)])
def test_revert_with_previous_restores_original_bytes(name, flags):
    original = FILES[name]
    forward = _envfile.apply_flags(_envfile.parse(original), flags)
    back = _envfile.apply_flags(forward.doc, forward.previous)
    assert _envfile.render(back.doc).encode("utf-8") == original.encode("utf-8")


@pytest.mark.parametrize("original, value", [
    (u'D="a\\tb"\n', u"a\tb"),
    (u'D="cr\\r tab\\t bell\\a bs\\b ff\\f vt\\v"\n', u"cr\r tab\t bell\a bs\b ff\f vt\v"),
    (u'D="q\\" b\\\\ \\t"\n', u'q" b\\ \t'),
])
def test_double_quoted_escapes_are_written_back_as_escapes(original, value):
    doc = _envfile.parse(original)
    assert _envfile.values(doc)["D"] == value
    forward = _envfile.apply_flags(doc, {"D": u"other"})
    assert _envfile.render(forward.doc) == u'D="other"\n'
    back = _envfile.apply_flags(forward.doc, forward.previous)
    assert _envfile.render(back.doc) == original
    assert _envfile.values(_envfile.parse(_envfile.render(back.doc)))["D"] == value


def test_revert_of_file_with_duplicates_keeps_them_removed():
    forward = _envfile.apply_flags(_envfile.parse(FILES["dups"]), {"A": u"5", "N": u"x"})
    back = _envfile.apply_flags(forward.doc, forward.previous)
    # original minus the later duplicate; the first assignment holds the value the app saw
    assert _envfile.render(back.doc) == u"A=3\nB=2\n"
    assert _envfile.values(back.doc) == _envfile.values(_envfile.parse(FILES["dups"]))


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("style_change", [u"two words", u"it's \\", u"plain"])
def test_revert_restores_values_even_when_lines_move_or_requote(name, style_change):
    """Removing every flag, or forcing a quoting change, then reverting: the app sees
    exactly the original values (bytes may differ: removed lines come back at the end)."""
    original = _envfile.parse(FILES[name])
    names = [n for n in _envfile.values(original) if _envfile.NAME_RE.match(n)]
    for flags in (dict((n, None) for n in names), dict((n, style_change) for n in names)):
        forward = _envfile.apply_flags(original, flags)
        back = _envfile.apply_flags(forward.doc, forward.previous)
        assert _envfile.values(back.doc) == _envfile.values(original)


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("flags,message", [
    ({"BAD NAME": u"1"}, "flag name 'BAD NAME' is not a valid environment variable name"),
    ({"1ABC": u"1"}, "flag name '1ABC'"),
    ({"A-B": u"1"}, "flag name 'A-B'"),
    ({"": u"1"}, "flag name ''"),
    ({"A": u"line1\nline2"}, "value of flag A contains a line break"),
    ({"A": u"cr\r"}, "value of flag A contains a line break"),
    ({"A": u"nul\x00"}, "value of flag A contains a line break or a NUL"),
    ({"A": [1, 2]}, "the value of flag A is a list"),
    ({"A": {"x": 1}}, "the value of flag A is a dict"),
])
def test_validate_flags_rejects(flags, message):
    with pytest.raises(ProdreadyError) as err:
        _envfile.validate_flags(flags)
    assert message in str(err.value)
    assert err.value.details["flag"] == list(flags)[0]


@pytest.mark.parametrize("value,text", [
    (True, u"true"), (False, u"false"), (0, u"0"), (3, u"3"), (1.5, u"1.5"),
    (None, None), (u"yes", u"yes"), (u"True", u"True"), (b"raw", u"raw"),
])
def test_flag_values_to_text(value, text):
    assert _envfile.validate_flags({"F": value}) == {"F": text}


@pytest.mark.parametrize("value,quote,ok", [
    (u"abc", u"", True), (u"a b", u"", False), (u"", u"", True), (u"a b", u"'", True),
    (u"it's", u"'", False), (u"a\\b", u"'", False), (u"it's\\", u'"', True),
])
def test_can_write(value, quote, ok):
    assert _envfile.can_write(value, quote) is ok


@pytest.mark.parametrize("value,strict,keep_style", [
    (u"a#b", False, True), (u"#b", False, False), (u"a #b", False, False), (u"ok", True, True),
])
def test_can_write_unquoted_hash_only_when_keeping_a_line_style(value, strict, keep_style):
    assert _envfile.can_write(value, u"") is strict
    assert _envfile.can_write(value, u"", keep_style=True) is keep_style


def test_edit_table_covers_every_file():
    assert set(e[0] for e in EDITS) == set(FILES)


def test_round_trip_table_is_not_empty():
    # the generator must produce cases for every file but the duplicates one
    assert set(c[0] for c in ROUND_TRIP) == set(ROUND_TRIP_FILES)
    assert len(ROUND_TRIP) > 60


def test_all_combinations_of_two_flags_are_order_independent_for_disjoint_names():
    base = _envfile.parse(FILES["comments"])
    for first, second in itertools.permutations([("A", u"x"), ("B", None), ("C", u"y z")], 2):
        one = _envfile.apply_flags(base, dict([first, second]))
        two = _envfile.apply_flags(_envfile.apply_flags(base, dict([first])).doc, dict([second]))
        assert _envfile.values(one.doc) == _envfile.values(two.doc)
