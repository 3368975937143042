"""The FHIRPath subset of FHIRPath Patch paths (R4 fhirpatch.html), with locations.

A patch must know *where* each element of a path is to change it, which a general
FHIRPath engine does not say; this evaluator returns :class:`Node` locations.
Supported (anything else is refused with 400, never guessed at)::

    path      := Type? ( '.' step | '[' n ']' )*       Patient.name[0].given
    step      := element                                 choice elements by base name
               | 'where(' criteria ')'                   .where(system='urn:x')
               | 'first()' | 'last()'
               | 'ofType(' Type ')'                      Observation.value.ofType(Quantity)
               | 'extension(' 'url' ')'                  = extension.where(url='url')
    criteria  := term ( 'and' term )*
    term      := operand ( '=' | '!=' ) literal          code.coding.code = '1234'
    operand   := '$this' | element ( '.' element )*
    literal   := 'string' | number | true | false

``[n]`` indexes the whole collection so far (FHIRPath semantics); ``=`` holds when
the operand is exactly one value equal to the literal (of the same JSON type); an
empty operand satisfies neither ``=`` nor ``!=``. Element names are checked against
the resource's model (an unknown element is a 400); a choice element is named by its
base name (``value``) or by one typed JSON name (``valueQuantity``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fhir_server.errors import BadRequest
from fhir_server.rest.patch_model import element, model_of

_TOKEN = re.compile(
    r"\s*(?:(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<this>\$this)"
    r"|(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<op>!=|=|\.|\[|\]|\(|\)))"
)
_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n"}
_ESCAPES.update({"r": "\r", "t": "\t"})
MAX_PATH = 2000


@dataclass
class Node:
    """One element a path selected: ``parent[key]`` (``[index]`` in a list); ``base``
    is the element name (a choice element's ``value`` for ``valueQuantity``)."""

    value: object
    parent: dict | None  # None: the resource itself
    key: str | None
    index: int | None
    model: type | None
    base: str | None
    parent_model: type | None


def unsupported(path: str, why: str) -> BadRequest:
    return BadRequest(
        f"FHIRPath {path[:200]!r}: {why}. This server supports element paths with [n], "
        "where(<element> = <literal> [and ...]), first(), last(), ofType() and extension(url)."
    )


def parse_path(text: object) -> tuple[tuple, ...]:
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_PATH:
        raise BadRequest("A FHIRPath Patch path must be a non-empty string.")
    tokens = _tokens(text)
    parser = _Parser(text, tokens)
    steps = parser.path()
    if parser.pos != len(tokens):
        raise unsupported(text, f"unexpected {tokens[parser.pos][1]!r}")
    return tuple(steps)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise unsupported(text, f"cannot read {text[pos : pos + 20]!r}")
        kind = match.lastgroup
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str, tokens: list[tuple[str, str]]):
        self.text, self.tokens, self.pos = text, tokens, 0

    def peek(self, value: str | None = None, kind: str | None = None) -> bool:
        if self.pos >= len(self.tokens):
            return False
        token_kind, token = self.tokens[self.pos]
        return (value is None or token == value) and (kind is None or token_kind == kind)

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        if not self.peek(value, kind):
            found = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "the end"
            raise unsupported(self.text, f"expected {value or kind}, found {found!r}")
        self.pos += 1
        return self.tokens[self.pos - 1][1]

    def path(self) -> list[tuple]:
        first = self.take(kind="ident")
        if self.peek("("):
            raise unsupported(self.text, "a path starts with the resource type or an element")
        steps: list[tuple] = [("type", first) if first[0].isupper() else ("name", first)]
        while self.pos < len(self.tokens):
            if self.peek("["):
                self.take("[")
                index = self.take(kind="number")
                self.take("]")
                if not (index.isascii() and index.isdigit()):
                    raise unsupported(self.text, f"index {index} is not a non-negative integer")
                steps.append(("index", int(index)))
                continue
            self.take(".")
            name = self.take(kind="ident")
            steps.append(self.function(name) if self.peek("(") else ("name", name))
        return steps

    def function(self, name: str) -> tuple:
        self.take("(")
        if name in ("first", "last"):
            self.take(")")
            return (name,)
        if name == "where":
            criteria = [self.term()]
            while self.peek("and", "ident"):
                self.take("and")
                criteria.append(self.term())
            self.take(")")
            return ("where", tuple(criteria))
        if name == "ofType":
            kind = self.take(kind="ident")
            self.take(")")
            return ("ofType", kind)
        if name == "extension":
            url = _string(self.take(kind="string"))
            self.take(")")
            return ("extension", url)
        raise unsupported(self.text, f"the function {name}() is not supported")

    def term(self) -> tuple:
        if self.peek(kind="this"):
            self.take(kind="this")
            operand: tuple[str, ...] = ()
        else:
            names = [self.take(kind="ident")]
            while self.peek("."):
                self.take(".")
                names.append(self.take(kind="ident"))
            operand = tuple(names)
        if not (self.peek("=") or self.peek("!=")):
            raise unsupported(self.text, "a where() criterion is <element> = <literal>")
        operator = self.take()
        return (operand, operator, self.literal())

    def literal(self):
        if self.peek(kind="string"):
            return _string(self.take())
        if self.peek(kind="number"):
            text = self.take()
            return float(text) if "." in text else int(text)
        if self.peek("true") or self.peek("false"):
            return self.take() == "true"
        raise unsupported(self.text, "a where() criterion compares with a literal")


def _string(token: str) -> str:
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            code = body[i + 1]
            if code == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            if code not in _ESCAPES:
                raise BadRequest(f"Unknown escape \\{code} in a FHIRPath string.")
            out.append(_ESCAPES[code])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


# -- evaluation -------------------------------------------------------------------------
def evaluate(resource: dict, root_model: type | None, steps: tuple, text: str) -> list[Node]:
    nodes = [Node(resource, None, None, None, root_model, None, None)]
    for position, step in enumerate(steps):
        kind = step[0]
        if kind == "type":
            if position or step[1] != resource.get("resourceType"):
                raise BadRequest(
                    f"FHIRPath {text[:200]!r}: the path must start with the resource's type "
                    f"{resource.get('resourceType')!r} or one of its elements."
                )
        elif kind == "name":
            nodes = [child for node in nodes for child in children(node, step[1], text)]
        elif kind == "index":
            nodes = nodes[step[1] : step[1] + 1]
        elif kind == "first":
            nodes = nodes[:1]
        elif kind == "last":
            nodes = nodes[-1:]
        elif kind == "where":
            nodes = [n for n in nodes if all(_holds(n.value, term) for term in step[1])]
        elif kind == "ofType":
            nodes = [n for n in nodes if n.key and n.base and n.key == n.base + step[1]]
        else:  # extension(url)
            found = [child for node in nodes for child in children(node, "extension", text)]
            nodes = [n for n in found if type(n.value) is dict and n.value.get("url") == step[1]]
    return nodes


def children(node: Node, name: str, text: str) -> list[Node]:
    value = node.value
    if type(value) is not dict:
        return []
    if node.model is not None:
        found = element(node.model, name)
        if found is None:
            raise BadRequest(
                f"FHIRPath {text[:200]!r}: {node.model.__name__} has no element {name!r}."
            )
        keys = {k: m for k, m in found.keys.items() if k in value}
    else:
        keys = {k: None for k in value if k == name or _choice_of(k, name)}
    out = []
    for key, declared in keys.items():
        content = value[key]
        items = enumerate(content) if type(content) is list else [(None, content)]
        for index, item in items:
            out.append(Node(item, value, key, index, model_of(item, declared), name, node.model))
    return out


def _choice_of(key: str, name: str) -> bool:
    return key.startswith(name) and len(key) > len(name) and key[len(name)].isupper()


def _holds(value: object, term: tuple) -> bool:
    operand, operator, literal = term
    found = [value]
    for name in operand:
        step = []
        for item in found:
            if type(item) is not dict:
                continue
            for key, content in item.items():
                if key == name or _choice_of(key, name):
                    step.extend(content if type(content) is list else [content])
        found = step
    if not found:
        return False  # empty: neither = nor != holds
    equal = len(found) == 1 and _same(found[0], literal)
    return equal if operator == "=" else not equal


def _same(value: object, literal: object) -> bool:
    if isinstance(literal, bool) or isinstance(value, bool):
        return type(value) is bool and type(literal) is bool and value == literal
    if isinstance(literal, int | float):
        return isinstance(value, int | float) and value == literal
    return isinstance(value, str) and value == literal
