"""router.py — request/response objects, a tiny regex router and the error bodies all areas share."""
import datetime
import hashlib
import json
import re
import time
import uuid
from urllib.parse import parse_qsl, unquote

DROP = object()  # a handler's answer meaning "close the socket without a response"


class HTTPError(Exception):
    """Raised anywhere in a handler to answer with `response` instead."""

    def __init__(self, response):
        super().__init__(response.status)
        self.response = response


class Request:
    """One parsed HTTP request. `headers` is case-insensitive (an email.message.Message)."""

    def __init__(self, method, target, headers, body, base_url, no_length=False):
        self.method = method
        self.target = target
        path, _, query = target.partition("?")
        self.path = path
        self.raw_query = query
        self.query_list = parse_qsl(query, keep_blank_values=True)
        self.headers = headers
        self.body = body
        self.base_url = base_url  # "http://127.0.0.1:PORT", as the client addressed us
        self.no_length = no_length  # neither Content-Length nor chunked was sent
        self.lro = {}  # LRO overrides that a fault rule attached to this request
        self.json = None  # parsed body, set by the ARM pipeline
        self.seq = None

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def query_all(self, name):
        return [v for k, v in self.query_list if k == name]

    def query(self, name, default=None):
        """The single value of query parameter `name` (exact case)."""
        vals = self.query_all(name)
        return vals[0] if vals else default


class Response:
    def __init__(self, status, body=b"", headers=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode()
        self.headers = list(headers or [])

    def set_header(self, name, value):
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        self.headers.append((name, str(value)))

    def json(self):
        return json.loads(self.body) if self.body else None


def json_response(status, obj, headers=None):
    body = json.dumps(obj, indent=None).encode()
    hdrs = [("Content-Type", "application/json; charset=utf-8")] + list(headers or [])
    return Response(status, body, hdrs)


def empty_response(status, headers=None):
    return Response(status, b"", headers)


# ---- errors ------------------------------------------------------------------

def error_detail(code, message, target=None, details=None, inner=None):
    """common-types v3 ErrorDetail (reference: arm/common-types-v3-error.extract.json)."""
    d = {"code": code, "message": message}
    if target is not None:
        d["target"] = target
    d["details"] = details or []
    d["additionalInfo"] = []
    if inner:
        d["innerError"] = {"code": inner}
    return d


def arm_error(status, code, message, target=None, details=None, headers=None, inner=None):
    """ErrorResponse / CloudError: {"error": ErrorDetail}."""
    return json_response(status, {"error": error_detail(code, message, target, details, inner)},
                         headers)


def fail(status, code, message, target=None, details=None, headers=None, inner=None):
    raise HTTPError(arm_error(status, code, message, target, details, headers, inner))


def ml_fail(status, message, target=None, details=None, inner=None):
    """Azure ML (MFE) errors: every 4xx is top-level code "UserError" with an innerError code."""
    inner = inner or {400: "BadArgument", 404: "NotFoundError", 409: "Conflict"}.get(status)
    fail(status, "UserError", message, target, details, inner=inner)


# ---- routing -----------------------------------------------------------------

class Route:
    def __init__(self, method, pattern, handler, meta):
        self.method = method
        self.pattern = pattern
        rx = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern.replace(".", r"\."))
        # ARM treats path literals (resourceGroups, providers, namespaces) case-insensitively.
        self.regex = re.compile("^" + rx + "$", re.IGNORECASE)
        self.handler = handler
        self.meta = meta


class Router:
    def __init__(self):
        self.routes = []

    def add(self, method, pattern, handler, **meta):
        self.routes.append(Route(method, pattern, handler, meta))

    def match(self, method, path):
        """(route, params) for the first match; (None, allowed_methods) when only the method differs."""
        allowed = []
        for r in self.routes:
            m = r.regex.match(path)
            if not m:
                continue
            if r.method == method:
                return r, {k: unquote(v) for k, v in m.groupdict().items()}
            allowed.append(r.method)
        return None, allowed


# ---- small helpers -------------------------------------------------------------

def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(ts=None):
    """RFC 3339 with 7 fractional digits and Z, as ARM writes timestamps."""
    dt = utcnow() if ts is None else datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def duration(seconds):
    return "PT%.7fS" % max(0.0, seconds)


def new_id():
    return str(uuid.uuid4())


def sha_prefix(value):
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]


def system_data(created=None):
    stamp = iso(created if created is not None else time.time())
    return {"createdAt": stamp, "createdBy": "azure_fake", "createdByType": "Application",
            "lastModifiedAt": iso(), "lastModifiedBy": "azure_fake",
            "lastModifiedByType": "Application"}
