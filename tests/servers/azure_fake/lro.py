"""lro.py — long-running operations: Azure-AsyncOperation and Location polling, Retry-After.

Contract: /work/shared/reference/azure/arm/lro-throttling-notes.md. An operation answers
"in progress" for `polls_needed` observations (a GET of its Azure-AsyncOperation URL, of its
Location URL, or of the resource it changes), then reaches its outcome. Operations are plain
dicts so the state can be dumped; what an outcome does to resources is a per-kind callback.
"""
import math
import time

from router import empty_response, error_detail, iso, json_response, new_id

ARM_API = "2025-04-01"
ML_API = "2025-12-01"


class Operations:
    def __init__(self, app):
        self.app = app
        self.finishers = {}  # kind -> fn(app, op), applies the outcome to the resources
        self.renderers = {}  # kind -> fn(app, op, req) -> (status, body), a finished Location GET

    @property
    def ops(self):
        return self.app.state["operations"]

    def start(self, req, kind, style, scope, *, outcome="Succeeded", error=None, final="resource",
              final_body=None, headers=None, data=None):
        """Creates an operation. `style` "arm" (Microsoft.Resources) or "ml" (MFE) picks its URLs."""
        over = req.lro
        cfg = self.app.config
        op_id = new_id()
        if style == "arm":
            base = ("/subscriptions/%s/resourcegroups/%s/providers/Microsoft.Resources/deployments/%s"
                    % (scope["sub"], scope["rg"], scope["name"]))
            async_path = "%s/operationStatuses/%s?api-version=%s" % (base, op_id, ARM_API)
            loc_path = "%s/operationResults/%s?api-version=%s" % (base, op_id, ARM_API)
        else:
            base = ("/subscriptions/%s/providers/Microsoft.MachineLearningServices/locations/%s"
                    % (scope["sub"], scope["location"]))
            async_path = "%s/mfeOperationsStatus/%s?api-version=%s" % (base, op_id, ML_API)
            loc_path = "%s/mfeOperationResults/%s?api-version=%s" % (base, op_id, ML_API)
        if over.get("result"):
            outcome = over["result"]
            if outcome != "Succeeded":
                e = over.get("error") or {}
                error = error_detail(e.get("code", "InternalServerError" if outcome == "Failed"
                                               else "OperationCanceled"),
                                     e.get("message", "azure_fake: operation %s by a fault rule."
                                           % outcome.lower()))
        op = {
            "id": op_id, "kind": kind, "style": style, "scope": scope,
            "async_path": async_path, "location_path": loc_path,
            "polls": 0, "polls_needed": int(over.get("polls", cfg["lro_polls"])),
            "labels": ["Accepted", "Running"] if style == "arm" else ["InProgress"],
            "outcome": outcome, "error": error,
            "done": False, "final": final, "final_body": final_body,
            "headers": over.get("headers", headers or "both"),
            "start": time.time(), "end": None, "data": data or {},
            # The 201/202 says Retry-After: no poll is due before then.
            "not_before": time.time() + cfg["retry_after"],
        }
        op["status"] = op["labels"][0]
        self.ops[op_id] = op
        return op

    def settle(self, op):
        """Called once the handler has stored what `op` changes: lro_polls 0 finishes at once."""
        if op["polls_needed"] <= 0:
            self.finish(op)

    def response_headers(self, op, req, timeout=True):
        """Headers of the 201/202 that started `op`."""
        h = []
        if op["headers"] in ("both", "async"):
            h.append(("Azure-AsyncOperation", req.base_url + op["async_path"]))
        if op["headers"] in ("both", "location"):
            h.append(("Location", req.base_url + op["location_path"]))
        h.append(("Retry-After", str(self.app.config["retry_after"])))
        if timeout and op["style"] == "ml":
            h.append(("x-ms-async-operation-timeout", "PT1H"))
        return h

    def get(self, op_id):
        return self.ops.get(op_id)

    def advance(self, op):
        """One observation of the operation: move it on, finishing it after polls_needed."""
        if op["done"]:
            return
        op["polls"] += 1
        if op["polls"] > op["polls_needed"]:
            self.finish(op)
        else:
            labels = op["labels"]
            op["status"] = labels[min(op["polls"] - 1, len(labels) - 1)]

    def finish(self, op, outcome=None, error=None):
        if op["done"]:
            return
        if outcome:
            op["outcome"] = outcome
            op["error"] = error
        op["done"] = True
        op["status"] = op["outcome"]
        op["end"] = time.time()
        fn = self.finishers.get(op["kind"])
        if fn:
            fn(self.app, op)

    def status_body(self, op, req):
        """Azure-AsyncOperation GET body (OperationStatusResult)."""
        body = {"id": op["async_path"].split("?")[0], "name": op["id"], "status": op["status"],
                "startTime": iso(op["start"])}
        if op["done"]:
            body["endTime"] = iso(op["end"])
            body["percentComplete"] = 100.0
            if op["outcome"] != "Succeeded":
                body["error"] = op["error"] or error_detail("InternalServerError", "failed")
        else:
            body["percentComplete"] = round(100.0 * op["polls"] / (op["polls_needed"] + 1), 1)
        return body

    def too_early(self, op):
        """A poll before the last Retry-After ran out: counted, and answered 429 with the rest.

        The contract says to wait Retry-After between polls; a client that does not is throttled
        here as Resource Manager throttles it, and tests can assert state.early_polls == 0."""
        left = op.get("not_before", 0) - time.time()
        if op["done"] or left <= 0.05:
            return None
        self.app.state["early_polls"] = self.app.state.get("early_polls", 0) + 1
        return json_response(429, {"error": error_detail(
            "TooManyRequests", "azure_fake: polled %.2f s before the Retry-After ran out." % left)},
            [("Retry-After", str(max(1, math.ceil(left))))])

    def waited(self, op):
        """The Retry-After just sent to a poll of `op`: the next poll is due after it."""
        ra = self.app.config["retry_after"]
        op["not_before"] = time.time() + ra
        return [("Retry-After", str(ra))]

    def poll_async(self, op, req):
        early = self.too_early(op)
        if early:
            return early
        self.advance(op)
        headers = [] if op["done"] else self.waited(op)
        return json_response(200, self.status_body(op, req), headers)

    def poll_location(self, op, req):
        """Location GET: 202 while running; then 200 (204 for DELETE), or the error's status."""
        early = self.too_early(op)
        if early:
            return early
        self.advance(op)
        if not op["done"]:
            return empty_response(202, [("Location", req.base_url + op["location_path"])]
                                  + self.waited(op))
        if op["outcome"] != "Succeeded":
            err = op["error"] or error_detail("InternalServerError", "failed")
            return json_response(400, {"error": err})
        if op["final"] == "delete":
            return empty_response(204)
        if op["final"] == "empty":
            return empty_response(200)
        if op["final"] == "body":
            return json_response(200, op["final_body"])
        status, body = self.renderers[op["kind"]](self.app, op, req)
        return json_response(status, body)
