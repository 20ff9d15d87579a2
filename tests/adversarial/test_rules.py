"""The shared rules in-process (toolkit/checks.py, toolkit/redact.py): each boundary of each rule,
so that a broken rule fails here in milliseconds (and mutation testing can see it)."""

from __future__ import annotations

import json

import pytest

from toolkit import checks
from toolkit.redact import MASK, mask, mask_value, redact


@pytest.mark.parametrize("name, clean", [("a.py", "a.py"), ("./a/./b.py", "a/b.py"), ("a//b/", "a/b"),
                                         ("..a", "..a"), ("a..", "a.."), ("", "")])
def test_relative_path_keeps_names_inside(name: str, clean: str) -> None:
    assert checks.relative_path(name) == clean


@pytest.mark.parametrize("name, reason", [
    ("/x", "absolute"), ("\\x", "absolute"), ("C:x", "absolute"), ("..", "'..'"), ("a/..", "'..'"),
    ("a\\..\\..\\x", "'..'"), ("a\x00b", "NUL"),
])
def test_relative_path_refuses(name: str, reason: str) -> None:
    with pytest.raises(checks.Unsafe, match=reason):
        checks.relative_path(name)


def nested(depth: int) -> object:
    value: object = 1
    for i in range(depth):  # depth containers around a number
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth, ok", [(99, True), (100, True), (101, False)])
def test_check_data_depth_at_below_and_above(depth: int, ok: bool) -> None:
    data = nested(depth)
    if ok:
        checks.check_data(data)
    else:
        with pytest.raises(checks.Unsafe, match="nested more than 100 levels deep"):
            checks.check_data(data)
    with pytest.raises(checks.Unsafe):
        checks.check_data(nested(4), max_depth=2)
    checks.check_data(nested(2), max_depth=2)


@pytest.mark.parametrize("data, where", [
    ("a\x00", "value"), ({"a\x00": 1}, "key"), ([["x", "\x00"]], "value"), ({"a": {"b": ["\x00"]}}, "value"),
    ({"k": 1, "z": {"y\x00": 2}}, "key"),
])
def test_check_data_finds_a_nul_anywhere(data: object, where: str) -> None:
    with pytest.raises(checks.Unsafe, match=f"NUL character in the {where}"):
        checks.check_data(data)


def test_check_data_accepts_ordinary_data() -> None:
    checks.check_data({"a": [1, "x", {"b": None, "c": 2.5}], "d": True})


@pytest.mark.parametrize("name, ok", [("train", True), ("eval-set.v2_1", True), ("x" * 64, True), ("x" * 65, False),
                                      ("", False), (".", False), ("..", False), ("a/b", False), ("a=b", False)])
def test_channel_names(name: str, ok: bool) -> None:
    if ok:
        checks.check_channel_name(name)
    else:
        with pytest.raises(checks.Unsafe, match="is not a SageMaker channel name"):
            checks.check_channel_name(name)


@pytest.mark.parametrize("name, ok", [("lr", True), ("a b", True), ("", True), ("a=b", False), ("a\x00", False)])
def test_variable_names(name: str, ok: bool) -> None:
    if ok:
        checks.check_variable_name("hyperparameter", name)
    else:
        with pytest.raises(checks.Unsafe, match=r"hyperparameter .* cannot be part of an environment variable"):
            checks.check_variable_name("hyperparameter", name)


def test_mask_value_in_every_container() -> None:
    from toolkit.types import Command

    shown = mask_value({"a": [{"token": "s1"}, "https://u:s2@h/"], "b": ("--key", "s3"),
                        "c": Command(["python", "--password", "s4"], name="x"), "n": 3, "none": None,
                        "hps": json.dumps({"x": {"api_key": "s5"}, "y": 1})})
    text = repr(shown)
    assert not [s for s in ("s1", "s2", "s3", "s4", "s5") if s in text], text
    assert shown["a"][0] == {"token": MASK} and shown["a"][1] == f"https://u:{MASK}@h/"
    assert shown["b"] == ["--key", MASK]
    assert isinstance(shown["c"], Command) and shown["c"].argv == ["python", "--password", MASK]
    assert shown["n"] == 3 and shown["none"] is None
    assert json.loads(shown["hps"]) == {"x": {"api_key": MASK}, "y": 1}


def test_mask_value_leaves_plain_values_alone() -> None:
    assert mask_value("[1, 2]") == "[1, 2]"  # JSON without a secret keeps its own spelling
    assert mask_value(["a", "b"]) == ["a", "b"]
    assert mask_value("not json {") == "not json {"
    assert mask_value('{"token": ') == '{"token": '  # broken JSON: left as text


def test_mask_keeps_empty_secrets_visible_as_empty() -> None:
    assert mask({"token": "", "key": None, "secret": "x"}) == {"token": "", "key": None, "secret": MASK}


def test_redact_only_touches_uris() -> None:
    assert redact("user:pw@host is not a URI") == "user:pw@host is not a URI"
    assert redact("a https://u:p@h/x b s3://k@b/c") == f"a https://u:{MASK}@h/x b s3://k@b/c"


def test_check_data_keeps_looking_after_a_plain_value() -> None:
    with pytest.raises(checks.Unsafe, match="NUL"):
        checks.check_data([["x\x00"], 1])


def test_messages_name_the_offender_and_a_fix() -> None:
    with pytest.raises(checks.Unsafe, match=r"'a\\x00b'"):
        checks.check_data({"k": "a\x00b"})
    with pytest.raises(checks.Unsafe, match=r"'a\\x00b'"):
        checks.check_data({"a\x00b": 1})
    with pytest.raises(checks.Unsafe, match=r"channel name 'a=b'"):
        checks.check_channel_name("a=b")
    with pytest.raises(checks.Unsafe, match=r"hyperparameter 'a=b=c' .* e\.g\. 'a_b_c'"):
        checks.check_variable_name("hyperparameter", "a=b=c")
    with pytest.raises(checks.Unsafe) as err:
        checks.check_channel_name("y" * 100)
    shown = str(err.value).split(" is not")[0]
    assert shown == "channel name " + repr("y" * 100)[:56] + "...'"  # cut to 60 characters
    with pytest.raises(checks.Unsafe) as err:
        checks.check_channel_name("z" * 57 + "/")
    assert repr("z" * 57 + "/") in str(err.value)  # 60 characters: shown whole


@pytest.mark.parametrize("value, shown", [
    ('  {"token": "s"}', '{"token":"******"}'),
    ('[{"token": "s"}]', '[{"token":"******"}]'),
    ('{"z": 1, "api_key": "s"}', '{"api_key":"******","z":1}'),
    ('["https://u:p@h/"]', '["https://u:******@h/"]'),
])
def test_mask_value_rewrites_json_it_masks(value: str, shown: str) -> None:
    assert mask_value(value) == shown


@pytest.mark.parametrize("argv, shown", [
    (["value0", "--token"], ["value0", "--token"]),
    (["--password=a=b"], ["--password=******"]),
    (["--cfg", "api_key=x"], ["--cfg", "api_key=******"]),
    (["--cfg", "api_key=a=b,lr=1"], ["--cfg", "api_key=******,lr=1"]),
])
def test_mask_argv_edges(argv: list[str], shown: list[str]) -> None:
    from toolkit.redact import mask_argv

    assert mask_argv(argv) == shown


@pytest.mark.parametrize("uri, shown", [
    ("https://u:p1:p2@h/x", "https://u:******@h/x"),
    ("http://TOKEN@h/x", "http://******@h/x"),
    ("git+http://TOKEN@h/x", "git+http://******@h/x"),
    ("ftp://anonymous@h/x", "ftp://anonymous@h/x"),
])
def test_mask_uri_edges(uri: str, shown: str) -> None:
    from toolkit.redact import mask_uri

    assert mask_uri(uri) == shown
