"""Translate Go ``text/template`` sources (as gin step contexts use them) into Jinja.

gin compiles every context value with Go's ``text/template`` against its runner variables
(``.Defaults``, ``.Runtime`` and the registered step outputs). This module rewrites such a source
into Jinja over treadle's native template context. The root of every field chain (``.Defaults.x``,
``$.Runtime.y``) is handed to a caller-supplied resolver, which knows where that data lives
natively.

Supported: field chains, ``$`` variables, literals, ``if``/``else if``/``else``, ``range`` (with
one or two variables), ``with``, pipelines, parentheses, comments, ``{{-``/``-}}`` trimming, and
the functions ``and or not len index eq ne lt le gt ge print println printf html js urlquery``.
Anything else is rejected with :class:`GoTemplateError` naming the construct.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from treadle.compat.jinja_text import escape_text, literal, subscript

Resolver = Callable[[list[str]], str]


class GoTemplateError(ValueError):
    """A Go template this translator cannot express in Jinja (or that does not parse)."""


_ACTION = re.compile(r"\{\{(-[ \t\r\n])?(.*?)([ \t\r\n]-)?\}\}", re.DOTALL)
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<field>\.(?:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?)
  | (?P<variable>\$\w*(?:\.[A-Za-z_]\w*)*)
  | (?P<ident>[A-Za-z_]\w*)
  | (?P<punct>[|(),])
    """,
    re.VERBOSE,
)
_LITERALS = {"true": "true", "false": "false", "nil": "none"}
_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_UNSUPPORTED_KEYWORDS = {"define", "template", "block", "break", "continue"}


@dataclass(slots=True)
class _Frame:
    kind: str  # if | range | with
    dots_pushed: int = 0
    in_else: bool = False


@dataclass(slots=True)
class _State:
    resolve: Resolver
    dots: list[str | None] = field(default_factory=lambda: [None])  # None: the root map
    frames: list[_Frame] = field(default_factory=list)
    counter: int = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"


def has_actions(source: str) -> bool:
    """Whether ``source`` contains any Go template action."""
    return "{{" in source


def to_jinja(source: str, resolve: Resolver) -> str:
    """Rewrite Go template ``source`` into Jinja; ``resolve`` maps root field chains."""
    state = _State(resolve)
    pieces: list[str] = []
    position = 0
    trim_next = False
    for match in _ACTION.finditer(source):
        text = source[position : match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        pieces.append(escape_text(text))
        pieces.append(_action(match.group(2).strip(), state))
        trim_next = bool(match.group(3))
        position = match.end()
    tail = source[position:]
    if "{{" in tail:
        raise GoTemplateError(f"unclosed action in {source!r}")
    pieces.append(escape_text(tail.lstrip() if trim_next else tail))
    if state.frames:
        raise GoTemplateError(f"missing {{{{end}}}} for {state.frames[-1].kind} in {source!r}")
    return "".join(pieces)


def _action(body: str, state: _State) -> str:
    if body.startswith("/*"):
        if not body.endswith("*/"):
            raise GoTemplateError(f"unclosed comment {{{{{body}}}}}")
        return ""
    tokens = _tokenize(body)
    if not tokens:
        raise GoTemplateError("empty action {{}}")
    head = tokens[0]
    if head[0] == "ident" and head[1] in _UNSUPPORTED_KEYWORDS:
        raise GoTemplateError(f"{{{{{head[1]}}}}} is not supported")
    if head == ("ident", "if"):
        return _open_if(tokens[1:], state)
    if head == ("ident", "range"):
        return _open_range(tokens[1:], state)
    if head == ("ident", "with"):
        return _open_with(tokens[1:], state)
    if head == ("ident", "else"):
        return _else(tokens[1:], state)
    if head == ("ident", "end"):
        return _end(tokens[1:], state)
    if len(tokens) > 2 and tokens[0][0] == "variable" and tokens[1][0] in ("declare", "assign"):
        name = _variable_name(tokens[0][1])
        return "{% set " + name + " = " + _Parser(tokens[2:], state).pipeline() + " %}"
    return "{{ " + _Parser(tokens, state).pipeline() + " }}"


def _tokenize(body: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(body):
        match = _TOKEN.match(body, position)
        if match is None:
            raise GoTemplateError(f"cannot read {body[position:]!r} in {{{{{body}}}}}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group()))
        position = match.end()
    return tokens


def _variable_name(token: str) -> str:
    name = token[1:]
    if not name or "." in name:
        raise GoTemplateError(f"cannot assign to {token}")
    return f"gv_{name}"


def _open_if(tokens: list[tuple[str, str]], state: _State) -> str:
    state.frames.append(_Frame("if"))
    return "{% if " + _Parser(tokens, state).pipeline() + " %}"


def _iterable(expr: str) -> str:
    # Go ranges over a map's values in key order; Jinja would iterate the keys.
    return f"(({expr} | dictsort | map(attribute='1') | list) if ({expr}) is mapping else {expr})"


def _open_range(tokens: list[tuple[str, str]], state: _State) -> str:
    names: list[str] = []
    if "declare" in (t[0] for t in tokens):
        split = [t[0] for t in tokens].index("declare")
        names = [_variable_name(t[1]) for t in tokens[:split] if t[0] == "variable"]
        if not names or len(names) > 2:
            raise GoTemplateError("range takes one or two variables")
        tokens = tokens[split + 1 :]
    expr = _Parser(tokens, state).pipeline()
    state.frames.append(_Frame("range", dots_pushed=1))
    if len(names) == 2:
        entry = state.fresh("ge")
        state.dots.append(names[1])
        return (
            f"{{% for {entry} in (({expr} | dictsort) if ({expr}) is mapping else {expr}) %}}"
            f"{{% set {names[0]}, {names[1]} = ({entry} if ({expr}) is mapping "
            f"else (loop.index0, {entry})) %}}"
        )
    loop_var = names[0] if names else state.fresh("gd")
    state.dots.append(loop_var)
    return f"{{% for {loop_var} in {_iterable(expr)} %}}"


def _open_with(tokens: list[tuple[str, str]], state: _State) -> str:
    expr = _Parser(tokens, state).pipeline()
    name = state.fresh("gd")
    state.dots.append(name)
    state.frames.append(_Frame("with", dots_pushed=1))
    return f"{{% with {name} = {expr} %}}{{% if {name} %}}"


def _else(tokens: list[tuple[str, str]], state: _State) -> str:
    if not state.frames:
        raise GoTemplateError("{{else}} outside if, range or with")
    frame = state.frames[-1]
    if frame.in_else and not tokens:
        raise GoTemplateError("a second {{else}}")
    if tokens:
        if frame.kind != "if" or tokens[0] != ("ident", "if"):
            raise GoTemplateError("only {{else if ...}} is supported after else")
        return "{% elif " + _Parser(tokens[1:], state).pipeline() + " %}"
    frame.in_else = True
    # In the else branch of range / with, dot is the outer dot again.
    for _ in range(frame.dots_pushed):
        state.dots.pop()
    frame.dots_pushed = 0
    return "{% else %}"


def _end(tokens: list[tuple[str, str]], state: _State) -> str:
    if tokens:
        raise GoTemplateError("{{end}} takes no arguments")
    if not state.frames:
        raise GoTemplateError("{{end}} without if, range or with")
    frame = state.frames.pop()
    for _ in range(frame.dots_pushed):
        state.dots.pop()
    return {"if": "{% endif %}", "range": "{% endfor %}", "with": "{% endif %}{% endwith %}"}[
        frame.kind
    ]


class _Parser:
    """Pipelines: ``command ('|' command)*``; a command is an operand or a function call."""

    def __init__(self, tokens: list[tuple[str, str]], state: _State) -> None:
        self.tokens = tokens
        self.position = 0
        self.state = state

    def pipeline(self) -> str:
        if not self.tokens:
            raise GoTemplateError("missing value in action")
        result = self._command(None)
        while self._peek() == ("punct", "|"):
            self.position += 1
            result = self._command(result)
        if self.position != len(self.tokens):
            raise GoTemplateError(f"unexpected {self.tokens[self.position][1]!r}")
        return result

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _command(self, piped: str | None) -> str:
        token = self._peek()
        if token is None:
            raise GoTemplateError("missing command after |")
        if token[0] == "ident" and token[1] not in _LITERALS:
            self.position += 1
            args = []
            while self._peek() not in (None, ("punct", "|"), ("punct", ")")):
                args.append(self._operand())
            if piped is not None:
                args.append(piped)
            return _call(token[1], args)
        operand = self._operand()
        if piped is not None:
            raise GoTemplateError(f"cannot pipe into {token[1]!r}: not a function")
        if self._peek() not in (None, ("punct", "|"), ("punct", ")")):
            raise GoTemplateError(f"{token[1]!r} is not a function and takes no arguments")
        return operand

    def _operand(self) -> str:
        token = self._peek()
        if token is None:
            raise GoTemplateError("missing operand")
        self.position += 1
        kind, text = token
        if kind == "string":
            try:
                return literal(json.loads(text))
            except ValueError as exc:
                raise GoTemplateError(f"bad string {text}") from exc
        if kind == "raw":
            return literal(text[1:-1])
        if kind == "number":
            return text
        if kind == "field":
            return self._field([p for p in text.split(".") if p])
        if kind == "variable":
            return self._variable(text)
        if kind == "ident":
            if text in _LITERALS:
                return _LITERALS[text]
            return _call(text, [])
        if token == ("punct", "("):
            return self._parenthesised()
        raise GoTemplateError(f"unexpected {text!r}")

    def _parenthesised(self) -> str:
        depth = 1
        start = self.position
        while self.position < len(self.tokens) and depth:
            if self.tokens[self.position] == ("punct", "("):
                depth += 1
            elif self.tokens[self.position] == ("punct", ")"):
                depth -= 1
            self.position += 1
        if depth:
            raise GoTemplateError("unclosed (")
        inner = _Parser(self.tokens[start : self.position - 1], self.state).pipeline()
        return f"({inner})"

    def _field(self, parts: list[str]) -> str:
        dot = self.state.dots[-1]
        if dot is None:
            if not parts:
                raise GoTemplateError("{{.}} at the top level (the whole variable map)")
            return self.state.resolve(parts)
        return subscript(dot, list(parts))

    def _variable(self, text: str) -> str:
        name, *parts = text[1:].split(".")
        if not name:
            if not parts:
                raise GoTemplateError("$ alone (the whole variable map) is not supported")
            return self.state.resolve(parts)
        return subscript(f"gv_{name}", list(parts))


def _call(name: str, args: list[str]) -> str:
    if name in ("and", "or"):
        if not args:
            raise GoTemplateError(f"{name} needs arguments")
        return "(" + f" {name} ".join(args) + ")"
    if name in _COMPARE:
        if len(args) < 2 or (name != "eq" and len(args) != 2):
            raise GoTemplateError(f"{name} needs two arguments")
        op = _COMPARE[name]
        return "(" + " or ".join(f"{args[0]} {op} {other}" for other in args[1:]) + ")"
    return _call_unary_or_more(name, args)


def _call_unary_or_more(name: str, args: list[str]) -> str:
    if name == "not":
        _arity(name, args, 1)
        return f"(not {args[0]})"
    if name == "len":
        _arity(name, args, 1)
        return f"({args[0]} | length)"
    if name == "index":
        if not args:
            raise GoTemplateError("index needs arguments")
        return args[0] + "".join(f"[{a}]" for a in args[1:])
    if name in ("print", "println"):
        joined = " ~ ".join(f"({a} | string)" for a in args) if args else "''"
        return f"({joined} ~ '\\n')" if name == "println" else f"({joined})"
    if name == "printf":
        if not args:
            raise GoTemplateError("printf needs a format")
        fmt = args[0].replace("%v", "%s").replace("%q", "%r")
        rest = ", ".join(args[1:])
        return f"({fmt} | format({rest}))"
    if name == "html":
        _arity(name, args, 1)
        return f"({args[0]} | string | escape | string)"
    if name == "urlquery":
        _arity(name, args, 1)
        return f"({args[0]} | string | urlencode)"
    if name == "js":
        _arity(name, args, 1)
        return f"({args[0]} | tojson)"
    raise GoTemplateError(f"function {name!r} is not supported")


def _arity(name: str, args: list[str], count: int) -> None:
    if len(args) != count:
        raise GoTemplateError(f"{name} takes {count} argument(s), got {len(args)}")
