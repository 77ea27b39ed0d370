"""arm.py — the Resource Manager front door (auth, api-version, JSON bodies, scopes, headers)
and the Microsoft.Resources/deployments provider (PUT + LRO, validate, whatIf, operations).

Contracts: /work/shared/reference/azure/arm/deployments-2025-04-01.extract.json,
lro-throttling-notes.md and common-types-v3-error.extract.json.
"""
import copy
import hashlib
import json
import re
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import identity
import template as tpl
from router import duration, empty_response, error_detail, fail, iso, json_response, new_id

API = "2025-04-01"
MAX_BODY = 4 * 1024 * 1024  # ARM's request size limit (templates included)
RG = "/subscriptions/{sub}/resourcegroups/{rg}"
DEP = RG + "/providers/Microsoft.Resources/deployments"
FAIL_WORD = re.compile(r"fake[-_]?arm[-_]?fail", re.IGNORECASE)
NAME_RX = re.compile(r"^[-\w\._\(\)]+$")
DEPLOYMENT_KEYS = {"location", "properties", "tags", "identity"}
PROPERTY_KEYS = {"template", "templateLink", "parameters", "parametersLink", "mode",
                 "debugSetting", "onErrorDeployment", "expressionEvaluationOptions",
                 "validationLevel", "externalInputs", "externalInputDefinitions",
                 "extensionConfigs"}


# ---- the ARM pipeline -------------------------------------------------------------------------

def handle(app, req):
    """Every request under /subscriptions/: auth, route, api-version, body, scope, handler."""
    identity.check_arm_bearer(app, req)
    route, params = app.arm_router.match(req.method, req.path)
    if route is None:
        if params:
            fail(405, "MethodNotAllowed", "The requested resource does not support http method "
                 "'%s'." % req.method)
        generic = generic_resource(app, req)
        if generic is not None:
            return generic
        fail(404, "InvalidResourceType", "azure_fake: no resource type serves '%s %s'. The "
             "resource type could not be found in the namespace for this api version."
             % (req.method, req.path))
    check_api_version(req, route.meta["api"])
    read_body(req, route.meta.get("body", "none"))
    check_scope(app, params)
    return route.handler(app, req, **params)


def check_api_version(req, api):
    versions = req.query_all("api-version")
    if not versions:
        fail(400, "MissingApiVersionParameter",
             "The api-version query parameter (?api-version=) is required for all requests.")
    if len(versions) > 1:
        fail(400, "InvalidApiVersionParameter", "The api-version query parameter was given %d "
             "times ('%s'); give it exactly once." % (len(versions), "', '".join(versions)))
    if versions[0] != api:
        fail(400, "InvalidApiVersionParameter", "The api-version '%s' is invalid. The supported "
             "versions are '%s'." % (versions[0], api))


def _no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError("duplicate property '%s'" % k)
        obj[k] = v
    return obj


def _no_constants(name):
    raise ValueError("invalid JSON number %s" % name)


def read_body(req, mode):
    """mode: "json" (an object is required), "optional" (empty or an object), "none"."""
    if req.method not in ("PUT", "POST", "PATCH"):
        return
    if req.no_length:
        fail(411, "LengthRequired", "Length Required: a %s needs Content-Length (0 for no body) "
             "or Transfer-Encoding: chunked." % req.method)
    if len(req.body) > MAX_BODY:
        fail(413, "RequestContentTooLarge", "The request content size exceeds the maximum size "
             "of 4 MB.")
    if not req.body:
        if mode == "json":
            fail(400, "InvalidRequestContent", "The request content was invalid and could not be "
                 "deserialized: the request body is empty.")
        return
    if mode == "none":
        fail(400, "InvalidRequestContent", "This action takes no request body.")
    ctype = req.header("Content-Type")
    media = (ctype or "").split(";")[0].strip().lower()
    if media != "application/json":
        fail(415, "UnsupportedMediaType", "The content media type '%s' is not supported. Only "
             "'application/json' is supported." % (ctype or ""))
    try:
        req.json = json.loads(req.body.decode("utf-8"), object_pairs_hook=_no_duplicates,
                              parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError) as e:
        fail(400, "InvalidRequestContent", "The request content was invalid and could not be "
             "deserialized: '%s'." % e)
    if not isinstance(req.json, dict):
        fail(400, "InvalidRequestContent", "The request content was invalid and could not be "
             "deserialized: the body must be a JSON object.")


def check_scope(app, params):
    cfg = app.config
    sub = params.get("sub")
    if sub is not None and sub.lower() != cfg["subscription_id"].lower():
        fail(404, "SubscriptionNotFound", "The subscription '%s' could not be found." % sub)
    rg = params.get("rg")
    if rg is not None and rg.lower() not in {k.lower() for k in cfg["resource_groups"]}:
        fail(404, "ResourceGroupNotFound", "Resource group '%s' could not be found." % rg)


def rg_location(app, rg):
    for k, v in app.config["resource_groups"].items():
        if k.lower() == rg.lower():
            return v
    return "westeurope"


def finish_headers(app, req, resp):
    """Headers every ARM response carries."""
    sub = app.config["subscription_id"]
    corr = req.header("x-ms-correlation-request-id") or new_id()
    resp.set_header("x-ms-request-id", new_id())
    resp.set_header("x-ms-correlation-request-id", corr)
    if req.header("x-ms-client-request-id"):
        resp.set_header("x-ms-client-request-id", req.header("x-ms-client-request-id"))
    resp.set_header("x-ms-routing-request-id", "WESTEUROPE:%s:%s"
                    % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), new_id()))
    kind = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(req.method, "writes")
    limits = app.state["ratelimit"].setdefault(sub, dict(app.config["ratelimit"]))
    limits[kind] = limits[kind] - 1 if limits[kind] > 1 else app.config["ratelimit"][kind]
    resp.set_header("x-ms-ratelimit-remaining-subscription-%s" % kind, limits[kind])
    resp.set_header("x-ms-ratelimit-remaining-subscription-global-%s" % kind,
                    limits[kind] + 1800)
    resp.set_header("Cache-Control", "no-cache")
    resp.set_header("Pragma", "no-cache")
    resp.set_header("Expires", "-1")


def generic_resource(app, req):
    """GET of a resource an earlier deployment created (any well-formed api-version)."""
    if req.method != "GET":
        return None
    res = app.state["arm_resources"].get(req.path.lower())
    if res is None:
        m = re.match(r"^/subscriptions/[^/]+/resourcegroups/([^/]+)/providers/([^/]+/[^/]+/.+)$",
                     req.path, re.IGNORECASE)
        if m:
            fail(404, "ResourceNotFound", "The Resource '%s' under resource group '%s' was not "
                 "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
                 % (m.group(2), m.group(1)))
        return None
    versions = req.query_all("api-version")
    if len(versions) != 1 or not re.match(r"^\d{4}-\d{2}-\d{2}(-preview)?$", versions[0]):
        check_api_version(req, res["apiVersion"])
    body = copy.deepcopy({k: v for k, v in res.items()
                          if not k.startswith("_") and k != "apiVersion"})
    body.setdefault("properties", {})["provisioningState"] = "Succeeded"
    return json_response(200, body)


# ---- deployments: request checks ------------------------------------------------------------

def check_name(name):
    if len(name) > 64:
        fail(400, "DeploymentNameLengthLimitExceeded", "The provided deployment name '%s' has "
             "a length of '%d' which exceeds the maximum length of '64'. Please see "
             "https://aka.ms/arm-deploy-resources for usage details." % (name, len(name)))
    if not NAME_RX.match(name):
        bad = "".join(sorted(set(c for c in name if not re.match(r"[-\w\._\(\)]", c))))
        fail(400, "DeploymentNameInvalidCharacters", "The provided deployment name '%s' has "
             "these invalid characters: '%s'. The name can only be a letter, digit, '-', '.', "
             "'_', '(' or ')'." % (name, bad))


def bad_content(msg, target):
    fail(400, "InvalidRequestContent", "The request content was invalid and could not be "
         "deserialized: '%s'." % msg, target=target)


def check_deployment_body(body, what_if=False):
    """Deployment / DeploymentWhatIf: returns the `properties` object."""
    for k in body:
        if k not in DEPLOYMENT_KEYS:
            bad_content("Could not find member '%s' on object of type 'Deployment'. Path '%s'"
                        % (k, k), k)
    props = body.get("properties")
    if not isinstance(props, dict):
        bad_content("Required property 'properties' not found in JSON. Path ''", "properties")
    allowed = PROPERTY_KEYS | ({"whatIfSettings"} if what_if else set())
    for k in props:
        if k not in allowed:
            bad_content("Could not find member '%s' on object of type 'DeploymentProperties'. "
                        "Path 'properties.%s'" % (k, k), "properties." + k)
    mode = props.get("mode")
    if mode is None:
        bad_content("Required property 'mode' not found in JSON. Path 'properties'",
                    "properties.mode")
    canonical = {"incremental": "Incremental", "complete": "Complete"}.get(str(mode).lower())
    if not isinstance(mode, str) or canonical is None:
        bad_content("Error converting value %s to type 'DeploymentMode'. Path 'properties.mode'"
                    % json.dumps(mode), "properties.mode")
    props["mode"] = canonical
    has_t, has_l = "template" in props, "templateLink" in props
    if has_t == has_l:
        fail(400, "InvalidRequestContent", "The request content was invalid: specify exactly "
             "one of 'properties.template' or 'properties.templateLink'.",
             target="properties.template")
    if "parameters" in props and "parametersLink" in props:
        fail(400, "InvalidRequestContent", "The request content was invalid: use either "
             "'properties.parameters' or 'properties.parametersLink', not both.",
             target="properties.parametersLink")
    if what_if:
        fmt = (props.get("whatIfSettings") or {}).get("resultFormat", "FullResourcePayloads")
        if fmt not in ("ResourceIdOnly", "FullResourcePayloads"):
            bad_content("Error converting value %s to type 'WhatIfResultFormat'" %
                        json.dumps(fmt), "properties.whatIfSettings.resultFormat")
    return props


def fetch_link(link, what):
    """templateLink / parametersLink: fetched only from loopback (no network here)."""
    if not isinstance(link, dict) or not isinstance(link.get("uri"), str):
        fail(400, "InvalidRequestContent", "'%s.uri' is required." % what, target=what)
    uri = link["uri"]
    host = urlsplit(uri).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        fail(400, "InvalidContentLink", "Unable to download deployment content from '%s'. "
             "(azure_fake fetches links from loopback only)" % uri, target=what)
    try:
        with urllib.request.urlopen(uri, timeout=5) as r:
            return json.loads(r.read().decode("utf-8"))
    except (urllib.error.URLError, ValueError, OSError) as e:
        fail(400, "InvalidContentLink", "Unable to download deployment content from '%s': %s"
             % (uri, e), target=what)


def make_plan(app, req, sub, rg, name, props):
    template_raw = props["template"] if "template" in props else fetch_link(
        props["templateLink"], "properties.templateLink")
    params = props.get("parameters")
    if "parametersLink" in props:
        doc = fetch_link(props["parametersLink"], "properties.parametersLink")
        params = doc.get("parameters", doc) if isinstance(doc, dict) else doc
    try:
        return tpl.plan(template_raw, params, sub, rg, rg_location(app, rg), name,
                        app.config["tenant_id"])
    except tpl.TemplateError as e:
        fail(400, e.code, str(e), target=e.target)


# ---- deployments: state and rendering ----------------------------------------------------------

def dep_key(sub, rg, name):
    return "%s/%s/%s" % (sub.lower(), rg.lower(), name.lower())


def dep_id(sub, rg, name):
    return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Resources/deployments/%s" % (
        sub, rg, name)


def current_state(app, dep, observe=False):
    op = app.ops.get(dep.get("op_id")) if dep.get("op_id") else None
    if op and observe:
        app.ops.advance(op)
    if op and not op["done"]:
        return op["status"]
    return dep["provisioningState"]


def render(app, dep, observe=False):
    state = current_state(app, dep, observe)
    p = dep["plan"]
    props = {
        "templateHash": p["hash"], "parameters": p["parameters"], "mode": dep["mode"],
        "provisioningState": state, "timestamp": iso(dep.get("end") or dep["start"]),
        "duration": duration((dep.get("end") or time.time()) - dep["start"]),
        "correlationId": dep["correlationId"],
        "providers": [{"namespace": ns, "resourceTypes": []}
                      for ns in sorted({r["type"].split("/")[0] for r in p["resources"]})],
        "dependencies": [],
        "validationLevel": dep.get("validationLevel", "Template"),
    }
    if p["warnings"]:
        props["diagnostics"] = [{"level": "Warning", "code": "AzureFakeUnevaluated",
                                 "message": w} for w in p["warnings"]]
    if state == "Succeeded":
        props["outputs"] = p["outputs"]
        props["outputResources"] = [{"id": r["id"]} for r in p["resources"]]
    if state in ("Failed", "Canceled") and dep.get("error"):
        props["error"] = dep["error"]
    body = {"id": dep["id"], "name": dep["name"], "type": "Microsoft.Resources/deployments",
            "properties": props}
    if dep.get("tags") is not None:
        body["tags"] = dep["tags"]
    if dep.get("location"):
        body["location"] = dep["location"]
    return body


def finish_deployment(app, op):
    dep = app.state["deployments"].get(op["data"]["key"])
    if dep is None or dep.get("op_id") != op["id"]:
        return
    dep["end"] = time.time()
    dep["provisioningState"] = op["outcome"]
    dep["error"] = op["error"]
    if op["outcome"] != "Succeeded":
        return
    store = app.state["arm_resources"]
    scope_prefix = ("/subscriptions/%s/resourcegroups/%s/" % (dep["sub"], dep["rg"])).lower()
    planned = {r["id"].lower() for r in dep["plan"]["resources"]}
    if dep["mode"] == "Complete":
        for key in [k for k in store if k.startswith(scope_prefix) and k not in planned]:
            del store[key]
    for r in dep["plan"]["resources"]:
        rec = {k: v for k, v in r.items() if k != "symbolicName"}
        rec["_deployment"] = dep["name"]
        store[r["id"].lower()] = rec


def render_final(app, op, req):
    dep = app.state["deployments"].get(op["data"]["key"])
    return 200, render(app, dep)


# ---- deployments: handlers ------------------------------------------------------------------

def get_dep(app, sub, rg, name):
    dep = app.state["deployments"].get(dep_key(sub, rg, name))
    if dep is None:
        fail(404, "DeploymentNotFound", "Deployment '%s' could not be found." % name)
    return dep


def put_deployment(app, req, sub, rg, name):
    check_name(name)
    props = check_deployment_body(req.json)
    plan = make_plan(app, req, sub, rg, name, props)
    key = dep_key(sub, rg, name)
    old = app.state["deployments"].get(key)
    if old and current_state(app, old) in ("Accepted", "Running"):
        fail(409, "DeploymentActive", "The deployment '%s' is currently active; wait for it to "
             "finish or cancel it before deploying again under the same name." % name)
    outcome, error, failed_id = "Succeeded", None, None
    strings = [r["name"] for r in plan["resources"]] + [
        v for v in plan["params"].values() if isinstance(v, str)]
    if any(FAIL_WORD.search(s) for s in strings):
        failed = next((r for r in plan["resources"] if FAIL_WORD.search(r["name"])),
                      plan["resources"][0] if plan["resources"] else None)
        failed_id = failed["id"] if failed else dep_id(sub, rg, name)
        outcome = "Failed"
        error = error_detail(
            "DeploymentFailed", "At least one resource deployment operation failed. Please list "
            "deployment operations for details. Please see https://aka.ms/arm-deployment-"
            "operations for usage details.", target=dep_id(sub, rg, name),
            details=[error_detail("ResourceDeploymentFailure", "The resource write operation "
                                  "failed to complete successfully, because it reached terminal "
                                  "provisioning state 'Failed'. (azure_fake: FAKE_ARM_FAIL)",
                                  target=failed_id)])
    op = app.ops.start(req, "deployment", "arm", {"sub": sub, "rg": rg, "name": name},
                       outcome=outcome, error=error, headers=app.config["deployment_lro_headers"],
                       data={"key": key})
    dep = {"id": dep_id(sub, rg, name), "name": name, "sub": sub, "rg": rg, "key": key,
           "location": req.json.get("location"), "tags": req.json.get("tags"),
           "mode": props["mode"], "template": props.get("template"),
           "validationLevel": props.get("validationLevel", "Template"),
           "plan": plan, "provisioningState": "Accepted", "start": time.time(), "end": None,
           "correlationId": req.header("x-ms-correlation-request-id") or new_id(),
           "op_id": op["id"], "error": None, "failed_resource": failed_id}
    app.state["deployments"][key] = dep
    app.ops.settle(op)
    body = render(app, dep)
    return json_response(200 if old else 201, body, app.ops.response_headers(op, req, False))


def get_deployment(app, req, sub, rg, name):
    return json_response(200, render(app, get_dep(app, sub, rg, name), observe=True))


def head_deployment(app, req, sub, rg, name):
    found = dep_key(sub, rg, name) in app.state["deployments"]
    return empty_response(204 if found else 404)


def list_deployments(app, req, sub, rg):
    prefix = "%s/%s/" % (sub.lower(), rg.lower())
    items = [render(app, d) for k, d in sorted(app.state["deployments"].items())
             if k.startswith(prefix)]
    flt = req.query("$filter")
    if flt:
        m = re.match(r"^\s*provisioningState\s+eq\s+'(\w+)'\s*$", flt)
        if not m:
            fail(400, "InvalidFilterInQueryString", "The $filter '%s' is not supported; use "
                 "provisioningState eq '{state}'." % flt)
        items = [d for d in items if d["properties"]["provisioningState"] == m.group(1)]
    top = req.query("$top")
    if top is not None:
        if not top.isdigit():
            fail(400, "InvalidQueryParameterValue", "$top must be a non-negative integer.")
        items = items[: int(top)]
    return json_response(200, {"value": items})


def delete_deployment(app, req, sub, rg, name):
    key = dep_key(sub, rg, name)
    dep = app.state["deployments"].get(key)
    if dep is None:
        return empty_response(204)
    if current_state(app, dep) in ("Accepted", "Running"):
        fail(409, "DeploymentActive", "The deployment '%s' is active and cannot be deleted; "
             "cancel it first." % name)
    op = app.ops.start(req, "deployment_delete", "arm", {"sub": sub, "rg": rg, "name": name},
                       final="delete", headers="location", data={"key": key})
    app.ops.settle(op)
    return empty_response(202, app.ops.response_headers(op, req, False))


def finish_delete(app, op):
    if op["outcome"] == "Succeeded":
        app.state["deployments"].pop(op["data"]["key"], None)


def cancel_deployment(app, req, sub, rg, name):
    dep = get_dep(app, sub, rg, name)
    state = current_state(app, dep)
    if state not in ("Accepted", "Running"):
        fail(409, "DeploymentCannotBeCancelled", "The deployment '%s' cannot be cancelled "
             "because its provisioningState is '%s'. You can cancel a deployment only if the "
             "provisioningState is Accepted or Running." % (name, state))
    op = app.ops.get(dep["op_id"])
    app.ops.finish(op, "Canceled", error_detail("DeploymentCanceled", "The deployment '%s' was "
                                                "canceled." % name))
    return empty_response(204)


def validate_deployment(app, req, sub, rg, name):
    check_name(name)
    props = check_deployment_body(req.json)
    plan = make_plan(app, req, sub, rg, name, props)
    result = {"id": dep_id(sub, rg, name), "name": name, "type": "Microsoft.Resources/deployments",
              "properties": {"templateHash": plan["hash"], "parameters": plan["parameters"],
                             "mode": props["mode"], "provisioningState": "Succeeded",
                             "timestamp": iso(), "duration": "PT0S",
                             "correlationId": req.header("x-ms-correlation-request-id")
                             or new_id(),
                             "validatedResources": [{"id": r["id"]} for r in plan["resources"]],
                             "providers": [], "dependencies": [],
                             "validationLevel": props.get("validationLevel", "Template")}}
    if plan["warnings"]:
        result["properties"]["diagnostics"] = [
            {"level": "Warning", "code": "AzureFakeUnevaluated", "message": w}
            for w in plan["warnings"]]
    if not app.config["validate_async"]:
        return json_response(200, result)
    op = app.ops.start(req, "validate", "arm", {"sub": sub, "rg": rg, "name": name},
                       final="body", final_body=result, headers="location")
    app.ops.settle(op)
    return empty_response(202, app.ops.response_headers(op, req, False))


def what_if(app, req, sub, rg, name):
    check_name(name)
    props = check_deployment_body(req.json, what_if=True)
    plan = make_plan(app, req, sub, rg, name, props)
    prefix = ("/subscriptions/%s/resourcegroups/%s/" % (sub, rg)).lower()
    existing = {k: v for k, v in app.state["arm_resources"].items() if k.startswith(prefix)}
    fmt = (props.get("whatIfSettings") or {}).get("resultFormat", "FullResourcePayloads")
    changes = tpl.what_if(plan["resources"], existing, props["mode"],
                          full=fmt == "FullResourcePayloads")
    result = {"status": "Succeeded", "properties": {"changes": changes, "potentialChanges": [],
                                                    "diagnostics": [
        {"level": "Warning", "code": "AzureFakeUnevaluated", "message": w}
        for w in plan["warnings"]]}}
    op = app.ops.start(req, "whatif", "arm", {"sub": sub, "rg": rg, "name": name},
                       final="body", final_body=result, headers="location")
    app.ops.settle(op)
    return empty_response(202, app.ops.response_headers(op, req, False))


def export_template(app, req, sub, rg, name):
    dep = get_dep(app, sub, rg, name)
    return json_response(200, {"template": dep.get("template")})


def find_op(app, op_id, sub, rg, name):
    op = app.ops.get(op_id)
    if op is None or op["style"] != "arm" or op["scope"]["name"].lower() != name.lower() \
            or op["scope"]["rg"].lower() != rg.lower():
        fail(404, "OperationNotFound", "The operation '%s' could not be found." % op_id)
    return op


def operation_status(app, req, sub, rg, name, op_id):
    return app.ops.poll_async(find_op(app, op_id, sub, rg, name), req)


def operation_result(app, req, sub, rg, name, op_id):
    return app.ops.poll_location(find_op(app, op_id, sub, rg, name), req)


def deployment_operations(app, req, sub, rg, name):
    dep = get_dep(app, sub, rg, name)
    state = current_state(app, dep)
    out = []
    for i, r in enumerate(dep["plan"]["resources"]):
        failed = state == "Failed" and r["id"] == dep.get("failed_resource")
        rstate = ("Failed" if failed else
                  "Running" if state in ("Accepted", "Running") else
                  "Canceled" if state == "Canceled" else "Succeeded")
        op_id = hashlib.sha256((dep["id"] + r["id"]).encode()).hexdigest()[:16].upper()
        props = {"provisioningOperation": "Create", "provisioningState": rstate,
                 "timestamp": iso(), "duration": "PT1S", "trackingId": new_id(),
                 "serviceRequestId": new_id(),
                 "statusCode": "BadRequest" if failed else "OK",
                 "statusMessage": {"status": "Failed", "error": {"error": error_detail(
                     "BadRequest", "azure_fake: resource '%s' failed (FAKE_ARM_FAIL)."
                     % r["name"])}} if failed else {},
                 "targetResource": {"id": r["id"], "resourceType": r["type"],
                                    "resourceName": r["name"]}}
        out.append({"id": "%s/operations/%s" % (dep["id"], op_id), "operationId": op_id,
                    "properties": props})
    return json_response(200, {"value": out})


def register(app):
    r = app.arm_router
    r.add("GET", DEP, list_deployments, api=API)
    r.add("PUT", DEP + "/{name}", put_deployment, api=API, body="json")
    r.add("GET", DEP + "/{name}", get_deployment, api=API)
    r.add("HEAD", DEP + "/{name}", head_deployment, api=API)
    r.add("DELETE", DEP + "/{name}", delete_deployment, api=API)
    r.add("POST", DEP + "/{name}/cancel", cancel_deployment, api=API, body="none")
    r.add("POST", DEP + "/{name}/validate", validate_deployment, api=API, body="json")
    r.add("POST", DEP + "/{name}/whatIf", what_if, api=API, body="json")
    r.add("POST", DEP + "/{name}/exportTemplate", export_template, api=API, body="none")
    r.add("GET", DEP + "/{name}/operationStatuses/{op_id}", operation_status, api=API)
    r.add("GET", DEP + "/{name}/operationResults/{op_id}", operation_result, api=API)
    r.add("GET", RG + "/deployments/{name}/operations", deployment_operations, api=API)
    app.ops.finishers["deployment"] = finish_deployment
    app.ops.finishers["deployment_delete"] = finish_delete
    app.ops.renderers["deployment"] = render_final
