"""control.py — the test-only control API under /_fake/ (never under ARM paths, no auth)."""
import json
import time

import identity
from faults import FaultError
from router import json_response, sha_prefix


def _body(req):
    if not req.body:
        return None
    try:
        return json.loads(req.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError("the body is not JSON: %s" % e)


def handle(app, req):
    route = (req.method, req.path.rstrip("/"))
    try:
        body = _body(req)
        if route == ("GET", "/_fake/health"):
            return json_response(200, {"ok": True, "uptime": time.time() - app.started})
        if route == ("GET", "/_fake/state"):
            return json_response(200, app.public_state())
        if route == ("GET", "/_fake/requests"):
            since = int(req.query("since", "0"))
            items = [r for r in app.requests if r["seq"] >= since]
            return json_response(200, {"requests": items, "next": app.next_seq})
        if route == ("DELETE", "/_fake/requests"):
            app.requests.clear()
            return json_response(200, {"next": app.next_seq})
        if route == ("GET", "/_fake/faults"):
            return json_response(200, {"faults": app.faults.describe()})
        if route == ("POST", "/_fake/faults"):
            app.faults.add(body)
            app.save()
            return json_response(200, {"faults": app.faults.describe()})
        if route == ("DELETE", "/_fake/faults"):
            app.faults.clear()
            app.save()
            return json_response(200, {"faults": []})
        if route == ("POST", "/_fake/expire-tokens"):
            family = (body or {}).get("family")
            n = 0
            past = time.time() - 1
            for info in app.state["tokens"].values():
                if family is None or info["family"] == family:
                    info["exp"] = min(info["exp"], past)
                    n += 1
            if family is None:
                for info in app.state["endpoint_tokens"].values():
                    info["exp"] = min(info["exp"], past)
                    n += 1
            app.save()
            return json_response(200, {"expired": n})
        if route == ("POST", "/_fake/reset"):
            app.reset()
            return json_response(200, {"reset": True})
        if route == ("GET", "/_fake/config"):
            return json_response(200, app.config)
        if route == ("POST", "/_fake/config"):
            app.update_config(body)
            return json_response(200, app.config)
        if route == ("POST", "/_fake/assertion"):
            claims = dict(body or {})
            return json_response(200, {"value": identity.mint_assertion(app, claims)})
    except (FaultError, ValueError, TypeError, KeyError) as e:
        return json_response(400, {"error": str(e)})
    return json_response(404, {"error": "no control route %s %s; see README.md" % route})


def mask_tokens(tokens):
    return {sha_prefix(t): info for t, info in tokens.items()}
