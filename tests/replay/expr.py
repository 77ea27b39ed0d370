"""expr.py — the expression languages of Azure Pipelines and GitHub Actions, the subset the
pipelines in this repository use, evaluated the way the services evaluate them.

Both dialects share literals ('text' with '' for a quote, numbers, true/false/null), property
access (a.b, a['b'], a[0]) and function calls. GitHub adds the operators ! == != < <= > >= &&
||; Azure spells those as functions (not, eq, ne, lt, le, gt, ge, and, or). Anything else — an
unknown function, operator or character — is an ExprError: the replay fails rather than guess.

Lookups go through the contexts the caller passes. A context that is a Strict mapping raises
ReplayError on a missing key: that is how a reference to an output nobody wrote fails the
replay instead of quietly becoming '' as it would on the real runners.
"""

import json
import math
import re


class ReplayError(Exception):
    """The pipeline does something the runner would not do as its author meant."""


class ExprError(ReplayError):
    """An expression the replay does not understand or cannot evaluate."""


class Strict:
    """A case-insensitive mapping whose missing keys are errors, with a message that says why."""

    def __init__(self, items, what):
        self._items = {}
        for k, v in dict(items).items():
            self._items[k.lower()] = (k, v)
        self.what = what  # e.g. "outputs of step train in job Train"

    def get(self, key):
        hit = self._items.get(str(key).lower())
        if hit is None:
            known = ", ".join(sorted(k for k, _ in self._items.values())) or "none"
            raise ReplayError(f"{key!r} is not among the {self.what} (there: {known})")
        value = hit[1]
        return value() if isinstance(value, Lazy) else value

    def has(self, key):
        return str(key).lower() in self._items

    def keys(self):
        return [k for k, _ in self._items.values()]

    def to_plain(self):
        return {k: (v() if isinstance(v, Lazy) else v) for k, v in self._items.values()}


class Loose(Strict):
    """A mapping whose missing keys are null, as the runners' variables are."""

    def get(self, key):
        hit = self._items.get(str(key).lower())
        if hit is None:
            return None
        value = hit[1]
        return value() if isinstance(value, Lazy) else value


class Lazy:
    """A value computed when an expression reads it (a composite action's outputs)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self):
        return self.fn()


# ---------------------------------------------------------------------------------------------
# Tokens and syntax

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<num>0x[0-9a-fA-F]+|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<str>'(?:[^']|'')*')"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[()\[\],.!<>*])"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_-]*)"
    r")"
)


def tokenize(text):
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"cannot read the expression at {text[pos:pos + 20]!r} in {text!r}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "num" and tokens and tokens[-1][0] in ("num", "str", "ident") or (
            kind == "num" and tokens and tokens[-1] == ("op", ")")
        ):
            raise ExprError(f"unexpected number {value!r} in {text!r}")
        tokens.append((kind, value))
    return tokens


class Parser:
    def __init__(self, text, dialect):
        self.text = text
        self.dialect = dialect
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self, k=0):
        j = self.i + k
        return self.tokens[j] if j < len(self.tokens) else (None, None)

    def take(self, kind=None, value=None):
        tok = self.peek()
        if tok[0] is None or (kind and tok[0] != kind) or (value is not None and tok[1] != value):
            raise ExprError(f"expected {value or kind} at token {tok[1]!r} in {self.text!r}")
        self.i += 1
        return tok

    def parse(self):
        node = self.expr_or()
        if self.peek()[0] is not None:
            raise ExprError(f"unexpected {self.peek()[1]!r} in {self.text!r}")
        return node

    def expr_or(self):
        node = self.expr_and()
        while self.peek() == ("op", "||"):
            self.need_github("||")
            self.i += 1
            node = ("or", node, self.expr_and())
        return node

    def expr_and(self):
        node = self.expr_cmp()
        while self.peek() == ("op", "&&"):
            self.need_github("&&")
            self.i += 1
            node = ("and", node, self.expr_cmp())
        return node

    def expr_cmp(self):
        node = self.expr_unary()
        while self.peek()[0] == "op" and self.peek()[1] in ("==", "!=", "<", "<=", ">", ">="):
            op = self.take()[1]
            self.need_github(op)
            node = ("cmp", op, node, self.expr_unary())
        return node

    def expr_unary(self):
        if self.peek() == ("op", "!"):
            self.need_github("!")
            self.i += 1
            return ("not", self.expr_unary())
        return self.expr_postfix()

    def expr_postfix(self):
        node = self.expr_primary()
        while True:
            tok = self.peek()
            if tok == ("op", "."):
                self.i += 1
                kind, name = self.take()
                if kind not in ("ident", "num"):
                    raise ExprError(f"expected a property name after '.' in {self.text!r}")
                node = ("prop", node, name)
            elif tok == ("op", "["):
                self.i += 1
                if self.peek() == ("op", "*"):
                    raise ExprError(f"object filters (*) are not supported: {self.text!r}")
                index = self.expr_or()
                self.take("op", "]")
                node = ("index", node, index)
            else:
                return node

    def expr_primary(self):
        kind, value = self.take()
        if kind == "num":
            return ("lit", int(value, 16) if value.lower().startswith("0x") else
                    (float(value) if any(c in value for c in ".eE") else int(value)))
        if kind == "str":
            return ("lit", value[1:-1].replace("''", "'"))
        if kind == "op" and value == "(":
            node = self.expr_or()
            self.take("op", ")")
            return node
        if kind == "ident":
            low = value.lower()
            if self.peek() == ("op", "("):
                self.i += 1
                args = []
                if self.peek() != ("op", ")"):
                    args.append(self.expr_or())
                    while self.peek() == ("op", ","):
                        self.i += 1
                        args.append(self.expr_or())
                self.take("op", ")")
                return ("call", low, args)
            if low in ("true", "false"):
                return ("lit", low == "true")
            if low == "null":
                return ("lit", None)
            if self.dialect == "github" and low in ("nan", "infinity"):
                return ("lit", math.nan if low == "nan" else math.inf)
            return ("ctx", value)
        raise ExprError(f"unexpected {value!r} in {self.text!r}")

    def need_github(self, op):
        if self.dialect != "github":
            raise ExprError(f"operator {op!r} is GitHub syntax; Azure Pipelines writes functions: {self.text!r}")


def parse(text, dialect):
    return Parser(text, dialect).parse()


# ---------------------------------------------------------------------------------------------
# Values

def to_string(value, dialect):
    if value is None:
        return ""
    if isinstance(value, bool):
        return ("True" if value else "False") if dialect == "azure" else ("true" if value else "false")
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (Strict, dict, list)):
        return json.dumps(plain(value), indent=2)
    return str(value)


def plain(value):
    if isinstance(value, Strict):
        return {k: plain(v) for k, v in value.to_plain().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def truthy(value):
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return not (value == 0 or (isinstance(value, float) and math.isnan(value)))
    if isinstance(value, str):
        return value != ""
    return True


def to_number(value):
    if value is None:
        return 0
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        s = value.strip()
        if s == "":
            return 0
        try:
            return int(s, 16) if s.lower().startswith("0x") else float(s)
        except ValueError:
            return math.nan
    return math.nan


def github_equal(a, b):
    """GitHub: strings compare without case; other mixed types compare as numbers."""
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if a is None and b is None:
        return True
    if type(a) is type(b) and not isinstance(a, (str, int, float)):
        return a is b
    if isinstance(a, (dict, list, Strict)) or isinstance(b, (dict, list, Strict)):
        return a is b
    x, y = to_number(a), to_number(b)
    return x == y


def azure_equal(a, b):
    """Azure: the right side is converted to the left side's type; strings ignore case."""
    if isinstance(a, str):
        return a.lower() == to_string(b, "azure").lower()
    if isinstance(a, bool):
        if isinstance(b, str):
            if b.lower() in ("true", "false"):
                return a == (b.lower() == "true")
            return False
        return a == truthy(b)
    if isinstance(a, (int, float)):
        return a == to_number(b)
    if a is None:
        return b is None or b == ""
    return a is b


# ---------------------------------------------------------------------------------------------
# Evaluation

class Context:
    """Top-level names (parameters, variables, steps, needs, ...) and the status functions."""

    def __init__(self, dialect, names, status=None, where=""):
        self.dialect = dialect
        self.names = {k.lower(): v for k, v in names.items()}
        self.status = status or {}  # function name -> callable
        self.where = where

    def lookup(self, name):
        key = name.lower()
        if key not in self.names:
            raise ExprError(f"{name!r} is not a context the replay knows here ({self.where}); "
                            f"known: {', '.join(sorted(self.names))}")
        return self.names[key]


def member(obj, key, dialect, path):
    if isinstance(obj, Strict):
        return obj.get(key)
    if isinstance(obj, dict):
        for k, v in obj.items():
            if str(k).lower() == str(key).lower():
                return v
        return None
    if isinstance(obj, list):
        if isinstance(key, (int, float)) and not isinstance(key, bool) and 0 <= int(key) < len(obj):
            return obj[int(key)]
        return None
    if obj is None:
        if dialect == "github":
            return None
        raise ExprError(f"{path}: cannot read {key!r} of null")
    raise ExprError(f"{path}: cannot read {key!r} of {type(obj).__name__} {obj!r}")


def evaluate(node, ctx, path=""):
    kind = node[0]
    d = ctx.dialect
    if kind == "lit":
        return node[1]
    if kind == "ctx":
        return ctx.lookup(node[1])
    if kind == "prop":
        base = evaluate(node[1], ctx, path)
        return member(base, node[2], d, describe(node))
    if kind == "index":
        base = evaluate(node[1], ctx, path)
        key = evaluate(node[2], ctx, path)
        return member(base, key, d, describe(node))
    if kind == "not":
        return not truthy(evaluate(node[1], ctx, path))
    if kind == "and":
        left = evaluate(node[1], ctx, path)
        return evaluate(node[2], ctx, path) if truthy(left) else left
    if kind == "or":
        left = evaluate(node[1], ctx, path)
        return left if truthy(left) else evaluate(node[2], ctx, path)
    if kind == "cmp":
        op, a, b = node[1], evaluate(node[2], ctx, path), evaluate(node[3], ctx, path)
        if op == "==":
            return github_equal(a, b)
        if op == "!=":
            return not github_equal(a, b)
        if isinstance(a, str) and isinstance(b, str):
            x, y = a.lower(), b.lower()
        else:
            x, y = to_number(a), to_number(b)
        return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
    if kind == "call":
        return call(node[1], node[2], ctx, path)
    raise ExprError(f"cannot evaluate {node!r}")


def describe(node):
    kind = node[0]
    if kind == "ctx":
        return node[1]
    if kind == "prop":
        return f"{describe(node[1])}.{node[2]}"
    if kind == "index":
        key = node[2]
        inner = f"'{key[1]}'" if key[0] == "lit" and isinstance(key[1], str) else "…"
        return f"{describe(node[1])}[{inner}]"
    if kind == "call":
        return f"{node[1]}(…)"
    return "…"


def _args(args, ctx, path, n=None, lo=None, hi=None, name=""):
    if n is not None and len(args) != n:
        raise ExprError(f"{name}() takes {n} argument(s), got {len(args)}")
    if lo is not None and len(args) < lo or hi is not None and len(args) > hi:
        raise ExprError(f"{name}() takes {lo}..{hi} arguments, got {len(args)}")
    return [evaluate(a, ctx, path) for a in args]


def _format(fmt, values, dialect):
    out, i = [], 0
    while i < len(fmt):
        c = fmt[i]
        if c == "{" and fmt[i:i + 2] == "{{":
            out.append("{")
            i += 2
        elif c == "}" and fmt[i:i + 2] == "}}":
            out.append("}")
            i += 2
        elif c == "{":
            j = fmt.index("}", i)
            spec = fmt[i + 1:j]
            if not spec.isdigit() or int(spec) >= len(values):
                raise ExprError(f"format(): bad placeholder {{{spec}}} in {fmt!r}")
            out.append(to_string(values[int(spec)], dialect))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def call(name, args, ctx, path):
    d = ctx.dialect
    if name in ctx.status:
        if args:
            raise ExprError(f"{name}() with arguments is not supported by the replay")
        return ctx.status[name]()
    # Short-circuiting logic (Azure functions; GitHub uses operators).
    if d == "azure" and name == "and":
        if len(args) < 2:
            raise ExprError("and() takes at least 2 arguments")
        for a in args:
            if not truthy(evaluate(a, ctx, path)):
                return False
        return True
    if d == "azure" and name == "or":
        if len(args) < 2:
            raise ExprError("or() takes at least 2 arguments")
        for a in args:
            if truthy(evaluate(a, ctx, path)):
                return True
        return False
    if d == "azure" and name == "not":
        (v,) = _args(args, ctx, path, 1, name=name)
        return not truthy(v)
    if d == "azure" and name in ("eq", "ne"):
        a, b = _args(args, ctx, path, 2, name=name)
        return azure_equal(a, b) if name == "eq" else not azure_equal(a, b)
    if d == "azure" and name in ("gt", "ge", "lt", "le"):
        a, b = _args(args, ctx, path, 2, name=name)
        if isinstance(a, str):
            x, y = a.lower(), to_string(b, d).lower()
        else:
            x, y = to_number(a), to_number(b)
        return {"gt": x > y, "ge": x >= y, "lt": x < y, "le": x <= y}[name]
    if d == "azure" and name in ("in", "notin"):
        vals = _args(args, ctx, path, lo=1, name=name)
        found = any(azure_equal(vals[0], v) for v in vals[1:])
        return found if name == "in" else not found
    if d == "azure" and name == "coalesce":
        for a in args:
            v = evaluate(a, ctx, path)
            if v is not None and v != "":
                return v
        return None
    if name == "contains":
        a, b = _args(args, ctx, path, 2, name=name)
        if isinstance(a, list):
            return any((github_equal if d == "github" else azure_equal)(x, b) for x in a)
        return to_string(b, d).lower() in to_string(a, d).lower()
    if name in ("startswith", "endswith"):
        a, b = _args(args, ctx, path, 2, name=name)
        a, b = to_string(a, d).lower(), to_string(b, d).lower()
        return a.startswith(b) if name == "startswith" else a.endswith(b)
    if name == "format":
        vals = _args(args, ctx, path, lo=1, name=name)
        return _format(to_string(vals[0], d), vals[1:], d)
    if name == "join":
        if d == "azure":
            sep, coll = _args(args, ctx, path, 2, name=name)
        else:
            vals = _args(args, ctx, path, lo=1, hi=2, name=name)
            coll, sep = vals[0], (vals[1] if len(vals) > 1 else ",")
        if not isinstance(coll, list):
            return to_string(coll, d)
        return to_string(sep, d).join(to_string(x, d) for x in coll)
    if d == "azure" and name == "split":
        s, sep = _args(args, ctx, path, 2, name=name)
        return to_string(s, d).split(to_string(sep, d))
    if d == "azure" and name == "replace":
        s, old, new = _args(args, ctx, path, 3, name=name)
        return to_string(s, d).replace(to_string(old, d), to_string(new, d))
    if d == "azure" and name in ("lower", "upper"):
        (s,) = _args(args, ctx, path, 1, name=name)
        s = to_string(s, d)
        return s.lower() if name == "lower" else s.upper()
    if d == "azure" and name == "length":
        (v,) = _args(args, ctx, path, 1, name=name)
        return len(plain(v)) if v is not None else 0
    if d == "azure" and name == "converttojson":
        (v,) = _args(args, ctx, path, 1, name=name)
        return json.dumps(plain(v), indent=2)
    if d == "github" and name == "tojson":
        (v,) = _args(args, ctx, path, 1, name=name)
        return json.dumps(plain(v), indent=2)
    if d == "github" and name == "fromjson":
        (v,) = _args(args, ctx, path, 1, name=name)
        try:
            return json.loads(to_string(v, d))
        except ValueError as e:
            raise ReplayError(f"fromJSON({v!r}): {e}") from None
    raise ExprError(f"function {name}() is not one the replay implements for {d}")


# ---------------------------------------------------------------------------------------------
# ${{ }} in text

def find_templates(text):
    """(start, end, inner) for each ${{ ... }} in text; quotes inside are respected."""
    out, i = [], 0
    while True:
        start = text.find("${{", i)
        if start < 0:
            return out
        j, quoted = start + 3, False
        while j < len(text):
            if text[j] == "'":
                quoted = not quoted
            elif not quoted and text.startswith("}}", j):
                break
            j += 1
        else:
            raise ExprError(f"no closing }}}} for the expression at {text[start:start + 40]!r}")
        out.append((start, j + 2, text[start + 3:j]))
        i = j + 2


def interpolate(text, ctx, path=""):
    """Evaluates every ${{ }} in text. A text that is exactly one expression keeps its type."""
    spans = find_templates(text)
    if not spans:
        return text
    if len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == len(text):
        return evaluate(parse(spans[0][2], ctx.dialect), ctx, path)
    out, pos = [], 0
    for start, end, inner in spans:
        out.append(text[pos:start])
        out.append(to_string(evaluate(parse(inner, ctx.dialect), ctx, path), ctx.dialect))
        pos = end
    out.append(text[pos:])
    return "".join(out)
