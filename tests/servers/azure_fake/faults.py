"""faults.py — scripted failures: throttling, 5xx, dropped connections, delays, LRO outcomes."""
import json
import math
import re
import time

from router import DROP, Response, error_detail, json_response

KEYS = {"match", "query", "times", "skip", "status", "body", "headers", "retry_after", "drop",
        "delay", "lro_result", "lro_error", "lro_polls", "lro_headers", "strict_retry_after"}

DEFAULT_MESSAGES = {
    400: ("BadRequest", "azure_fake: injected 400."),
    404: ("NotFound", "azure_fake: injected 404."),
    409: ("Conflict", "azure_fake: injected conflict."),
    429: ("TooManyRequests", "The request is being throttled as the limit has been reached for "
          "operation type - Write_ObservationWindow_00:05:00. For more information, see - "
          "https://aka.ms/srpthrottlinglimits"),
    500: ("InternalServerError", "Encountered internal server error. Diagnostic information: "
          "timestamp '', subscription id '', tracking id '', request correlation id ''."),
    502: ("BadGateway", "The gateway received an invalid response from the resource provider."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please try again later."),
    504: ("GatewayTimeout", "The gateway did not receive a response from the resource provider "
          "within the specified time period."),
}


class FaultError(ValueError):
    pass


def _check(spec):
    if not isinstance(spec, dict):
        raise FaultError("each fault must be a JSON object")
    unknown = set(spec) - KEYS
    if unknown:
        raise FaultError("unknown fault keys: %s (known: %s)" % (sorted(unknown), sorted(KEYS)))
    if not isinstance(spec.get("match"), str):
        raise FaultError("'match' (a regex on \"METHOD /path\") is required")
    try:
        re.compile(spec["match"])
        re.compile(spec.get("query", ""))
    except re.error as e:
        raise FaultError("bad regex: %s" % e)
    effects = [k for k in ("status", "drop") if k in spec]
    lro = [k for k in spec if k.startswith("lro_")]
    if len(effects) > 1 or (effects and lro):
        raise FaultError("a fault has one effect: 'status', 'drop' or 'lro_*'")
    if not effects and not lro and "delay" not in spec:
        raise FaultError("a fault needs 'status', 'drop', 'delay' or an 'lro_*' key")
    if "status" in spec and not (isinstance(spec["status"], int) and 100 <= spec["status"] <= 599):
        raise FaultError("'status' must be an HTTP status code")
    if spec.get("lro_result", "Failed") not in ("Succeeded", "Failed", "Canceled"):
        raise FaultError("'lro_result' is Succeeded, Failed or Canceled")
    if spec.get("lro_headers", "both") not in ("both", "async", "location"):
        raise FaultError("'lro_headers' is both, async or location")
    for k in ("times", "skip", "lro_polls"):
        if k in spec and not isinstance(spec[k], int):
            raise FaultError("'%s' must be an integer" % k)
    if "delay" in spec and not isinstance(spec["delay"], (int, float)):
        raise FaultError("'delay' must be a number of seconds")


class Faults:
    """Rules are tried in order; the first that matches and has uses left applies."""

    def __init__(self):
        self.rules = []

    def add(self, specs):
        if isinstance(specs, dict):
            specs = [specs]
        if not isinstance(specs, list):
            raise FaultError("POST a JSON list of faults (or one fault object)")
        for s in specs:
            _check(s)
        for s in specs:
            rule = dict(s)
            rule.setdefault("times", 1)
            rule.setdefault("skip", 0)
            rule["hits"] = 0
            rule["blocked_until"] = 0.0
            rule["early_retries"] = 0
            self.rules.append(rule)

    def clear(self):
        self.rules = []

    def describe(self):
        return [{k: v for k, v in r.items() if k != "blocked_until"} for r in self.rules]

    def check(self, req, area):
        """Returns (effect, note): effect is None, DROP, a Response, or ("delay", secs[, Response])."""
        line = "%s %s" % (req.method, req.path)
        now = time.time()
        for rule in self.rules:
            if not re.search(rule["match"], line):
                continue
            if rule.get("query") and not re.search(rule["query"], req.raw_query):
                continue
            # "If you send a request before the retry value has elapsed, your request isn't
            # processed and a new retry value is returned." (lro-throttling-notes.md)
            if rule["blocked_until"] > now:
                rule["early_retries"] += 1
                wait = str(max(1, math.ceil(rule["blocked_until"] - now)))
                return self._response(rule, area, retry_after=wait), "early-retry"
            if rule["times"] == 0:
                continue
            if rule["skip"] > 0:
                rule["skip"] -= 1
                continue
            if rule["times"] > 0:
                rule["times"] -= 1
            rule["hits"] += 1
            if any(k.startswith("lro_") for k in rule):
                req.lro = {k[4:]: v for k, v in rule.items() if k.startswith("lro_")}
                return None, "lro"
            if rule.get("drop"):
                return ("delay", rule.get("delay", 0), DROP), "drop"
            if "status" not in rule:
                return ("delay", rule["delay"], None), "delay"
            resp = self._response(rule, area)
            ra = rule.get("retry_after")
            if ra is not None and rule.get("strict_retry_after", rule["status"] == 429):
                try:
                    rule["blocked_until"] = now + float(ra)
                except ValueError:
                    pass
            if rule.get("delay"):
                return ("delay", rule["delay"], resp), "status"
            return resp, "status"
        return None, None

    def _response(self, rule, area, retry_after=None):
        status = rule["status"]
        headers = [(k, str(v)) for k, v in (rule.get("headers") or {}).items()]
        ra = retry_after if retry_after is not None else rule.get("retry_after")
        if ra is not None:
            headers.append(("Retry-After", str(ra)))
        if "body" in rule:
            body = rule["body"]
            if isinstance(body, str):
                return Response(status, body, [("Content-Type", "text/plain")] + headers)
            return json_response(status, body, headers)
        code, message = DEFAULT_MESSAGES.get(status, ("FakeFault", "azure_fake: injected fault."))
        if area == "aad":
            err = "temporarily_unavailable" if status >= 429 else "invalid_request"
            return json_response(status, {"error": err, "error_description":
                                          "AADSTS50196: azure_fake injected %d." % status,
                                          "error_codes": [50196]}, headers)
        return json_response(status, {"error": error_detail(code, message)}, headers)

    def dump(self):
        return json.loads(json.dumps(self.rules))
