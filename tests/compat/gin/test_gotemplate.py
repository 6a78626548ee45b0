"""Go text/template sources rewritten to Jinja render the values gin would compute."""

from __future__ import annotations

from typing import Any

import pytest

from treadle.compat.gin.gotemplate import GoTemplateError, to_jinja
from treadle.errors import TemplateError
from treadle.model.templating import render_string

ROOT: dict[str, Any] = {
    "Defaults": {"host": "db1", "items": "kept", "n": 3},
    "Runtime": {"who": "bob", "tags": ["a", "b"], "map": {"z": 1, "a": 2}},
}


def resolve(parts: list[str]) -> str:
    # A resolver that keeps gin's root map under one native name.
    return "root" + "".join(f'["{p}"]' for p in parts)


def render(source: str) -> Any:
    return render_string(to_jinja(source, resolve), {"root": ROOT})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("plain text", "plain text"),
        ("{{.Defaults.host}}", "db1"),
        ("{{ .Defaults.host }}:5432", "db1:5432"),
        ("{{.Defaults.items}}", "kept"),  # a key, not dict.items
        ("{{$.Runtime.who}}", "bob"),
        ("{{range .Runtime.tags}}<{{.}}>{{end}}", "<a><b>"),
        ("{{range $i, $t := .Runtime.tags}}{{$i}}={{$t}} {{end}}", "0=a 1=b "),
        ("{{range $k, $v := .Runtime.map}}{{$k}}{{$v}}{{end}}", "a2z1"),
        ("{{range .Runtime.map}}{{.}}{{end}}", "21"),  # map values in key order
        ("{{range .Runtime.none}}x{{else}}empty{{end}}", "empty"),
        ('{{if eq .Runtime.who "bob"}}yes{{else}}no{{end}}', "yes"),
        ('{{if ne .Runtime.who "bob"}}yes{{else if .Defaults.host}}host{{end}}', "host"),
        ("{{with .Runtime.who}}hi {{.}}{{end}}", "hi bob"),
        ("{{with .Runtime.nobody}}hi{{else}}none{{end}}", "none"),
        ("{{len .Runtime.tags}}", 2),
        ("{{index .Runtime.tags 1}}", "b"),
        ('{{index .Runtime.map "z"}}', 1),
        ('{{printf "%s-%v" .Defaults.host .Defaults.n}}', "db1-3"),
        ('{{.Runtime.who | printf "<%s>"}}', "<bob>"),
        ("{{and .Runtime.who .Defaults.host}}", "db1"),
        ("{{or .Runtime.empty .Defaults.host}}", "db1"),
        ("{{not .Runtime.who}}", False),
        ("a  {{- .Runtime.who -}}  z", "abobz"),
        ("{{/* a comment */}}x", "x"),
        ("{{ $h := .Defaults.host }}{{ $h }}!", "db1!"),
        ('{{html "<b>"}}', "&lt;b&gt;"),
        ('{{urlquery "a b"}}', "a%20b"),
        ("100%{#not a comment#} {{.Runtime.who}}", "100%{#not a comment#} bob"),
        ("{% raw %} {{.Runtime.who}}", "{% raw %} bob"),
    ],
)
def test_translation_renders_like_go(source: str, expected: Any) -> None:
    ROOT["Runtime"]["empty"] = ""
    ROOT["Runtime"]["nobody"] = ""
    ROOT["Runtime"]["none"] = []
    assert render(source) == expected


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{{if .Defaults.host}}x", "missing {{end}}"),
        ("{{end}}", "without if"),
        ('{{template "x"}}', "not supported"),
        ("{{call .Defaults.host}}", "'call' is not supported"),
        ("{{.}}", "top level"),
        ("{{.Defaults.host", "unclosed"),
        ("{{ 'x' }}", "cannot read"),
        ("{{.Defaults.host .Defaults.n}}", "not a function"),
    ],
)
def test_unsupported_or_broken_templates_name_the_problem(source: str, fragment: str) -> None:
    with pytest.raises(GoTemplateError) as info:
        to_jinja(source, resolve)
    assert fragment in str(info.value)


def test_missing_keys_are_errors_not_no_value() -> None:
    # gin prints "<no value>"; treadle refuses to send a half-filled request.
    with pytest.raises(TemplateError, match="absent"):
        render("{{.Runtime.absent}}")
