"""template.py — just enough ARM template semantics to deploy, validate and what-if for real.

Parameters are checked the way Resource Manager checks them (unknown, missing, type,
allowedValues, length and value bounds), expressions are parsed and evaluated for the common
functions (parameters, variables, concat, format, resourceId, resourceGroup, uniqueString, ...),
and a reference to an undeclared parameter or variable anywhere in the template fails
validation. Functions that need a live deployment (reference, list*) are not evaluated: the
value becomes "<unevaluated: ...>" and a Warning diagnostic says so.
Contract: /work/shared/reference/azure/arm/deployments-2025-04-01.extract.json.
"""
import base64
import hashlib
import json
import re
import uuid

SCHEMA_KEYS = {"$schema", "contentVersion", "apiProfile", "parameters", "variables", "functions",
               "resources", "outputs", "metadata", "languageVersion", "definitions", "imports",
               "extensions"}
PARAM_TYPES = {"string": "String", "securestring": "SecureString", "int": "Int", "bool": "Bool",
               "object": "Object", "secureobject": "SecureObject", "array": "Array"}
JTOKEN = {"string": "String", "securestring": "String", "int": "Integer", "bool": "Boolean",
          "object": "Object", "secureobject": "Object", "array": "Array"}
SECURE = ("securestring", "secureobject")


class TemplateError(Exception):
    """Becomes 400 {"error": {"code": code, ...}}."""

    def __init__(self, message, code="InvalidTemplate", target=None):
        super().__init__(message)
        self.code = code
        self.target = target


class Unsupported(Exception):
    pass


def validation_failed(inner):
    return TemplateError("Deployment template validation failed: '%s'." % inner)


def jtoken(v):
    if isinstance(v, bool):
        return "Boolean"
    if isinstance(v, int):
        return "Integer"
    if isinstance(v, float):
        return "Float"
    if isinstance(v, str):
        return "String"
    if isinstance(v, list):
        return "Array"
    if isinstance(v, dict):
        return "Object"
    return "Null"


def is_expression(s):
    return isinstance(s, str) and s.startswith("[") and s.endswith("]") and not s.startswith("[[")


# ---- expression parser ----------------------------------------------------------------

TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+)|(?P<id>[A-Za-z_][\w]*)"
                   r"|(?P<punct>[(),.\[\]]))")


def tokenize(text):
    pos, out = 0, []
    text = text.rstrip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise TemplateError("The template language expression '%s' is not valid: unexpected "
                                "character at position %d." % (text, pos))
        pos = m.end()
        kind = m.lastgroup
        val = m.group(kind)
        if kind == "str":
            val = val[1:-1].replace("''", "'")
        elif kind == "num":
            val = int(val)
        out.append((kind, val))
    return out


class Parser:
    def __init__(self, text):
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, punct=None):
        tok = self.peek()
        if tok[0] is None or (punct and tok != ("punct", punct)):
            raise TemplateError("The template language expression '%s' is not valid: expected "
                                "'%s'." % (self.text, punct or "more input"))
        self.i += 1
        return tok

    def parse(self):
        node = self.expr()
        if self.i != len(self.toks):
            raise TemplateError("The template language expression '%s' is not valid: unexpected "
                                "'%s'." % (self.text, self.peek()[1]))
        return node

    def expr(self):
        kind, val = self.take()
        if kind == "str":
            node = ("lit", val)
        elif kind == "num":
            node = ("lit", val)
        elif kind == "id":
            self.take("(")
            args = []
            if self.peek() != ("punct", ")"):
                args.append(self.expr())
                while self.peek() == ("punct", ","):
                    self.take(",")
                    args.append(self.expr())
            self.take(")")
            node = ("call", val.lower(), args)
        else:
            raise TemplateError("The template language expression '%s' is not valid." % self.text)
        while self.peek() in (("punct", "."), ("punct", "[")):
            if self.take()[1] == ".":
                kind, name = self.take()
                if kind != "id":
                    raise TemplateError("The template language expression '%s' is not valid: "
                                        "a property name must follow '.'." % self.text)
                node = ("prop", node, name)
            else:
                idx = self.expr()
                self.take("]")
                node = ("index", node, idx)
        return node


def referenced_names(node, fn):
    """Literal first arguments of every call to `fn` in a parsed expression."""
    out = []
    if node[0] == "call":
        if node[1] == fn and node[2] and node[2][0][0] == "lit":
            out.append(node[2][0][1])
        for a in node[2]:
            out += referenced_names(a, fn)
    elif node[0] in ("prop", "index"):
        out += referenced_names(node[1], fn)
        if node[0] == "index":
            out += referenced_names(node[2], fn)
    return out


def all_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from all_strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from all_strings(v)


# ---- evaluation ---------------------------------------------------------------------------

class Context:
    def __init__(self, template, sub, rg, location, deployment, tenant):
        self.template = template
        self.sub, self.rg, self.location = sub, rg, location
        self.deployment, self.tenant = deployment, tenant
        self.params = {}  # name (lower) -> value
        self.decl = {k.lower(): v for k, v in (template.get("parameters") or {}).items()}
        self.vars_raw = {k.lower(): v for k, v in (template.get("variables") or {}).items()}
        self.vars = {}
        self.resolving = set()
        self.copy = {}  # copy loop name -> index; "" is the current loop
        self.warnings = []

    # -- values
    def value(self, v, where):
        if isinstance(v, str):
            if is_expression(v):
                try:
                    return self.evaluate(v[1:-1], where)
                except Unsupported as e:
                    self.warnings.append("%s: %s is not evaluated by azure_fake" % (where, e))
                    return "<unevaluated: %s>" % v
            return v[1:] if v.startswith("[[") else v
        if isinstance(v, list):
            return [self.value(x, where) for x in v]
        if isinstance(v, dict):
            return {k: self.value(x, where) for k, x in v.items()}
        return v

    def evaluate(self, text, where):
        try:
            node = Parser(text).parse()
        except TemplateError as e:
            raise validation_failed("The template %s is not valid: %s" % (where, e))
        return self.eval(node, where)

    def eval(self, node, where):
        if node[0] == "lit":
            return node[1]
        if node[0] == "prop":
            base = self.eval(node[1], where)
            if not isinstance(base, dict):
                raise validation_failed("The template %s is not valid: the language expression "
                                        "property '%s' can't be evaluated." % (where, node[2]))
            for k, v in base.items():
                if k.lower() == node[2].lower():
                    return v
            raise validation_failed("The template %s is not valid: The language expression "
                                    "property '%s' doesn't exist, available properties are "
                                    "'%s'." % (where, node[2], ", ".join(base)))
        if node[0] == "index":
            base, idx = self.eval(node[1], where), self.eval(node[2], where)
            try:
                if isinstance(base, dict):
                    return {k.lower(): v for k, v in base.items()}[str(idx).lower()]
                return base[idx]
            except (KeyError, IndexError, TypeError):
                raise validation_failed("The template %s is not valid: index '%s' is out of "
                                        "range." % (where, idx))
        name, args = node[1], node[2]
        if name == "if":  # lazy: only the chosen branch is evaluated
            if len(args) != 3:
                raise validation_failed("The template %s is not valid: if() takes 3 arguments."
                                        % where)
            return self.eval(args[1] if self.eval(args[0], where) else args[2], where)
        fn = FUNCTIONS.get(name)
        if fn is None:
            if name in ("reference", "list", "listkeys", "listsecrets", "listaccountsas",
                        "pickzones", "providers", "managementgroup", "utcnow", "newguid",
                        "extensionresourceid", "tenantresourceid", "managementgroupresourceid"):
                raise Unsupported("%s()" % name)
            if name.startswith("list"):
                raise Unsupported("%s()" % name)
            raise validation_failed("The template %s is not valid: The template function '%s' is "
                                    "not valid. Please see https://aka.ms/arm-functions for "
                                    "usage details." % (where, name))
        vals = [self.eval(a, where) for a in args]
        try:
            return fn(self, where, *vals)
        except TemplateError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError) as e:
            raise validation_failed("The template %s is not valid: function '%s' failed: %s"
                                    % (where, name, e))

    def parameter(self, name, where):
        key = name.lower()
        if key not in self.decl:
            raise validation_failed("The template %s is not valid: The template parameter '%s' "
                                    "is not found. Please see https://aka.ms/arm-syntax-parameters "
                                    "for usage details." % (where, name))
        return self.params[key]

    def variable(self, name, where):
        key = name.lower()
        if key not in self.vars_raw:
            raise validation_failed("The template %s is not valid: The template variable '%s' is "
                                    "not found. Please see https://aka.ms/arm-syntax-variables "
                                    "for usage details." % (where, name))
        if key not in self.vars:
            if key in self.resolving:
                raise validation_failed("The template variable '%s' refers to itself." % name)
            self.resolving.add(key)
            self.vars[key] = self.value(self.vars_raw[key], "variable '%s'" % name)
            self.resolving.discard(key)
        return self.vars[key]

    def resource_group(self):
        return {"id": "/subscriptions/%s/resourceGroups/%s" % (self.sub, self.rg),
                "name": self.rg, "type": "Microsoft.Resources/resourceGroups",
                "location": self.location, "tags": {},
                "properties": {"provisioningState": "Succeeded"}}


def unique_string(*parts):
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return base64.b32encode(digest).decode().lower()[:13]


def resource_id(sub, rg, rtype, names):
    ns, _, types = rtype.partition("/")
    tparts = [t for t in types.split("/") if t]
    if not ns or not tparts or len(tparts) != len(names):
        raise validation_failed("The template resource '%s' for type '%s' has incorrect segment "
                                "lengths. A nested resource type must have identical number of "
                                "segments as its resource name. A root resource type must have "
                                "segment length one greater than its resource name."
                                % ("/".join(names), rtype))
    path = "/subscriptions/%s/resourceGroups/%s/providers/%s" % (sub, rg, ns)
    for t, n in zip(tparts, names):
        path += "/%s/%s" % (t, n)
    return path


def _resource_id_fn(ctx, where, *args):
    args = [str(a) for a in args]
    ti = next((i for i, a in enumerate(args) if "/" in a and "." in a.split("/")[0]), None)
    if ti is None:
        raise ValueError("resourceId() needs a resource type such as 'Microsoft.X/y'")
    before = args[:ti]
    sub = before[0] if len(before) == 2 else ctx.sub
    rg = before[-1] if before else ctx.rg
    names = "/".join(args[ti + 1:]).split("/")
    return resource_id(sub, rg, args[ti], names)


def _format(ctx, where, fmt, *args):
    def sub(m):
        i = int(m.group(1))
        v = args[i]
        return json.dumps(v) if isinstance(v, (dict, list)) else (
            str(v).lower() if isinstance(v, bool) else str(v))
    return re.sub(r"\{(\d+)(?::[^}]*)?\}", sub, fmt)


def _concat(ctx, where, *args):
    if args and all(isinstance(a, list) for a in args):
        return [x for a in args for x in a]
    return "".join(json.dumps(a) if isinstance(a, (dict, list)) else str(a) for a in args)


def _copy_index(ctx, where, *args):
    loop, offset = "", 0
    for a in args:
        if isinstance(a, int):
            offset = a
        else:
            loop = a.lower()
    if loop not in ctx.copy:
        raise validation_failed("The template %s is not valid: copyIndex() used outside of a "
                                "copy loop." % where)
    return ctx.copy[loop] + offset


def _union(ctx, where, *args):
    if all(isinstance(a, dict) for a in args):
        out = {}
        for a in args:
            out.update(a)
        return out
    out = []
    for a in args:
        for x in a:
            if x not in out:
                out.append(x)
    return out


def _string(ctx, where, v):
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v).lower() if isinstance(v, bool) else str(v)


def _bool(ctx, where, v):
    if isinstance(v, str):
        if v.lower() not in ("true", "false"):
            raise ValueError("'%s' is not a boolean" % v)
        return v.lower() == "true"
    return bool(v)


FUNCTIONS = {
    "parameters": lambda c, w, n: c.parameter(n, w),
    "variables": lambda c, w, n: c.variable(n, w),
    "resourcegroup": lambda c, w: c.resource_group(),
    "subscription": lambda c, w: {"id": "/subscriptions/" + c.sub, "subscriptionId": c.sub,
                                  "tenantId": c.tenant, "displayName": "azure_fake"},
    "tenant": lambda c, w: {"tenantId": c.tenant, "countryCode": "NL", "displayName": "fake"},
    "deployment": lambda c, w: {"name": c.deployment, "properties": {"templateLink": None}},
    "environment": lambda c, w: {"name": "AzureCloud", "resourceManager":
                                 "https://management.azure.com/",
                                 "suffixes": {"storage": "core.windows.net"}},
    "resourceid": _resource_id_fn,
    "subscriptionresourceid": lambda c, w, t, *n: "/subscriptions/%s/providers/%s/%s" % (
        c.sub, t, "/".join(n)),
    "concat": _concat,
    "format": _format,
    "tolower": lambda c, w, s: s.lower(),
    "toupper": lambda c, w, s: s.upper(),
    "trim": lambda c, w, s: s.strip(),
    "replace": lambda c, w, s, a, b: s.replace(a, b),
    "substring": lambda c, w, s, i, n=None: s[i:] if n is None else s[i:i + n],
    "take": lambda c, w, s, n: s[:n],
    "skip": lambda c, w, s, n: s[n:],
    "startswith": lambda c, w, s, p: s.lower().startswith(p.lower()),
    "endswith": lambda c, w, s, p: s.lower().endswith(p.lower()),
    "split": lambda c, w, s, d: s.split(d) if isinstance(d, str) else re.split(
        "|".join(map(re.escape, d)), s),
    "join": lambda c, w, a, d: d.join(str(x) for x in a),
    "padleft": lambda c, w, s, n, ch=" ": str(s).rjust(n, ch),
    "uniquestring": lambda c, w, *p: unique_string(*p),
    "guid": lambda c, w, *p: str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join(map(str, p)))),
    "base64": lambda c, w, s: base64.b64encode(s.encode()).decode(),
    "string": _string,
    "int": lambda c, w, v: int(v),
    "bool": _bool,
    "json": lambda c, w, s: json.loads(s),
    "length": lambda c, w, v: len(v),
    "empty": lambda c, w, v: v is None or len(v) == 0,
    "contains": lambda c, w, h, n: (n.lower() in h.lower()) if isinstance(h, str) else (
        n in h),
    "equals": lambda c, w, a, b: a == b,
    "not": lambda c, w, a: not a,
    "and": lambda c, w, *a: all(a),
    "or": lambda c, w, *a: any(a),
    "true": lambda c, w: True,
    "false": lambda c, w: False,
    "null": lambda c, w: None,
    "coalesce": lambda c, w, *a: next((x for x in a if x is not None), None),
    "first": lambda c, w, a: a[0],
    "last": lambda c, w, a: a[-1],
    "union": _union,
    "createobject": lambda c, w, *a: {a[i]: a[i + 1] for i in range(0, len(a), 2)},
    "createarray": lambda c, w, *a: list(a),
    "array": lambda c, w, v: v if isinstance(v, list) else [v],
    "add": lambda c, w, a, b: a + b,
    "sub": lambda c, w, a, b: a - b,
    "mul": lambda c, w, a, b: a * b,
    "div": lambda c, w, a, b: int(a / b),
    "mod": lambda c, w, a, b: a % b,
    "min": lambda c, w, *a: min(a[0] if len(a) == 1 else a),
    "max": lambda c, w, *a: max(a[0] if len(a) == 1 else a),
    "greater": lambda c, w, a, b: a > b,
    "less": lambda c, w, a, b: a < b,
    "greaterorequals": lambda c, w, a, b: a >= b,
    "lessorequals": lambda c, w, a, b: a <= b,
    "range": lambda c, w, s, n: list(range(s, s + n)),
    "copyindex": _copy_index,
}


# ---- the template as a whole -------------------------------------------------------------------

def load_template(raw):
    """The `template` property: a JSON object or a well-formed JSON string."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as e:
            raise TemplateError("Unable to parse template content: %s" % e)
    if not isinstance(raw, dict):
        raise TemplateError("The template must be a JSON object.")
    for k in raw:
        if k not in SCHEMA_KEYS:
            raise TemplateError("Unable to parse template content: Could not find member '%s' on "
                                "object of type 'Template'. Path '%s'." % (k, k), target=k)
    for k in ("$schema", "contentVersion"):
        if not isinstance(raw.get(k), str):
            raise TemplateError("Unable to parse template content: Required property '%s' not "
                                "found in JSON." % k, target=k)
    if not isinstance(raw.get("resources"), (list, dict)):
        raise TemplateError("Unable to parse template content: Required property 'resources' "
                            "expects an array.", target="resources")
    return raw


def static_checks(template):
    """Every parameters('x') / variables('x') must name a declared one, wherever it appears."""
    decl = {k.lower() for k in (template.get("parameters") or {})}
    vars_ = {k.lower() for k in (template.get("variables") or {})}
    sections = [("output '%s'" % k, v) for k, v in (template.get("outputs") or {}).items()]
    res = template["resources"]
    items = res.items() if isinstance(res, dict) else enumerate(res)
    for k, r in items:
        label = r.get("name", k) if isinstance(r, dict) else k
        sections.append(("resource '%s'" % label, r))
    sections += [("variable '%s'" % k, v) for k, v in (template.get("variables") or {}).items()]
    sections += [("parameter '%s'" % k, v.get("defaultValue"))
                 for k, v in (template.get("parameters") or {}).items() if isinstance(v, dict)]
    for where, value in sections:
        for s in all_strings(value):
            if not is_expression(s):
                continue
            try:
                node = Parser(s[1:-1]).parse()
            except TemplateError as e:
                raise validation_failed("The template %s is not valid: %s" % (where, e))
            for p in referenced_names(node, "parameters"):
                if str(p).lower() not in decl:
                    raise validation_failed(
                        "The template %s is not valid: The template parameter '%s' is not "
                        "found. Please see https://aka.ms/arm-syntax-parameters for usage "
                        "details." % (where, p))
            for v in referenced_names(node, "variables"):
                if str(v).lower() not in vars_:
                    raise validation_failed(
                        "The template %s is not valid: The template variable '%s' is not found. "
                        "Please see https://aka.ms/arm-syntax-variables for usage details."
                        % (where, v))


def bind_parameters(ctx, provided):
    """Checks the `parameters` of the request against the template's declarations."""
    decl = ctx.template.get("parameters") or {}
    for name, d in decl.items():
        if not isinstance(d, dict) or str(d.get("type", "")).lower() not in PARAM_TYPES:
            raise validation_failed("The template parameter '%s' has an invalid or missing type; "
                                    "valid types are %s" % (name, ", ".join(PARAM_TYPES)))
    provided = provided or {}
    if not isinstance(provided, dict):
        raise TemplateError("The request content was invalid and could not be deserialized: "
                            "'properties.parameters' must be an object.",
                            "InvalidRequestContent", "properties.parameters")
    declared = {k.lower(): k for k in decl}
    unknown = [k for k in provided if k.lower() not in declared]
    if unknown:
        raise validation_failed(
            "The template parameters '%s' in the parameters file are not valid; they are not "
            "present in the original template and can therefore not be provided at deployment "
            "time. The only supported parameters for this template are '%s'. Please see "
            "https://aka.ms/arm-pass-parameter-values for usage details."
            % (", ".join(unknown), ", ".join(decl)))
    given = {}
    for k, v in provided.items():
        if not isinstance(v, dict) or not ({"value", "reference"} & set(v)):
            raise TemplateError(
                "The request content was invalid and could not be deserialized: 'Error "
                "converting value %s to type 'DeploymentParameter'. Path 'properties.parameters."
                "%s'.' (each parameter is an object: {\"value\": ...})" % (json.dumps(v), k),
                "InvalidRequestContent", "properties.parameters." + k)
        if "reference" in v:
            raise TemplateError("azure_fake does not resolve Key Vault references (parameter "
                                "'%s')." % k, "KeyVaultParameterReferenceNotSupported",
                                "properties.parameters." + k)
        given[k.lower()] = v["value"]
    for name, d in decl.items():
        key = name.lower()
        if key in given:
            value = given[key]
        elif "defaultValue" in d:
            value = ctx.value(d["defaultValue"], "parameter '%s'" % name)
        else:
            raise validation_failed("The value for the template parameter '%s' at line '1' and "
                                    "column '1' is not provided. Please see "
                                    "https://aka.ms/arm-create-parameter-file for usage details."
                                    % name)
        check_parameter(name, d, value)
        ctx.params[key] = value


def check_parameter(name, d, value):
    t = d["type"].lower()
    want = JTOKEN[t]
    got = jtoken(value)
    if got != want:
        raise validation_failed("Template parameter JToken type is not valid. Expected '%s'. "
                                "Actual '%s'. Please see https://aka.ms/arm-create-parameter-file "
                                "for usage details." % (want, got))
    allowed = d.get("allowedValues")
    if allowed is not None:
        ok = all(x in allowed for x in value) if isinstance(value, list) else value in allowed
        if not ok:
            raise validation_failed("The provided value '%s' for the template parameter '%s' is "
                                    "not valid. The parameter value is not part of the allowed "
                                    "value(s): '%s'." % (value, name,
                                                         ",".join(map(str, allowed))))
    if isinstance(value, (str, list)):
        if "minLength" in d and len(value) < d["minLength"]:
            raise validation_failed("The provided value for the template parameter '%s' is not "
                                    "valid. Length of the value should be greater than or equal "
                                    "to '%s'." % (name, d["minLength"]))
        if "maxLength" in d and len(value) > d["maxLength"]:
            raise validation_failed("The provided value for the template parameter '%s' is not "
                                    "valid. Length of the value should be less than or equal to "
                                    "'%s'." % (name, d["maxLength"]))
    if want == "Integer":
        if "minValue" in d and value < d["minValue"]:
            raise validation_failed("The provided value for the template parameter '%s' is not "
                                    "valid. The parameter value should be greater than or equal "
                                    "to '%s'." % (name, d["minValue"]))
        if "maxValue" in d and value > d["maxValue"]:
            raise validation_failed("The provided value for the template parameter '%s' is not "
                                    "valid. The parameter value should be less than or equal to "
                                    "'%s'." % (name, d["maxValue"]))


def expand_resources(ctx):
    """Resources after conditions, copy loops and child flattening, with evaluated payloads."""
    raw = ctx.template["resources"]
    items = list(raw.items()) if isinstance(raw, dict) else [(None, r) for r in raw]
    out = []
    for symbolic, r in items:
        _expand(ctx, r, symbolic, None, out)
    return out


def _expand(ctx, r, symbolic, parent, out):
    if not isinstance(r, dict):
        raise TemplateError("Each template resource must be an object.")
    label = r.get("name", symbolic)
    for k in ("type", "name") + (() if r.get("existing") else ("apiVersion",)):
        if k not in r:
            raise validation_failed("The template resource '%s' is not valid: required property "
                                    "'%s' is missing." % (label, k))
    loop = r.get("copy")
    if loop:
        count = ctx.value(loop.get("count"), "resource '%s' copy" % label)
        if not isinstance(count, int) or count < 0 or count > 800:
            raise validation_failed("The template resource '%s' copy count must be an integer "
                                    "from 0 to 800." % label)
        for i in range(count):
            ctx.copy[""] = ctx.copy[loop.get("name", "").lower()] = i
            _expand_one(ctx, r, symbolic, parent, out)
        ctx.copy.pop("", None)
        ctx.copy.pop(loop.get("name", "").lower(), None)
    else:
        _expand_one(ctx, r, symbolic, parent, out)


def _expand_one(ctx, r, symbolic, parent, out):
    where = "resource '%s'" % r.get("name", symbolic)
    if "condition" in r and not ctx.value(r["condition"], where):
        return
    rtype = ctx.value(r["type"], where)
    name = ctx.value(r["name"], where)
    if parent and "/" not in rtype:
        rtype = parent["type"] + "/" + rtype
    if parent and name.count("/") < rtype.count("/") - 1:
        name = parent["name"] + "/" + name
    payload = {"apiVersion": ctx.value(r.get("apiVersion"), where), "type": rtype, "name": name}
    payload["id"] = resource_id(ctx.sub, ctx.rg, rtype, name.split("/"))
    for k in ("location", "tags", "sku", "kind", "identity", "properties", "zones", "plan"):
        if k in r:
            payload[k] = ctx.value(r[k], where)
    if symbolic:
        payload["symbolicName"] = symbolic
    if not r.get("existing"):
        out.append(payload)
    for child in r.get("resources") or []:
        _expand(ctx, child, None, payload, out)


def evaluate_outputs(ctx):
    outputs = {}
    for name, o in (ctx.template.get("outputs") or {}).items():
        where = "output '%s'" % name
        if not isinstance(o, dict) or str(o.get("type", "")).lower() not in PARAM_TYPES:
            raise validation_failed("The template output '%s' has an invalid or missing type."
                                    % name)
        if "condition" in o and not ctx.value(o["condition"], where):
            continue
        t = o["type"].lower()
        value = ctx.value(o.get("value"), where)
        if not (isinstance(value, str) and value.startswith("<unevaluated:")):
            if jtoken(value) != JTOKEN[t]:
                raise TemplateError("The template output '%s' is not valid: Template output "
                                    "JToken type is not valid. Expected '%s'. Actual '%s'."
                                    % (name, JTOKEN[t], jtoken(value)), "DeploymentOutputEvaluationFailed")
        if t in SECURE:
            continue  # secure outputs are never returned
        outputs[name] = {"type": PARAM_TYPES[t], "value": value}
    return outputs


def plan(template_raw, provided, sub, rg, location, deployment, tenant):
    """Everything a deployment needs to know, or TemplateError."""
    template = load_template(template_raw)
    static_checks(template)
    ctx = Context(template, sub, rg, location, deployment, tenant)
    bind_parameters(ctx, provided)
    resources = expand_resources(ctx)
    outputs = evaluate_outputs(ctx)
    params_out = {}
    for name, d in (template.get("parameters") or {}).items():
        t = d["type"].lower()
        entry = {"type": PARAM_TYPES[t]}
        if t not in SECURE:
            entry["value"] = ctx.params[name.lower()]
        params_out[name] = entry
    canonical = json.dumps(template, sort_keys=True).encode()
    return {"resources": resources, "outputs": outputs, "parameters": params_out,
            "warnings": ctx.warnings, "params": dict(ctx.params),
            "hash": str(int(hashlib.sha256(canonical).hexdigest()[:16], 16))}


# ---- what-if ----------------------------------------------------------------------------------

COMPARED = ("location", "tags", "sku", "kind", "identity", "properties", "zones", "plan")


def comparable(payload):
    return {k: payload[k] for k in COMPARED if k in payload and payload[k] is not None}


def delta(before, after, path=""):
    """WhatIfPropertyChange list turning `before` into `after`."""
    changes = []
    for key in list(before) + [k for k in after if k not in before]:
        p = path + "." + key if path else key
        if key not in after:
            changes.append({"path": p, "propertyChangeType": "Delete", "before": before[key]})
        elif key not in before:
            changes.append({"path": p, "propertyChangeType": "Create", "after": after[key]})
        elif before[key] != after[key]:
            b, a = before[key], after[key]
            if isinstance(b, dict) and isinstance(a, dict):
                changes.append({"path": p, "propertyChangeType": "Modify",
                                "children": delta(b, a)})
            elif isinstance(b, list) and isinstance(a, list):
                changes.append({"path": p, "propertyChangeType": "Array",
                                "children": [{"path": str(i), "propertyChangeType": "Modify",
                                              "before": x, "after": y}
                                             for i, (x, y) in enumerate(zip(b, a)) if x != y] +
                                [{"path": str(i), "propertyChangeType": "Delete", "before": x}
                                 for i, x in enumerate(b[len(a):], len(a))] +
                                [{"path": str(i), "propertyChangeType": "Create", "after": y}
                                 for i, y in enumerate(a[len(b):], len(b))]})
            else:
                changes.append({"path": p, "propertyChangeType": "Modify", "before": b,
                                "after": a})
    return changes


def what_if(planned, existing, mode, full=True):
    """WhatIfChange list: `planned` resources against `existing` ({id_lower: payload})."""
    changes = []
    seen = set()
    for r in planned:
        key = r["id"].lower()
        seen.add(key)
        after = {k: v for k, v in r.items() if k != "symbolicName"}
        old = existing.get(key)
        if old is None:
            c = {"resourceId": r["id"], "changeType": "Create", "after": after}
        else:
            before = {k: v for k, v in old.items() if not k.startswith("_")}
            d = delta(comparable(before), comparable(after))
            c = {"resourceId": r["id"], "changeType": "Modify" if d else "NoChange",
                 "before": before, "after": after}
            if d:
                c["delta"] = d
        if r.get("symbolicName"):
            c["symbolicName"] = r["symbolicName"]
        changes.append(c)
    for key, old in sorted(existing.items()):
        if key in seen:
            continue
        before = {k: v for k, v in old.items() if not k.startswith("_")}
        changes.append({"resourceId": old["id"],
                        "changeType": "Delete" if mode == "Complete" else "Ignore",
                        "before": before})
    if not full:
        for c in changes:
            for k in ("before", "after", "delta"):
                c.pop(k, None)
    return changes
