"""schema.py — a small validator for the Azure ML definitions (required, types, enums, patterns,
additionalProperties: false), collecting every problem as an ErrorDetail with a target path.

Schemas are dicts: {"type": "object", "props": {...}, "required": [...], "extra": False},
{"type": "string", "enum": [...], "min": 1, "pattern": "..."}, {"type": "integer"},
{"type": "boolean"}, {"type": "number"}, {"type": "map", "values": schema},
{"type": "array", "items": schema}, {"type": "duration"}, {"type": "any"},
{"type": "union", "key": "jobInputType", "variants": {"literal": schema, ...}}.
"nullable": True allows null (x-nullable); "readonly": True is accepted and dropped.
"""
import re

from router import error_detail

DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")


def check(value, schema, path, errors):
    """Appends ErrorDetails to `errors`; returns the value with read-only properties removed."""
    if value is None:
        if not schema.get("nullable"):
            errors.append(error_detail("InvalidValue", "'%s' must not be null." % path, path))
        return value
    t = schema["type"]
    if t == "any":
        return value
    if t in ("object", "union"):
        if not isinstance(value, dict):
            errors.append(error_detail("InvalidType", "'%s' must be an object." % path, path))
            return value
        if t == "union":
            tag = value.get(schema["key"])
            variant = schema["variants"].get(tag)
            if variant is None:
                tpath = join(path, schema["key"])
                errors.append(error_detail(
                    "Required" if tag is None else "InvalidValue",
                    "'%s' must be one of %s (got %r)." % (tpath, sorted(schema["variants"]), tag),
                    tpath))
                return value
            schema = variant
        out = {}
        props = schema.get("props", {})
        for k, v in value.items():
            sub = props.get(k)
            p = join(path, k)
            if sub is None:
                extra = schema.get("extra", False)
                if extra is False:
                    errors.append(error_detail("UnknownProperty", "'%s' is not a property of "
                                               "this object; known: %s." % (p, ", ".join(
                                                   sorted(props))), p))
                    continue
                out[k] = v if extra is True else check(v, extra, p, errors)
                continue
            if sub.get("readonly"):
                continue
            out[k] = check(v, sub, p, errors)
        for r in schema.get("required", []):
            if value.get(r) is None:
                p = join(path, r)
                errors.append(error_detail("Required", "[Required] '%s' is missing." % p, p))
        return out
    if t == "map":
        if not isinstance(value, dict):
            errors.append(error_detail("InvalidType", "'%s' must be an object of %s values."
                                       % (path, schema["values"]["type"]), path))
            return value
        return {k: check(v, schema["values"], join(path, k), errors) for k, v in value.items()}
    if t == "array":
        if not isinstance(value, list):
            errors.append(error_detail("InvalidType", "'%s' must be an array." % path, path))
            return value
        return [check(v, schema["items"], "%s[%d]" % (path, i), errors)
                for i, v in enumerate(value)]
    if t in ("string", "duration"):
        if not isinstance(value, str):
            errors.append(error_detail("InvalidType", "'%s' must be a string, not %s."
                                       % (path, type(value).__name__), path))
            return value
        if t == "duration" and not DURATION.match(value):
            errors.append(error_detail("InvalidValue", "'%s' must be an ISO 8601 duration such "
                                       "as PT5M (got '%s')." % (path, value), path))
        if "enum" in schema and value not in schema["enum"]:
            errors.append(error_detail("InvalidValue", "'%s' must be one of %s (got '%s')."
                                       % (path, ", ".join(schema["enum"]), value), path))
        if len(value) < schema.get("min", 0):
            errors.append(error_detail("InvalidValue", "'%s' must not be empty." % path, path))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(error_detail("PatternMismatch", "'%s' does not match the pattern "
                                       "'%s'." % (path, schema["pattern"]), path))
        return value
    if t == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(error_detail("InvalidType", "'%s' must be an integer." % path, path))
        elif value < schema.get("minimum", -2 ** 63) or value > schema.get("maximum", 2 ** 63):
            errors.append(error_detail("InvalidValue", "'%s' is out of range [%s, %s]."
                                       % (path, schema.get("minimum"), schema.get("maximum")),
                                       path))
        return value
    if t == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(error_detail("InvalidType", "'%s' must be a number." % path, path))
        return value
    if t == "boolean":
        if not isinstance(value, bool):
            errors.append(error_detail("InvalidType", "'%s' must be true or false." % path, path))
        return value
    raise AssertionError("unknown schema type " + t)


def join(path, key):
    return "%s.%s" % (path, key) if path else key


# ---- building blocks --------------------------------------------------------------------------

def s(**kw):
    return dict(type="string", nullable=True, **kw)


def req_s(**kw):
    return dict(type="string", min=1, pattern="[a-zA-Z0-9_]", **kw)


def obj(props, required=(), extra=False, nullable=True):
    return {"type": "object", "props": props, "required": list(required), "extra": extra,
            "nullable": nullable}


RO = {"type": "any", "readonly": True}
STR_MAP = {"type": "map", "values": s(), "nullable": True}
INT = {"type": "integer", "nullable": False}
BOOL = {"type": "boolean"}
DUR = {"type": "duration", "nullable": True}
ANY_OBJ = obj({}, extra=True)
RESOURCE_BASE = {"description": s(), "properties": STR_MAP, "tags": STR_MAP}
ASSET_BASE = dict(RESOURCE_BASE, isAnonymous=BOOL, isArchived=BOOL)
ARM_ENVELOPE = {"id": RO, "name": RO, "type": RO, "systemData": RO}
