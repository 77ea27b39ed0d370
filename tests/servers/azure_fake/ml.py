"""ml.py — Azure Machine Learning (Microsoft.MachineLearningServices, api-version 2025-12-01):
workspace, datastores, model/code/environment/data assets, command jobs, online endpoints and
deployments with their LROs, and the scoring route the endpoints' scoringUri points at.

Contracts: /work/shared/reference/azure/ml/mfe-2025-12-01.paths-extract.json,
mfe-2025-12-01.definitions-extract.json and examples-2025-12-01/*.json.
"""
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from urllib.parse import quote, urlencode, urlsplit

import arm
from router import (HTTPError, empty_response, error_detail, fail, json_response, ml_fail, new_id,
                    system_data)
from schema import (ANY_OBJ, ARM_ENVELOPE, ASSET_BASE, BOOL, DUR, INT, RESOURCE_BASE, RO, STR_MAP,
                    check, obj, req_s, s)

API = "2025-12-01"
WS = ("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices"
      "/workspaces/{ws}")
LOC = "/subscriptions/{sub}/providers/Microsoft.MachineLearningServices/locations/{loc}"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")
ASSET_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$")  # ModelVersions pathPattern
VERSION = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_.]{0,254}$")
JOB_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$")  # Jobs pathPattern
ENDPOINT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$")
MAGIC = {name: re.compile(rx, re.IGNORECASE) for name, rx in {
    "job_fail": r"fake[-_]?job[-_]?fail", "job_hang": r"fake[-_]?job[-_]?hang",
    "deploy_fail": r"fake[-_]?deploy[-_]?fail", "score_broken": r"fake[-_]?score[-_]?broken",
    "endpoint_fail": r"fake[-_]?endpoint[-_]?fail"}.items()}
INSTANCE_TYPES = {t.lower() for t in (
    "Standard_DS1_v2 Standard_DS2_v2 Standard_DS3_v2 Standard_DS4_v2 Standard_DS5_v2 "
    "Standard_F2s_v2 Standard_F4s_v2 Standard_F8s_v2 Standard_F16s_v2 Standard_F32s_v2 "
    "Standard_F48s_v2 Standard_F64s_v2 Standard_F72s_v2 Standard_E2s_v3 Standard_E4s_v3 "
    "Standard_E8s_v3 Standard_E16s_v3 Standard_E32s_v3 Standard_E48s_v3 Standard_E64s_v3 "
    "Standard_D2as_v4 Standard_D4as_v4 Standard_D8as_v4 Standard_NC4as_T4_v3 "
    "Standard_NC6s_v3 Standard_NC12s_v3 Standard_NC24s_v3 Standard_NC24ads_A100_v4").split()}
TERMINAL_JOB = ("Completed", "Failed", "Canceled", "NotResponding", "Paused")

# ---- schemas (definitions extract; "[strict]" marks what the fake requires beyond the spec) ----

MODEL_VERSION = obj(dict(ASSET_BASE, flavors={"type": "map", "nullable": True, "values": obj(
    {"data": STR_MAP})}, jobName=s(), modelType=s(), modelUri=s(), stage=s(),
    provisioningState=RO), required=["modelUri"])  # [strict] modelUri is x-nullable in the spec
CODE_VERSION = obj(dict(ASSET_BASE, codeUri=s(), provisioningState=RO), required=["codeUri"])
ENV_VERSION = obj(dict(
    ASSET_BASE, image=s(), condaFile=s(), osType=s(enum=["Linux", "Windows"]),
    build=obj({"contextUri": req_s(), "dockerfilePath": s()}, required=["contextUri"]),
    inferenceConfig=ANY_OBJ, autoRebuild=s(enum=["Disabled", "OnBaseImageUpdate"]), stage=s(),
    environmentType=RO, provisioningState=RO))
DATA_VERSION = obj(dict(ASSET_BASE, dataType={"type": "string", "enum": ["uri_file", "uri_folder",
                                                                          "mltable"]},
                        dataUri=req_s(), referencedUris={"type": "array", "items": s(),
                                                         "nullable": True},
                        stage=s(), provisioningState=RO), required=["dataType", "dataUri"])
CONTAINER = obj(dict(RESOURCE_BASE, isArchived=BOOL, latestVersion=RO, nextVersion=RO,
                     provisioningState=RO))

INPUT_MODES = ["ReadOnlyMount", "ReadWriteMount", "Download", "Direct", "EvalMount",
               "EvalDownload"]
ASSET_INPUT = obj({"description": s(), "jobInputType": s(), "mode": s(enum=INPUT_MODES),
                   "uri": req_s(), "pathOnCompute": s()}, required=["uri"])
JOB_INPUT = {"type": "union", "key": "jobInputType", "nullable": True, "variants": dict(
    {t: ASSET_INPUT for t in ("uri_file", "uri_folder", "mltable", "custom_model",
                              "mlflow_model", "triton_model")},
    literal=obj({"description": s(), "jobInputType": s(), "value": req_s()}, required=["value"]))}
JOB_OUTPUT = {"type": "union", "key": "jobOutputType", "nullable": True, "variants": {
    t: obj({"description": s(), "jobOutputType": s(), "uri": s(), "assetName": s(),
            "assetVersion": s(), "pathOnCompute": s(),
            "mode": s(enum=["ReadWriteMount", "Upload", "Direct"])})
    for t in ("uri_file", "uri_folder", "mltable", "custom_model", "mlflow_model",
              "triton_model")}}
COMMAND_JOB = obj(dict(
    RESOURCE_BASE, componentId=s(), computeId=s(), displayName=s(), experimentName=s(),
    identity=obj({"identityType": {"type": "string", "enum": ["AMLToken", "Managed",
                                                              "UserIdentity"]},
                  "clientId": s(), "objectId": s(), "resourceId": s()},
                 required=["identityType"]),
    isArchived=BOOL, jobType={"type": "string"}, notificationSetting=ANY_OBJ,
    services={"type": "map", "nullable": True, "values": obj(
        {"endpoint": s(), "jobServiceType": s(), "port": {"type": "integer", "nullable": True},
         "properties": STR_MAP, "nodes": ANY_OBJ, "errorMessage": RO, "status": RO})},
    status=RO, parentJobName=s(), codeId=s(), command=req_s(),
    distribution=obj({"distributionType": {"type": "string", "enum": ["Mpi", "TensorFlow",
                                                                      "PyTorch"]}},
                     required=["distributionType"], extra=True),
    environmentId=req_s(), environmentVariables=STR_MAP,
    inputs={"type": "map", "values": JOB_INPUT, "nullable": True},
    outputs={"type": "map", "values": JOB_OUTPUT, "nullable": True},
    limits=obj({"jobLimitsType": {"type": "string", "enum": ["Command"]}, "timeout": DUR},
               required=["jobLimitsType"]),
    parameters=RO, queueSettings=obj({"jobTier": s(enum=["Null", "Spot", "Basic", "Standard",
                                                         "Premium"])}),
    resources=obj({"instanceCount": INT, "instanceType": s(), "properties": ANY_OBJ,
                   "dockerArgs": s(), "shmSize": s(pattern=r"^\d+[bBkKmMgG]$"),
                   "locations": {"type": "array", "items": s(), "nullable": True},
                   "maxInstanceCount": {"type": "integer", "nullable": True}}, nullable=False)),
    required=["jobType", "command", "environmentId", "computeId"])  # [strict] computeId
JOB_RESOURCE = obj(dict(ARM_ENVELOPE, properties={"type": "any"}), required=["properties"])

SKU = obj({"name": {"type": "string", "min": 1}, "tier": s(enum=["Free", "Basic", "Standard",
                                                                  "Premium"]),
           "size": s(), "family": s(), "capacity": {"type": "integer", "minimum": 0,
                                                    "nullable": True}}, required=["name"])
IDENTITY = obj({"type": {"type": "string", "enum": ["None", "SystemAssigned", "UserAssigned",
                                                    "SystemAssigned,UserAssigned"]},
                "userAssignedIdentities": {"type": "map", "values": ANY_OBJ, "nullable": True},
                "principalId": RO, "tenantId": RO}, required=["type"])
TRACKED = dict(ARM_ENVELOPE, location={"type": "string", "min": 1}, tags=STR_MAP,
               identity=IDENTITY, kind=s(), sku=SKU)
TRAFFIC = {"type": "map", "nullable": True, "values": {"type": "integer", "minimum": 0,
                                                        "maximum": 100}}
ENDPOINT = obj(dict(TRACKED, properties=obj({
    "authMode": {"type": "string", "enum": ["AMLToken", "Key", "AADToken"]},
    "description": s(), "keys": obj({"primaryKey": s(), "secondaryKey": s()}),
    "properties": STR_MAP, "scoringUri": RO, "swaggerUri": RO, "compute": s(),
    "mirrorTraffic": TRAFFIC, "provisioningState": RO,
    "publicNetworkAccess": {"type": "string", "enum": ["Enabled", "Disabled"]},
    "traffic": TRAFFIC}, required=["authMode"], nullable=False)),
    required=["location", "properties"])
PROBE = obj({"failureThreshold": INT, "initialDelay": DUR, "period": {"type": "duration"},
             "successThreshold": INT, "timeout": {"type": "duration"}})
DEPLOYMENT = obj(dict(TRACKED, properties=obj({
    "codeConfiguration": obj({"codeId": s(), "scoringScript": req_s()},
                             required=["scoringScript"]),
    "description": s(), "environmentId": s(), "environmentVariables": STR_MAP,
    "properties": STR_MAP, "appInsightsEnabled": BOOL, "dataCollector": ANY_OBJ,
    "egressPublicNetworkAccess": {"type": "string", "enum": ["Enabled", "Disabled"]},
    "endpointComputeType": {"type": "string", "enum": ["Managed", "Kubernetes",
                                                       "AzureMLCompute"]},
    "instanceType": s(), "livenessProbe": PROBE, "readinessProbe": PROBE, "startupProbe": PROBE,
    "model": s(), "modelMountPath": s(), "provisioningState": RO,
    "requestSettings": obj({"maxConcurrentRequestsPerInstance": INT, "maxQueueWait": DUR,
                            "requestTimeout": DUR}),
    "scaleSettings": obj({"scaleType": {"type": "string", "enum": ["Default",
                                                                   "TargetUtilization"]}},
                         required=["scaleType"], extra=True)},
    required=["endpointComputeType", "model", "instanceType"],  # [strict] model, instanceType
    nullable=False)), required=["location", "properties", "sku"])  # [strict] sku
PATCH_BODY = obj({"tags": STR_MAP, "identity": IDENTITY, "sku": obj(
    {"name": s(), "tier": s(), "size": s(), "family": s(), "capacity": {
        "type": "integer", "minimum": 0, "nullable": True}})})
LOGS_REQUEST = obj({"containerType": {"type": "string", "enum": ["StorageInitializer",
                                                                 "InferenceServer"]},
                    "tail": {"type": "integer", "minimum": 0, "nullable": True}})
REGENERATE = obj({"keyType": {"type": "string", "enum": ["Primary", "Secondary"]},
                  "keyValue": s()}, required=["keyType"])


def validate(body, schema, what, path=""):
    errors = []
    out = check(body, schema, path, errors)
    if errors:
        first = errors[0]["message"]
        more = " (and %d more problems; see details)" % (len(errors) - 1) if len(errors) > 1 else ""
        ml_fail(400, "Invalid %s: %s%s" % (what, first, more), target=errors[0].get("target"),
                details=errors)
    return out


# ---- workspace scope -------------------------------------------------------------------------

def workspace(app, sub, rg, ws):
    """The workspace's state; 404 (ARM ResourceNotFound) when it is not configured."""
    for name, wrg in app.config["workspaces"].items():
        if name.lower() == ws.lower() and wrg.lower() == rg.lower():
            ids = {"sub": sub, "rg": wrg, "ws": name}
            st = app.state["ml"].setdefault(workspace_key({"_ids": ids}), {
                "assets": {"models": {}, "codes": {}, "environments": {}, "data": {}},
                "jobs": {}, "endpoints": {}})
            st["_ids"] = ids
            return st
    fail(404, "ResourceNotFound", "The Resource 'Microsoft.MachineLearningServices/workspaces/%s'"
         " under resource group '%s' was not found. For more details please go to "
         "https://aka.ms/ARMResourceNotFoundFix" % (ws, rg))


def ws_id(w):
    i = w["_ids"]
    return ("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.MachineLearningServices/"
            "workspaces/%s" % (i["sub"], i["rg"], i["ws"]))


def ws_location(app, w):
    return arm.rg_location(app, w["_ids"]["rg"])


def same_location(a, b):
    return a.replace(" ", "").lower() == b.replace(" ", "").lower()


def get_workspace(app, req, sub, rg, ws):
    w = workspace(app, sub, rg, ws)
    loc = ws_location(app, w)
    wid = str(uuid.uuid5(uuid.NAMESPACE_URL, ws_id(w)))
    return json_response(200, {
        "id": ws_id(w), "name": w["_ids"]["ws"], "type": "Microsoft.MachineLearningServices/"
        "workspaces", "location": loc, "kind": "Default", "tags": {},
        "identity": {"type": "SystemAssigned", "principalId": new_id(),
                     "tenantId": app.config["tenant_id"]},
        "sku": {"name": "Basic", "tier": "Basic"},
        "properties": {"workspaceId": wid, "friendlyName": w["_ids"]["ws"],
                       "provisioningState": "Succeeded",
                       "discoveryUrl": "https://%s.api.azureml.ms/discovery" % loc,
                       "mlFlowTrackingUri": "azureml://%s.api.azureml.ms/mlflow/v1.0%s"
                                            % (loc, ws_id(w)),
                       "storageAccount": "/subscriptions/%s/resourceGroups/%s/providers/"
                                         "Microsoft.Storage/storageAccounts/%s"
                                         % (sub, rg, app.azurite["account"])},
        "systemData": system_data(app.started)})


# ---- datastores ------------------------------------------------------------------------------

def datastore_body(app, w):
    az = app.azurite
    kind = app.config["datastore_credentials"]  # AccountKey | Sas
    return {"id": ws_id(w) + "/datastores/workspaceblobstore", "name": "workspaceblobstore",
            "type": "Microsoft.MachineLearningServices/workspaces/datastores",
            "properties": {"description": "Default blob datastore (azure_fake: Azurite at %s)"
                                          % az["url"],
                           "tags": {}, "properties": {}, "isDefault": True,
                           "credentials": {"credentialsType": kind,
                                           "secrets": {"secretsType": kind}},
                           "datastoreType": "AzureBlob", "accountName": az["account"],
                           "containerName": az["container"],
                           "endpoint": app.config["datastore_endpoint"],
                           "protocol": app.config["datastore_protocol"],
                           "serviceDataAccessAuthIdentity": "None"},
            "systemData": system_data(app.started)}


def list_datastores(app, req, sub, rg, ws):
    check_query(req, ("$skip", "count", "isDefault", "names", "searchText", "orderBy",
                      "orderByAsc"))
    return json_response(200, {"value": [datastore_body(app, workspace(app, sub, rg, ws))]})


def get_datastore(app, req, sub, rg, ws, name):
    w = workspace(app, sub, rg, ws)
    if name != "workspaceblobstore":
        ml_fail(404, "Datastore '%s' not found in workspace '%s'." % (name, ws))
    return json_response(200, datastore_body(app, w))


def list_secrets(app, req, sub, rg, ws, name):
    get_datastore(app, req, sub, rg, ws, name)
    if app.config["datastore_credentials"] == "Sas":
        # SasDatastoreSecrets {sasToken}: "Storage container SAS token" (a query string).
        return json_response(200, {"secretsType": "Sas", "sasToken": account_sas(app)})
    return json_response(200, {"secretsType": "AccountKey", "key": app.azurite["key"]})


# ---- assets: models, codes, environments, data ----------------------------------------------------

ASSETS = {
    "models": {"label": "Model", "schema": MODEL_VERSION,
               "immutable": ("modelUri", "modelType", "flavors", "jobName"), "uri": "modelUri"},
    "codes": {"label": "Code", "schema": CODE_VERSION, "immutable": ("codeUri",),
              "uri": "codeUri"},
    "environments": {"label": "Environment", "schema": ENV_VERSION,
                     "immutable": ("image", "build", "condaFile", "osType", "inferenceConfig"),
                     "uri": None},
    "data": {"label": "Data", "schema": DATA_VERSION, "immutable": ("dataType", "dataUri"),
             "uri": "dataUri"},
}


def check_query(req, allowed):
    for k, _ in req.query_list:
        if k != "api-version" and k not in allowed:
            ml_fail(400, "Unknown query parameter '%s'; this operation takes %s."
                    % (k, ", ".join(allowed)), target=k)


def check_asset_uri(app, value, field):
    """modelUri/codeUri/dataUri: a storage or asset URI, never a local path."""
    u = urlsplit(value)
    ok = u.scheme in ("azureml", "https", "wasbs", "abfss", "runs") or (
        u.scheme == "http" and u.hostname in ("127.0.0.1", "localhost"))
    if not ok:
        ml_fail(400, "Invalid %s '%s': expected azureml://datastores/<datastore>/paths/<path>, "
                "https://<account>.blob.core.windows.net/<container>/<path> or runs:/<run>/<path>"
                " (a local path is not an asset URI)." % (field, value), target="properties." + field)
    m = re.match(r"^azureml://(?:.*/)?datastores/([^/]+)/paths/(.+)$", value)
    if u.scheme == "azureml" and "/datastores/" in "/" + value[len("azureml://"):]:
        if not m:
            ml_fail(400, "Invalid %s '%s': expected azureml://datastores/<datastore>/paths/<path>."
                    % (field, value), target="properties." + field)
        if m.group(1) != "workspaceblobstore":
            ml_fail(400, "Invalid %s '%s': datastore '%s' does not exist in this workspace."
                    % (field, value, m.group(1)), target="properties." + field)


def render_container(w, kind, name, c):
    versions = c["versions"]
    numeric = [int(v) for v in versions if v.isdigit()]
    latest = max(versions.values(), key=lambda v: v["created"])["version"] if versions else None
    return {"id": "%s/%s/%s" % (ws_id(w), kind, name), "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/%s" % kind,
            "properties": {"description": c.get("description"), "tags": c.get("tags") or {},
                           "properties": c.get("properties") or {},
                           "isArchived": c.get("isArchived", False), "latestVersion": latest,
                           "nextVersion": str(max(numeric) + 1 if numeric else 1),
                           "provisioningState": "Succeeded"},
            "systemData": system_data(c["created"])}


def render_version(w, kind, name, v):
    props = dict(v["properties"])
    props.setdefault("tags", {})
    props.setdefault("properties", {})
    props.setdefault("isArchived", False)
    props.setdefault("isAnonymous", False)
    props["provisioningState"] = "Succeeded"
    return {"id": "%s/%s/%s/versions/%s" % (ws_id(w), kind, name, v["version"]),
            "name": v["version"],
            "type": "Microsoft.MachineLearningServices/workspaces/%s/versions" % kind,
            "properties": props, "systemData": system_data(v["created"])}


def asset_routes(app, kind):
    spec = ASSETS[kind]
    label = spec["label"]

    def store(w):
        return w["assets"][kind]

    def check_name(name):
        if not ASSET_NAME.match(name):
            ml_fail(400, "%s name '%s' is invalid: it must match %s." % (label, name,
                                                                          ASSET_NAME.pattern),
                    target="name")

    def get_container_or_404(w, name):
        c = store(w).get(name)
        if c is None:
            ml_fail(404, "%s container '%s' not found in workspace '%s'."
                    % (label, name, w["_ids"]["ws"]))
        return c

    def list_containers(app, req, sub, rg, ws):
        w = workspace(app, sub, rg, ws)
        check_query(req, ("$skip", "count", "listViewType"))
        items = [render_container(w, kind, n, c) for n, c in sorted(store(w).items())]
        return json_response(200, {"value": items})

    def put_container(app, req, sub, rg, ws, name):
        w = workspace(app, sub, rg, ws)
        check_name(name)
        body = validate(req.json, obj(dict(ARM_ENVELOPE, properties=CONTAINER),
                                      required=["properties"]), label + " container")
        props = body["properties"]
        existed = name in store(w)
        c = store(w).setdefault(name, {"created": time.time(), "versions": {}})
        for k in ("description", "tags", "properties", "isArchived"):
            if k in props:
                c[k] = props[k]
        return json_response(200 if existed else 201, render_container(w, kind, name, c))

    def get_container(app, req, sub, rg, ws, name):
        w = workspace(app, sub, rg, ws)
        return json_response(200, render_container(w, kind, name, get_container_or_404(w, name)))

    def delete_container(app, req, sub, rg, ws, name):
        w = workspace(app, sub, rg, ws)
        return empty_response(200 if store(w).pop(name, None) else 204)

    def put_version(app, req, sub, rg, ws, name, version):
        w = workspace(app, sub, rg, ws)
        check_name(name)
        if not VERSION.match(version):
            ml_fail(400, "%s version '%s' is invalid: it must match %s."
                    % (label, version, VERSION.pattern), target="version")
        body = validate(req.json, obj(dict(ARM_ENVELOPE, properties=spec["schema"]),
                                      required=["properties"]), label + " version")
        props = body["properties"]
        if spec["uri"]:
            check_asset_uri(app, props[spec["uri"]], spec["uri"])
        if kind == "environments" and (props.get("image") is None) == (props.get("build") is None):
            ml_fail(400, "Invalid Environment version: give exactly one of 'properties.image' "
                    "or 'properties.build'.", target="properties.image")
        c = store(w).setdefault(name, {"created": time.time(), "versions": {}})
        old = c["versions"].get(version)
        if old:
            oldp = old["properties"]
            for f in spec["immutable"]:
                if oldp.get(f) != props.get(f):
                    ml_fail(409, "%s %s:%s already exists with a different %s ('%s' != '%s'). "
                            "Versions are immutable: create a new version instead."
                            % (label, name, version, f, oldp.get(f), props.get(f)),
                            target="properties." + f)
            for k, v in (oldp.get("properties") or {}).items():
                if (props.get("properties") or {}).get(k) != v:
                    ml_fail(409, "%s %s:%s: properties can be added, but not removed or altered "
                            "('%s')." % (label, name, version, k), target="properties.properties")
            old["properties"] = props
            return json_response(200, render_version(w, kind, name, old))
        rec = {"version": version, "created": time.time(), "properties": props}
        c["versions"][version] = rec
        return json_response(201, render_version(w, kind, name, rec))

    def get_version(app, req, sub, rg, ws, name, version):
        w = workspace(app, sub, rg, ws)
        v = get_container_or_404(w, name)["versions"].get(version)
        if v is None:
            ml_fail(404, "%s %s:%s not found in workspace '%s'." % (label, name, version, ws))
        return json_response(200, render_version(w, kind, name, v))

    def delete_version(app, req, sub, rg, ws, name, version):
        w = workspace(app, sub, rg, ws)
        c = store(w).get(name)
        gone = c and c["versions"].pop(version, None)
        return empty_response(200 if gone else 204)

    def list_versions(app, req, sub, rg, ws, name):
        w = workspace(app, sub, rg, ws)
        check_query(req, ("$skip", "$orderBy", "$top", "version", "description", "offset",
                          "tags", "properties", "feed", "listViewType", "stage"))
        c = store(w).get(name)
        items = list(c["versions"].values()) if c else []
        view = req.query("listViewType", "ActiveOnly")
        if view not in ("ActiveOnly", "ArchivedOnly", "All"):
            ml_fail(400, "listViewType must be ActiveOnly, ArchivedOnly or All.",
                    target="listViewType")
        if view != "All":
            want = view == "ArchivedOnly"
            items = [v for v in items if bool(v["properties"].get("isArchived")) == want]
        if req.query("version") is not None:
            items = [v for v in items if v["version"] == req.query("version")]
        if req.query("stage") is not None:
            items = [v for v in items if v["properties"].get("stage") == req.query("stage")]
        for param, field in (("tags", "tags"), ("properties", "properties")):
            if req.query(param):
                items = [v for v in items if matches_kv(v["properties"].get(field) or {},
                                                        req.query(param))]
        order = req.query("$orderBy", "createdtime desc")
        m = re.match(r"^(createdtime|version)(?:\s+(asc|desc))?$", order.strip(), re.IGNORECASE)
        if not m:
            ml_fail(400, "Unsupported $orderBy '%s': use 'createdtime desc|asc' or "
                    "'version desc|asc'." % order, target="$orderBy")
        field, direction = m.group(1).lower(), (m.group(2) or "asc").lower()
        if field == "createdtime":
            items.sort(key=lambda v: v["created"])
        else:
            items.sort(key=lambda v: (0, int(v["version"]), "") if v["version"].isdigit()
                       else (1, 0, v["version"]))
        if direction == "desc":
            items.reverse()
        return paged(app, req, [render_version(w, kind, name, v) for v in items])

    base = WS + "/" + kind
    r = app.arm_router
    r.add("GET", base, list_containers, api=API)
    r.add("PUT", base + "/{name}", put_container, api=API, body="json")
    r.add("GET", base + "/{name}", get_container, api=API)
    r.add("DELETE", base + "/{name}", delete_container, api=API)
    r.add("GET", base + "/{name}/versions", list_versions, api=API)
    r.add("PUT", base + "/{name}/versions/{version}", put_version, api=API, body="json")
    r.add("GET", base + "/{name}/versions/{version}", get_version, api=API)
    r.add("DELETE", base + "/{name}/versions/{version}", delete_version, api=API)


def matches_kv(have, expr):
    """`tags` / `properties` filter: "tag1,tag2=value2" (names, optionally with values)."""
    for part in expr.split(","):
        k, eq, v = part.strip().partition("=")
        if k not in have or (eq and have[k] != v):
            return False
    return True


def paged(app, req, items):
    """ArmPaginatedResult: `value` and a `nextLink` carrying $skip, `$top` caps the total."""
    top = req.query("$top")
    if top is not None:
        if not top.isdigit() or int(top) < 1:
            ml_fail(400, "$top must be a positive integer.", target="$top")
        items = items[: int(top)]
    skip = req.query("$skip", "0")
    if not skip.isdigit():
        ml_fail(400, "$skip '%s' is not a continuation token this service issued." % skip,
                target="$skip")
    start, size = int(skip), int(app.config["page_size"])
    body = {"value": items[start:start + size]}
    if start + size < len(items):
        q = [(k, v) for k, v in req.query_list if k != "$skip"] + [("$skip", str(start + size))]
        body["nextLink"] = req.base_url + req.path + "?" + urlencode(q)
    return json_response(200, body)


def resolve_asset(app, w, kind, ref, field):
    """An ARM id of an existing version in this workspace (-> record) or a registry asset id."""
    if not isinstance(ref, str):
        return None
    if re.match(r"^azureml://registries/[^/]+/%s/[^/]+/(versions/[^/]+|labels/latest)$" % kind,
                ref):
        return "registry"
    m = re.match(r"^(/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                 r"Microsoft\.MachineLearningServices/workspaces/[^/]+)/%s/([^/]+)/versions/"
                 r"([^/]+)$" % kind, ref, re.IGNORECASE)
    if not m:
        ml_fail(400, "Invalid %s '%s': expected the ARM id of a %s version (%s/%s/<name>/versions"
                "/<version>) or azureml://registries/<registry>/%s/<name>/versions/<version>; "
                "CLI short forms such as 'azureml:name:1' are not accepted by the REST API."
                % (field, ref, kind[:-1] if kind != "data" else kind, ws_id(w), kind, kind),
                target="properties." + field)
    if m.group(1).lower() != ws_id(w).lower():
        ml_fail(400, "Invalid %s '%s': it belongs to another workspace." % (field, ref),
                target="properties." + field)
    c = w["assets"][kind].get(m.group(2))
    v = c and c["versions"].get(m.group(3))
    if not v:
        ml_fail(400, "Invalid %s: %s version %s:%s does not exist in this workspace."
                % (field, ASSETS[kind]["label"], m.group(2), m.group(3)),
                target="properties." + field, inner="NotFoundError")
    return {"name": m.group(2), "version": m.group(3), "record": v}


# ---- jobs ------------------------------------------------------------------------------------------

def check_compute(app, w, compute_id):
    m = re.match(r"^(/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                 r"Microsoft\.MachineLearningServices/workspaces/[^/]+)/computes/([^/]+)$",
                 compute_id, re.IGNORECASE)
    if not m or m.group(1).lower() != ws_id(w).lower():
        ml_fail(400, "Invalid computeId '%s': expected %s/computes/<name>." % (compute_id,
                                                                               ws_id(w)),
                target="properties.computeId")
    if m.group(2) not in app.config["computes"]:
        ml_fail(400, "Compute '%s' was not found in workspace '%s' (configured: %s)."
                % (m.group(2), w["_ids"]["ws"], ", ".join(app.config["computes"])),
                target="properties.computeId", inner="NotFoundError")


def job_status(app, job, observe=False):
    if job.get("cancel_op"):
        op = app.ops.get(job["cancel_op"])
        if op and observe:
            app.ops.advance(op)
        return job["status"]
    if job["status"] in TERMINAL_JOB:
        return job["status"]
    if observe:
        job["polls"] += 1
        states = app.config["job_states"]
        if job["polls"] <= len(states):
            job["status"] = states[job["polls"] - 1]
        elif job["outcome"] == "hang":
            job["status"] = "Running"
        else:
            job["status"] = job["outcome"]
    return job["status"]


def render_job(app, w, job, observe=False):
    status = job_status(app, job, observe)
    props = json.loads(json.dumps(job["properties"]))
    props["status"] = status
    props.setdefault("experimentName", "Default")
    props.setdefault("isArchived", False)
    props["parameters"] = {}
    ids = w["_ids"]
    services = props.get("services") or {}
    services["Studio"] = {"jobServiceType": "Studio", "endpoint":
                          "https://ml.azure.com/runs/%s?wsid=/subscriptions/%s/resourcegroups/%s"
                          "/workspaces/%s&tid=%s" % (job["name"], ids["sub"], ids["rg"],
                                                     ids["ws"], app.config["tenant_id"]),
                          "status": None, "errorMessage": None, "port": None, "properties": None}
    services["Tracking"] = {"jobServiceType": "Tracking", "endpoint":
                            "azureml://%s.api.azureml.ms/mlflow/v1.0%s?" % (
                                ws_location(app, w), ws_id(w)),
                            "status": None, "errorMessage": None, "port": None,
                            "properties": None}
    props["services"] = services
    if status == "Failed" and job.get("error"):
        props["error"] = job["error"]  # azure_fake extension: why the job failed
    return {"id": ws_id(w) + "/jobs/" + job["name"], "name": job["name"],
            "type": "Microsoft.MachineLearningServices/workspaces/jobs", "properties": props,
            "systemData": system_data(job["created"])}


def put_job(app, req, sub, rg, ws, id):
    w = workspace(app, sub, rg, ws)
    if not JOB_ID.match(id):
        ml_fail(400, "Job id '%s' is invalid: it must match %s." % (id, JOB_ID.pattern),
                target="id")
    body = validate(req.json, JOB_RESOURCE, "job")
    jt = body["properties"].get("jobType") if isinstance(body["properties"], dict) else None
    if jt not in ("AutoML", "Command", "Sweep", "Pipeline", "Spark"):
        ml_fail(400, "Invalid job: [Required] 'properties.jobType' must be one of AutoML, "
                "Command, Sweep, Pipeline, Spark (got %r)." % (jt,), target="properties.jobType")
    if jt != "Command":
        ml_fail(400, "azure_fake simulates Command jobs only (jobType '%s')." % jt,
                target="properties.jobType")
    props = validate(body["properties"], COMMAND_JOB, "Command job", "properties")
    submitted = json.loads(json.dumps(props))
    if props.get("jobType") != "Command":
        ml_fail(400, "Invalid job: jobType must be 'Command'.", target="properties.jobType")
    resolve_asset(app, w, "environments", props["environmentId"], "environmentId")
    check_compute(app, w, props["computeId"])
    if props.get("codeId"):
        resolve_asset(app, w, "codes", props["codeId"], "codeId")
    for name, out in (props.get("outputs") or {}).items():
        if out is not None and out.get("uri"):
            check_asset_uri(app, out["uri"], "outputs.%s.uri" % name)
    for name, inp in (props.get("inputs") or {}).items():
        if inp is not None and inp.get("jobInputType") != "literal":
            check_asset_uri(app, inp["uri"], "inputs.%s.uri" % name)
    old = w["jobs"].get(id)
    if old:
        # "For update case, the Tags in the definition passed in will replace Tags in the
        # existing job." Anything else differing is a conflict.
        a = {k: v for k, v in old["submitted"].items() if k != "tags"}
        b = {k: v for k, v in submitted.items() if k != "tags"}
        if a != b:
            changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            ml_fail(409, "Job '%s' already exists; only its tags can be updated (changed: %s)."
                    % (id, ", ".join(changed)), target="properties." + changed[0])
        old["properties"]["tags"] = props.get("tags")
        return json_response(200, render_job(app, w, old))
    outputs = props.get("outputs") or {}
    for name, out in outputs.items():
        if out is not None and not out.get("uri"):
            out["uri"] = "azureml://datastores/workspaceblobstore/paths/azureml/%s/%s/" % (id, name)
        if out is not None:
            out.setdefault("mode", "ReadWriteMount")
    outputs.setdefault("default", {"jobOutputType": "uri_folder", "mode": "ReadWriteMount",
                                   "uri": "azureml://datastores/workspaceartifactstore/"
                                          "ExperimentRun/dcid.%s" % id})
    props["outputs"] = outputs
    outcome, error = "Completed", None
    if MAGIC["job_fail"].search(props["command"]):
        outcome = "Failed"
        error = error_detail("UserError", "Execution failed. User process '%s' exited with status "
                             "code 1. Please check log file 'user_logs/std_log.txt' for more "
                             "details. (azure_fake: the command contains FAKE_JOB_FAIL)"
                             % props["command"].split()[0])
    elif MAGIC["job_hang"].search(props["command"]):
        outcome = "hang"
    job = {"name": id, "created": time.time(), "properties": props, "submitted": submitted,
           "status": "NotStarted",
           "polls": 0, "outcome": outcome, "error": error, "cancel_op": None}
    w["jobs"][id] = job
    return json_response(201, render_job(app, w, job))


def get_job_or_404(w, id):
    job = w["jobs"].get(id)
    if job is None:
        ml_fail(404, "Job '%s' not found in workspace '%s'." % (id, w["_ids"]["ws"]))
    return job


def get_job(app, req, sub, rg, ws, id):
    w = workspace(app, sub, rg, ws)
    return json_response(200, render_job(app, w, get_job_or_404(w, id), observe=True))


def list_jobs(app, req, sub, rg, ws):
    w = workspace(app, sub, rg, ws)
    check_query(req, ("$skip", "jobType", "tag", "listViewType", "properties", "parentJobName",
                      "assetName", "scheduled", "scheduleId"))
    items = [render_job(app, w, j) for _, j in sorted(w["jobs"].items(),
                                                      key=lambda kv: -kv[1]["created"])]
    if req.query("jobType"):
        items = [j for j in items if j["properties"]["jobType"] == req.query("jobType")]
    if req.query("tag"):
        items = [j for j in items if matches_kv(j["properties"].get("tags") or {},
                                                req.query("tag"))]
    return paged(app, req, items)


def cancel_job(app, req, sub, rg, ws, id):
    w = workspace(app, sub, rg, ws)
    job = get_job_or_404(w, id)
    status = job_status(app, job)
    if status in TERMINAL_JOB or job.get("cancel_op"):
        ml_fail(409, "Job '%s' is in state '%s' and cannot be canceled." % (id, status))
    job["status"] = "CancelRequested"
    op = app.ops.start(req, "job_cancel", "ml", {"sub": sub, "location": ws_location(app, w)},
                       final="empty", headers="location", data={"ws": workspace_key(w), "id": id})
    job["cancel_op"] = op["id"]
    app.ops.settle(op)
    return empty_response(202, app.ops.response_headers(op, req, timeout=False))


def finish_job_cancel(app, op):
    job = app.state["ml"][op["data"]["ws"]]["jobs"].get(op["data"]["id"])
    if job and op["outcome"] == "Succeeded":
        job["status"] = "Canceled"


def delete_job(app, req, sub, rg, ws, id):
    w = workspace(app, sub, rg, ws)
    if id not in w["jobs"]:
        return empty_response(204)
    op = app.ops.start(req, "job_delete", "ml", {"sub": sub, "location": ws_location(app, w)},
                       final="delete", headers="location", data={"ws": workspace_key(w), "id": id})
    app.ops.settle(op)
    return empty_response(202, app.ops.response_headers(op, req))


def finish_job_delete(app, op):
    if op["outcome"] == "Succeeded":
        app.state["ml"][op["data"]["ws"]]["jobs"].pop(op["data"]["id"], None)


def workspace_key(w):
    i = w["_ids"]
    return "%s/%s/%s" % (i["sub"].lower(), i["rg"].lower(), i["ws"].lower())


# ---- online endpoints -------------------------------------------------------------------------------

def check_endpoint_name(name, what="Endpoint"):
    if not ENDPOINT_NAME.match(name):
        ml_fail(400, "%s name '%s' is invalid: 3 to 32 characters, starting with a letter, "
                "letters, digits and '-' only, not ending with '-'." % (what, name),
                target="name")


def get_endpoint_or_404(w, name):
    ep = w["endpoints"].get(name.lower())
    if ep is None:
        ml_fail(404, "Online endpoint '%s' not found in workspace '%s'." % (name, w["_ids"]["ws"]))
    return ep


def busy(app, rec):
    op = app.ops.get(rec.get("op_id")) if rec.get("op_id") else None
    return op if op and not op["done"] else None


def ensure_idle(app, rec, what):
    """One operation at a time per endpoint or deployment: 409 while another runs."""
    if busy(app, rec):
        ml_fail(409, "%s '%s' is '%s'; wait for the running operation to finish."
                % (what, rec["name"], rec["provisioningState"]))


def observe(app, rec):
    op = busy(app, rec)
    if op:
        app.ops.advance(op)


def render_endpoint(app, req, w, ep):
    props = dict(ep["properties"])
    props.update({"provisioningState": ep["provisioningState"], "keys": None,
                  "scoringUri": req.base_url + "/score/" + ep["name"],
                  "swaggerUri": req.base_url + "/score/" + ep["name"] + "/swagger.json"})
    props.setdefault("traffic", {})
    props.setdefault("mirrorTraffic", {})
    props.setdefault("publicNetworkAccess", "Enabled")
    body = {"id": ws_id(w) + "/onlineEndpoints/" + ep["name"], "name": ep["name"],
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
            "location": ep["location"], "tags": ep.get("tags") or {},
            "identity": render_identity(app, ep.get("identity")), "properties": props,
            "systemData": system_data(ep["created"])}
    for k in ("kind", "sku"):
        if ep.get(k) is not None:
            body[k] = ep[k]
    return body


def render_identity(app, ident):
    ident = dict(ident or {"type": "SystemAssigned"})
    if "SystemAssigned" in ident["type"]:
        ident["principalId"] = str(uuid.uuid5(uuid.NAMESPACE_OID, json.dumps(ident, sort_keys=True)))
        ident["tenantId"] = app.config["tenant_id"]
    return ident


def check_traffic(ep, traffic, field):
    if not traffic:
        return
    for name, pct in traffic.items():
        dep = ep["deployments"].get(name.lower())
        if dep is None:
            ml_fail(400, "Invalid %s: deployment '%s' does not exist under endpoint '%s'."
                    % (field, name, ep["name"]), target="properties." + field)
        if pct > 0 and dep["provisioningState"] != "Succeeded":
            ml_fail(400, "Invalid %s: deployment '%s' is in state '%s'; traffic can only go to "
                    "a deployment that Succeeded." % (field, name, dep["provisioningState"]),
                    target="properties." + field)
    total = sum(traffic.values())
    if field == "traffic" and total not in (0, 100):
        ml_fail(400, "Invalid traffic: values must sum to 100 (or all be 0); they sum to %d."
                % total, target="properties.traffic")
    if field == "mirrorTraffic" and total > 50:
        ml_fail(400, "Invalid mirrorTraffic: values must sum to at most 50; they sum to %d."
                % total, target="properties.mirrorTraffic")


def put_endpoint(app, req, sub, rg, ws, name):
    w = workspace(app, sub, rg, ws)
    check_endpoint_name(name)
    body = validate(req.json, ENDPOINT, "online endpoint")
    loc = ws_location(app, w)
    if not same_location(body["location"], loc):
        ml_fail(400, "Invalid location '%s': an online endpoint must be in its workspace's "
                "region '%s'." % (body["location"], loc), target="location")
    props = body["properties"]
    ep = w["endpoints"].get(name.lower())
    if ep:
        ensure_idle(app, ep, "Online endpoint")
    if ep and props.get("keys"):
        ml_fail(400, "'properties.keys' can only be set when the endpoint is created; use "
                "regenerateKeys.", target="properties.keys")
    if not ep:
        for field in ("traffic", "mirrorTraffic"):
            if props.get(field):
                ml_fail(400, "Invalid %s: endpoint '%s' has no deployments yet." % (field, name),
                        target="properties." + field)
    if ep:
        check_traffic(ep, props.get("traffic"), "traffic")
        check_traffic(ep, props.get("mirrorTraffic"), "mirrorTraffic")
    settled = {k: v for k, v in props.items() if k != "keys"}
    outcome, error = "Succeeded", None
    if MAGIC["endpoint_fail"].search(name):
        outcome = "Failed"
        error = error_detail("EndpointCreationFailed", "azure_fake: endpoint '%s' failed "
                             "provisioning (its name contains FAKE-ENDPOINT-FAIL)." % name)
    op = app.ops.start(req, "endpoint", "ml", {"sub": sub, "location": loc},
                       outcome=outcome, error=error, headers="async",
                       data={"ws": workspace_key(w), "name": name.lower()})
    if ep is None:
        keys = props.get("keys") or {}
        ep = {"name": name, "created": time.time(), "location": loc, "deployments": {},
              "properties": {"authMode": settled["authMode"], "traffic": {}},
              "keys": {"primaryKey": keys.get("primaryKey") or random_key(),
                       "secondaryKey": keys.get("secondaryKey") or random_key()},
              "provisioningState": "Creating", "score_counter": 0}
        w["endpoints"][name.lower()] = ep
        status = 201
    else:
        ep["provisioningState"] = "Updating"
        status = 200
    ep["op_id"] = op["id"]
    ep["pending"] = {"properties": settled, "tags": body.get("tags"),
                     "identity": body.get("identity"), "kind": body.get("kind"),
                     "sku": body.get("sku")}
    app.ops.settle(op)
    return json_response(status, render_endpoint(app, req, w, ep),
                         app.ops.response_headers(op, req))


def random_key():
    return base64.b64encode(secrets.token_bytes(24)).decode()


def finish_endpoint(app, op):
    w = app.state["ml"][op["data"]["ws"]]
    ep = w["endpoints"].get(op["data"]["name"])
    if ep is None or ep.get("op_id") != op["id"]:
        return
    pending = ep.pop("pending", None) or {}
    if op["outcome"] == "Succeeded":
        ep["properties"] = pending.get("properties", ep["properties"])
        for k in ("tags", "identity", "kind", "sku"):
            if pending.get(k) is not None:
                ep[k] = pending[k]
    ep["provisioningState"] = op["outcome"]


def get_endpoint(app, req, sub, rg, ws, name):
    w = workspace(app, sub, rg, ws)
    ep = get_endpoint_or_404(w, name)
    observe(app, ep)
    return json_response(200, render_endpoint(app, req, w, ep))


def list_endpoints(app, req, sub, rg, ws):
    w = workspace(app, sub, rg, ws)
    check_query(req, ("name", "count", "computeType", "$skip", "tags", "properties", "orderBy"))
    return paged(app, req, [render_endpoint(app, req, w, e) for _, e in
                            sorted(w["endpoints"].items())])


def patch_endpoint(app, req, sub, rg, ws, name):
    w = workspace(app, sub, rg, ws)
    ep = get_endpoint_or_404(w, name)
    body = validate(req.json, PATCH_BODY, "endpoint update")
    ensure_idle(app, ep, "Online endpoint")
    op = app.ops.start(req, "endpoint_patch", "ml", {"sub": sub, "location": ep["location"]},
                       headers="location", data={"ws": workspace_key(w), "name": name.lower(),
                                                 "patch": body})
    ep["op_id"] = op["id"]
    ep["provisioningState"] = "Updating"
    app.ops.settle(op)
    return empty_response(202, app.ops.response_headers(op, req))


def finish_endpoint_patch(app, op):
    ep = app.state["ml"][op["data"]["ws"]]["endpoints"].get(op["data"]["name"])
    if ep is None:
        return
    if op["outcome"] == "Succeeded":
        for k, v in op["data"]["patch"].items():
            ep[k] = v
    ep["provisioningState"] = op["outcome"]


def render_patched_endpoint(app, op, req):
    w = app.state["ml"][op["data"]["ws"]]
    ep = w["endpoints"][op["data"]["name"]]
    return 200, render_endpoint(app, req, w, ep)


def delete_endpoint(app, req, sub, rg, ws, name):
    w = workspace(app, sub, rg, ws)
    ep = w["endpoints"].get(name.lower())
    if ep is None:
        return empty_response(204)
    ensure_idle(app, ep, "Online endpoint")
    op = app.ops.start(req, "endpoint_delete", "ml", {"sub": sub, "location": ep["location"]},
                       final="delete", headers="location",
                       data={"ws": workspace_key(w), "name": name.lower()})
    ep["op_id"] = op["id"]
    ep["provisioningState"] = "Deleting"
    app.ops.settle(op)
    return empty_response(202, app.ops.response_headers(op, req))


def finish_endpoint_delete(app, op):
    w = app.state["ml"][op["data"]["ws"]]
    if op["outcome"] == "Succeeded":
        w["endpoints"].pop(op["data"]["name"], None)
    elif op["data"]["name"] in w["endpoints"]:
        w["endpoints"][op["data"]["name"]]["provisioningState"] = "Failed"


def list_keys(app, req, sub, rg, ws, name):
    w = workspace(app, sub, rg, ws)
    ep = get_endpoint_or_404(w, name)
    if ep["properties"]["authMode"] != "Key":
        ml_fail(400, "Online endpoint '%s' uses authMode '%s'; listKeys is only available for "
                "authMode 'Key' (use the token action instead)." % (name,
                                                                    ep["properties"]["authMode"]))
    return json_response(200, dict(ep["keys"]))


def regenerate_keys(app, req, sub, rg, ws, name):
    w = workspace(app, sub, rg, ws)
    ep = get_endpoint_or_404(w, name)
    body = validate(req.json, REGENERATE, "regenerate keys request")
    if ep["properties"]["authMode"] != "Key":
        ml_fail(400, "Online endpoint '%s' does not use key authentication." % name)
    op = app.ops.start(req, "regenerate_keys", "ml", {"sub": sub, "location": ep["location"]},
                       final="empty", headers="location",
                       data={"ws": workspace_key(w), "name": name.lower(),
                             "keyType": body["keyType"], "keyValue": body.get("keyValue")})
    app.ops.settle(op)
    return empty_response(202, app.ops.response_headers(op, req, timeout=False))


def finish_regenerate(app, op):
    ep = app.state["ml"][op["data"]["ws"]]["endpoints"].get(op["data"]["name"])
    if ep and op["outcome"] == "Succeeded":
        field = "primaryKey" if op["data"]["keyType"] == "Primary" else "secondaryKey"
        ep["keys"][field] = op["data"]["keyValue"] or random_key()


def endpoint_token(app, req, sub, rg, ws, name):
    w = workspace(app, sub, rg, ws)
    ep = get_endpoint_or_404(w, name)
    if ep["properties"]["authMode"] != "AMLToken":
        ml_fail(400, "Online endpoint '%s' uses authMode '%s'; the token action is only "
                "available for authMode 'AMLToken'." % (name, ep["properties"]["authMode"]))
    now = int(time.time())
    token = "amltoken." + secrets.token_urlsafe(32)
    exp = now + int(app.config["token_lifetime"])
    app.state["endpoint_tokens"][token] = {"endpoint": ep["name"].lower(), "exp": exp}
    return json_response(200, {"accessToken": token, "expiryTimeUtc": exp,
                               "refreshAfterTimeUtc": now + (exp - now) // 2,
                               "tokenType": "Bearer"})


# ---- online deployments -----------------------------------------------------------------------------

def render_deployment(app, w, ep, d):
    props = dict(d["properties"])
    props["provisioningState"] = d["provisioningState"]
    props.setdefault("appInsightsEnabled", False)
    props.setdefault("egressPublicNetworkAccess", "Enabled")
    props.setdefault("scaleSettings", {"scaleType": "Default"})
    props.setdefault("requestSettings", {"maxConcurrentRequestsPerInstance": 1,
                                         "requestTimeout": "PT5S", "maxQueueWait": "PT0.5S"})
    body = {"id": "%s/onlineEndpoints/%s/deployments/%s" % (ws_id(w), ep["name"], d["name"]),
            "name": d["name"],
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
            "location": d["location"], "tags": d.get("tags") or {}, "sku": d["sku"],
            "properties": props, "systemData": system_data(d["created"])}
    if d.get("identity"):
        body["identity"] = render_identity(app, d["identity"])
    if d.get("kind") is not None:
        body["kind"] = d["kind"]
    return body


def get_deployment_or_404(ep, name):
    d = ep["deployments"].get(name.lower())
    if d is None:
        ml_fail(404, "Deployment '%s' not found under online endpoint '%s'." % (name, ep["name"]))
    return d


def put_deployment(app, req, sub, rg, ws, endpoint, name):
    w = workspace(app, sub, rg, ws)
    ep = get_endpoint_or_404(w, endpoint)
    check_endpoint_name(name, "Deployment")
    body = validate(req.json, DEPLOYMENT, "online deployment")
    if busy(app, ep) or ep["provisioningState"] != "Succeeded":
        ml_fail(409, "Online endpoint '%s' is '%s'; deployments can be created once it has "
                "Succeeded." % (endpoint, ep["provisioningState"]))
    if not same_location(body["location"], ep["location"]):
        ml_fail(400, "Invalid location '%s': a deployment must be in its endpoint's region '%s'."
                % (body["location"], ep["location"]), target="location")
    props = body["properties"]
    if props["endpointComputeType"] != "Managed":
        ml_fail(400, "azure_fake simulates Managed online deployments only (endpointComputeType "
                "'%s')." % props["endpointComputeType"], target="properties.endpointComputeType")
    if props["instanceType"].lower() not in INSTANCE_TYPES:
        ml_fail(400, "Instance type '%s' is not supported for managed online deployments."
                % props["instanceType"], target="properties.instanceType")
    cap = body["sku"].get("capacity")
    if not isinstance(cap, int) or cap < 1:
        ml_fail(400, "Invalid sku: 'sku.capacity' (the instance count) must be at least 1.",
                target="sku.capacity")
    model = resolve_asset(app, w, "models", props["model"], "model")
    mlflow = isinstance(model, dict) and str(model["record"]["properties"].get(
        "modelType", "")).lower() in ("mlflow_model", "mlflowmodel")
    if props.get("environmentId"):
        resolve_asset(app, w, "environments", props["environmentId"], "environmentId")
    elif not mlflow:
        ml_fail(400, "Invalid online deployment: 'properties.environmentId' is required unless "
                "the model is an MLflow model (modelType mlflow_model).",
                target="properties.environmentId")
    code = props.get("codeConfiguration")
    if code and code.get("codeId"):
        resolve_asset(app, w, "codes", code["codeId"], "codeConfiguration.codeId")
    old = ep["deployments"].get(name.lower())
    if old:
        ensure_idle(app, old, "Deployment")
        for f in ("instanceType", "endpointComputeType"):
            if old["properties"][f].lower() != props[f].lower():
                ml_fail(400, "Property '%s' of deployment '%s' cannot be changed ('%s' -> '%s'); "
                        "create a new deployment instead." % (f, name, old["properties"][f],
                                                              props[f]),
                        target="properties." + f)
    model_text = ""
    if isinstance(model, dict):
        mp = model["record"]["properties"]
        model_text = " ".join([model["name"]] + ["%s=%s" % kv for kv in
                                                  (mp.get("tags") or {}).items()])
    outcome, error, reason = "Succeeded", None, None
    if MAGIC["deploy_fail"].search(model_text):
        outcome = "Failed"
        reason = ("model %s:%s is named or tagged FAKE_DEPLOY_FAIL, so the scoring script's "
                  "init() raises" % (model["name"], model["version"]))
        error = error_detail("ResourceNotReady", "User container has crashed or terminated. "
                             "Please see troubleshooting guide, available here: "
                             "https://aka.ms/oe-tsg#error-resourcenotready",
                             details=[error_detail("ResourceNotReady", "azure_fake: " + reason)])
    op = app.ops.start(req, "online_deployment", "ml", {"sub": sub, "location": ep["location"]},
                       outcome=outcome, error=error, headers="async",
                       data={"ws": workspace_key(w), "endpoint": ep["name"].lower(),
                             "name": name.lower()})
    rec = old or {"name": name, "created": time.time(), "requests": 0, "log": []}
    rec.update({"location": ep["location"], "tags": body.get("tags"), "sku": body["sku"],
                "identity": body.get("identity"), "kind": body.get("kind"), "properties": props,
                "provisioningState": "Updating" if old else "Creating", "op_id": op["id"],
                "fail_reason": reason,
                "broken": bool(MAGIC["score_broken"].search(model_text)),
                "model": {"name": model["name"], "version": model["version"],
                          "uri": model["record"]["properties"].get("modelUri")}
                if isinstance(model, dict) else {"name": props["model"], "version": "",
                                                 "uri": props["model"]}})
    ep["deployments"][name.lower()] = rec
    app.ops.settle(op)
    return json_response(200 if old else 201, render_deployment(app, w, ep, rec),
                         app.ops.response_headers(op, req))


def finish_deployment(app, op):
    w = app.state["ml"][op["data"]["ws"]]
    ep = w["endpoints"].get(op["data"]["endpoint"])
    d = ep and ep["deployments"].get(op["data"]["name"])
    if not d or d.get("op_id") != op["id"]:
        return
    d["provisioningState"] = op["outcome"]
    d["log"] = startup_log(d, op["outcome"])


def startup_log(d, outcome):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    props = d["properties"]
    script = (props.get("codeConfiguration") or {}).get("scoringScript", "score.py")
    lines = ["%s,000 | root | INFO | Azure ML Inferencing HTTP server v1.3.0 (azure_fake)" % stamp,
             "Server Settings", "---------------",
             "Entry Script Name: /var/azureml-app/%s" % script,
             "Model Directory: /var/azureml-app/azureml-models/%s/%s"
             % (d["model"]["name"], d["model"]["version"]),
             "Worker Count: 1", "Worker Timeout (seconds): 300", "Server Port: 31311",
             "Application Insights Enabled: %s" % str(props.get("appInsightsEnabled", False)).lower(),
             "Initializing logger", "%s,100 | root | INFO | Starting up app insights client" % stamp,
             "%s,200 | root | INFO | Found user script at /var/azureml-app/%s" % (stamp, script),
             "%s,300 | root | INFO | run() is not decorated. Server will invoke it with the input "
             "in JSON string." % stamp,
             "%s,400 | root | INFO | Invoking user's init function" % stamp]
    if outcome == "Failed":
        lines += ["%s,500 | root | ERROR | User's init function failed" % stamp,
                  "%s,500 | root | ERROR | Encountered Exception Traceback (most recent call "
                  "last):" % stamp,
                  '  File "/var/azureml-app/%s", line 12, in init' % script,
                  "    model = load_model(model_dir)",
                  "RuntimeError: azure_fake: %s" % d.get("fail_reason"),
                  "Worker exiting (pid: 42)", "Shutting down: Master",
                  "Reason: Worker failed to boot."]
    else:
        lines += ["%s,600 | root | INFO | Users's init has completed successfully" % stamp,
                  "%s,700 | root | INFO | Scoring timeout is set to 5000" % stamp,
                  "Listening at: http://0.0.0.0:31311 (1)", "Booting worker with pid: 42"]
    return lines


def storage_log(d):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    return ["%s | storage-initializer | INFO | Downloading model %s:%s from %s" % (
                stamp, d["model"]["name"], d["model"]["version"], d["model"]["uri"]),
            "%s | storage-initializer | INFO | Model downloaded to /var/azureml-app/azureml-models"
            "/%s/%s" % (stamp, d["model"]["name"], d["model"]["version"]),
            "%s | storage-initializer | INFO | Storage initializer finished" % stamp]


def get_deployment(app, req, sub, rg, ws, endpoint, name):
    w = workspace(app, sub, rg, ws)
    ep = get_endpoint_or_404(w, endpoint)
    d = get_deployment_or_404(ep, name)
    observe(app, d)
    return json_response(200, render_deployment(app, w, ep, d))


def list_deployments(app, req, sub, rg, ws, endpoint):
    w = workspace(app, sub, rg, ws)
    ep = get_endpoint_or_404(w, endpoint)
    check_query(req, ("$orderBy", "$top", "$skip"))
    return paged(app, req, [render_deployment(app, w, ep, d) for _, d in
                            sorted(ep["deployments"].items())])


def patch_deployment(app, req, sub, rg, ws, endpoint, name):
    w = workspace(app, sub, rg, ws)
    ep = get_endpoint_or_404(w, endpoint)
    d = get_deployment_or_404(ep, name)
    body = validate(req.json, PATCH_BODY, "deployment update")
    ensure_idle(app, d, "Deployment")
    if body.get("sku") and body["sku"].get("capacity") is not None and body["sku"]["capacity"] < 1:
        ml_fail(400, "Invalid sku: capacity must be at least 1.", target="sku.capacity")
    op = app.ops.start(req, "deployment_patch", "ml", {"sub": sub, "location": ep["location"]},
                       headers="location", data={"ws": workspace_key(w), "endpoint":
                                                 ep["name"].lower(), "name": name.lower(),
                                                 "patch": body})
    d["op_id"] = op["id"]
    d["provisioningState"] = "Updating"
    app.ops.settle(op)
    return empty_response(202, app.ops.response_headers(op, req))


def finish_deployment_patch(app, op):
    ep = app.state["ml"][op["data"]["ws"]]["endpoints"].get(op["data"]["endpoint"])
    d = ep and ep["deployments"].get(op["data"]["name"])
    if not d:
        return
    if op["outcome"] == "Succeeded":
        patch = op["data"]["patch"]
        if "tags" in patch:
            d["tags"] = patch["tags"]
        if patch.get("sku"):
            d["sku"] = dict(d["sku"], **{k: v for k, v in patch["sku"].items() if v is not None})
    d["provisioningState"] = op["outcome"]


def render_patched_deployment(app, op, req):
    w = app.state["ml"][op["data"]["ws"]]
    ep = w["endpoints"][op["data"]["endpoint"]]
    return 200, render_deployment(app, w, ep, ep["deployments"][op["data"]["name"]])


def delete_deployment(app, req, sub, rg, ws, endpoint, name):
    w = workspace(app, sub, rg, ws)
    ep = get_endpoint_or_404(w, endpoint)
    d = ep["deployments"].get(name.lower())
    if d is None:
        return empty_response(204)
    live = {k.lower(): v for k, v in (ep["properties"].get("traffic") or {}).items()}
    mirror = {k.lower(): v for k, v in (ep["properties"].get("mirrorTraffic") or {}).items()}
    if live.get(name.lower(), 0) > 0 or mirror.get(name.lower(), 0) > 0:
        ml_fail(400, "Deployment '%s' still receives %d%% of endpoint '%s' traffic; set its "
                "traffic to 0 before deleting it." % (name, live.get(name.lower(), 0) or
                                                      mirror.get(name.lower(), 0), ep["name"]))
    ensure_idle(app, d, "Deployment")
    op = app.ops.start(req, "deployment_delete", "ml", {"sub": sub, "location": ep["location"]},
                       final="delete", headers="location",
                       data={"ws": workspace_key(w), "endpoint": ep["name"].lower(),
                             "name": name.lower()})
    d["op_id"] = op["id"]
    d["provisioningState"] = "Deleting"
    app.ops.settle(op)
    return empty_response(202, app.ops.response_headers(op, req))


def finish_deployment_delete(app, op):
    ep = app.state["ml"][op["data"]["ws"]]["endpoints"].get(op["data"]["endpoint"])
    if ep and op["outcome"] == "Succeeded":
        ep["deployments"].pop(op["data"]["name"], None)


def get_logs(app, req, sub, rg, ws, endpoint, name):
    w = workspace(app, sub, rg, ws)
    ep = get_endpoint_or_404(w, endpoint)
    d = get_deployment_or_404(ep, name)
    body = validate(req.json, LOGS_REQUEST, "logs request")
    container = body.get("containerType") or "InferenceServer"
    if d["provisioningState"] in ("Creating",) and not d["log"]:
        lines = ["azure_fake: the container has not started yet (deployment is Creating)."]
    elif container == "StorageInitializer":
        lines = storage_log(d)
    else:
        lines = d["log"]
    tail = body.get("tail")
    if tail is not None:
        lines = lines[-tail:] if tail else []
    return json_response(200, {"content": "\n".join(lines) + ("\n" if lines else "")})


# ---- registry pending uploads --------------------------------------------------------------------

REG = ("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices"
       "/registries/{registry}")
PENDING_UPLOAD = obj({"pendingUploadId": s(), "pendingUploadType": s(
    enum=["None", "TemporaryBlobReference"])})


def account_sas(app, hours=1):
    """An account SAS (sv 2019-12-12, which Azurite accepts) for blob containers and objects."""
    az = app.azurite
    st = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 300))
    se = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + hours * 3600))
    q = [("sv", "2019-12-12"), ("ss", "b"), ("srt", "co"), ("sp", "racwl"), ("st", st),
         ("se", se), ("spr", "https,http")]
    to_sign = "\n".join([az["account"], "racwl", "b", "co", st, se, "", "https,http",
                         "2019-12-12"]) + "\n"
    sig = base64.b64encode(hmac.new(base64.b64decode(az["key"]), to_sign.encode(),
                                    hashlib.sha256).digest()).decode()
    return "&".join("%s=%s" % (k, quote(v, safe="")) for k, v in q + [("sig", sig)])


def start_pending_upload(app, req, sub, rg, registry, name, version):
    reg_rg = app.config["registries"].get(registry)
    if reg_rg is None or reg_rg.lower() != rg.lower():
        fail(404, "ResourceNotFound", "The Resource 'Microsoft.MachineLearningServices/"
             "registries/%s' under resource group '%s' was not found." % (registry, rg))
    if not ASSET_NAME.match(name) or not VERSION.match(version):
        ml_fail(400, "Invalid model name or version '%s:%s'." % (name, version), target="name")
    body = validate(req.json, PENDING_UPLOAD, "pending upload request")
    if body.get("pendingUploadType", "TemporaryBlobReference") != "TemporaryBlobReference":
        ml_fail(400, "TemporaryBlobReference is the only supported pendingUploadType.",
                target="pendingUploadType")
    upload_id = body.get("pendingUploadId") or new_id()
    az = app.azurite
    blob_uri = "%s/%s/LocalUpload/%s/%s/%s" % (az["url"], az["container"], upload_id, name,
                                               version)
    return json_response(200, {
        "blobReferenceForConsumption": {
            "blobUri": blob_uri,
            "storageAccountArmId": "/subscriptions/%s/resourceGroups/%s/providers/"
                                   "Microsoft.Storage/storageAccounts/%s" % (sub, rg,
                                                                             az["account"]),
            "credential": {"credentialType": "SAS", "sasUri": blob_uri + "?" + account_sas(app)}},
        "pendingUploadId": upload_id, "pendingUploadType": "TemporaryBlobReference"})


# ---- ML operation status URLs ----------------------------------------------------------------------

def find_op(app, sub, loc, op_id):
    op = app.ops.get(op_id)
    if op is None or op["style"] != "ml" or op["scope"]["sub"].lower() != sub.lower() \
            or not same_location(op["scope"]["location"], loc):
        ml_fail(404, "Operation '%s' not found." % op_id)
    return op


def operation_status(app, req, sub, loc, op_id):
    return app.ops.poll_async(find_op(app, sub, loc, op_id), req)


def operation_result(app, req, sub, loc, op_id):
    return app.ops.poll_location(find_op(app, sub, loc, op_id), req)


# ---- scoring (data plane) ----------------------------------------------------------------------

def score_error(status, message, headers=None):
    raise HTTPError(json_response(status, {"message": message}, headers))


def find_endpoint(app, name):
    for w in app.state["ml"].values():
        ep = w["endpoints"].get(name.lower())
        if ep:
            return ep
    return None


def rows_from(body):
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object with \"data\", \"inputs\" or \"input_data\"")
    if "input_data" in body:  # MLflow-style {"input_data": {"columns": [...], "data": [[...]]}}
        inner = body["input_data"]
        body = {"data": inner.get("data") if isinstance(inner, dict) else inner}
    if "data" in body:
        rows = body["data"]
        if not isinstance(rows, list) or not rows:
            raise ValueError("\"data\" must be a non-empty list of rows")
        for i, r in enumerate(rows):
            if not isinstance(r, list) or not r or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in r):
                raise ValueError("data[%d] must be a non-empty list of numbers" % i)
        return rows
    if "inputs" in body:
        items = body["inputs"]
        if not isinstance(items, list) or not items:
            raise ValueError("\"inputs\" must be a non-empty list of objects")
        rows = []
        for i, it in enumerate(items):
            if not isinstance(it, dict) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in it.values()):
                raise ValueError("inputs[%d] must be an object of numbers" % i)
            rows.append(list(it.values()))
        return rows
    raise ValueError("expected a JSON object with \"data\", \"inputs\" or \"input_data\"")


def score(app, req, endpoint):
    ep = find_endpoint(app, endpoint)
    if ep is None or ep["provisioningState"] in ("Creating", "Deleting", "Failed"):
        score_error(404, "Endpoint '%s' not found." % endpoint)
    if req.method != "POST":
        score_error(405, "Scoring takes POST.")
    auth = req.header("Authorization") or ""
    scheme, _, cred = auth.partition(" ")
    mode = ep["properties"]["authMode"]
    ok = False
    if scheme == "Bearer" and cred:
        if mode == "Key":
            ok = cred in (ep["keys"]["primaryKey"], ep["keys"]["secondaryKey"])
        elif mode == "AMLToken":
            t = app.state["endpoint_tokens"].get(cred)
            ok = bool(t and t["endpoint"] == ep["name"].lower() and t["exp"] > time.time())
        else:
            t = app.state["tokens"].get(cred)
            ok = bool(t and t["family"] == "ml" and t["exp"] > time.time())
    if not ok:
        score_error(401, "Unauthorized: send 'Authorization: Bearer <%s>' for endpoint '%s'."
                    % ({"Key": "endpoint key", "AMLToken": "endpoint token"}.get(
                        mode, "Entra token for https://ml.azure.com"), endpoint))
    media = (req.header("Content-Type") or "").split(";")[0].strip().lower()
    if media != "application/json":
        score_error(415, "Content-Type must be application/json (got '%s')."
                    % (req.header("Content-Type") or ""))
    chosen = req.header("azureml-model-deployment")
    if chosen:
        d = ep["deployments"].get(chosen.lower())
        if d is None or d["provisioningState"] not in ("Succeeded", "Updating"):
            score_error(404, "Deployment '%s' not found or not ready under endpoint '%s'."
                        % (chosen, endpoint))
    else:
        traffic = [(k, v) for k, v in sorted((ep["properties"].get("traffic") or {}).items())
                   if v > 0]
        if not traffic:
            score_error(404, "No valid deployments to route to. Please check that the endpoint "
                        "has at least one deployment with positive weight values or use a "
                        "deployment specific header to route.")
        slot = ep["score_counter"] % sum(v for _, v in traffic)
        ep["score_counter"] += 1
        for k, v in traffic:
            if slot < v:
                chosen = k
                break
            slot -= v
        d = ep["deployments"][chosen.lower()]
    d["requests"] += 1
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    hdrs = [("azureml-model-deployment", d["name"]), ("x-request-id", new_id())]
    if d["broken"]:
        d["log"] += ["%s | root | ERROR | Encountered Exception Traceback (most recent call last):"
                     % stamp, '  File "/var/azureml-app/score.py", line 30, in run',
                     "RuntimeError: azure_fake: model %s:%s is named or tagged FAKE_SCORE_BROKEN"
                     % (d["model"]["name"], d["model"]["version"]),
                     '%s | 127.0.0.1 | "POST /score HTTP/1.1" 500' % stamp]
        # troubleshooting-online-endpoints: "If your model container returns a non-200
        # response, Azure returns a 424" with the container's status in these headers.
        score_error(424, "An unexpected error occurred in scoring script. Check the logs for "
                    "more info.", hdrs + [("ms-azureml-model-error-statuscode", "500"),
                                          ("ms-azureml-model-error-reason", "model_error")])
    try:
        rows = rows_from(json.loads(req.body.decode("utf-8")))
    except (ValueError, UnicodeDecodeError) as e:
        d["log"].append('%s | 127.0.0.1 | "POST /score HTTP/1.1" 400' % stamp)
        score_error(424, "Bad input: %s" % e, hdrs + [
            ("ms-azureml-model-error-statuscode", "400"),
            ("ms-azureml-model-error-reason", "model_error")])
    d["log"].append('%s | 127.0.0.1 | "POST /score HTTP/1.1" 200' % stamp)
    return json_response(200, {"predictions": [round(float(sum(r)), 4) for r in rows]}, hdrs)


def register(app):
    r = app.arm_router
    loc = LOC
    r.add("GET", loc + "/mfeOperationsStatus/{op_id}", operation_status, api=API)
    r.add("GET", loc + "/mfeOperationResults/{op_id}", operation_result, api=API)
    r.add("GET", WS, get_workspace, api=API)
    r.add("POST", REG + "/models/{name}/versions/{version}/startPendingUpload",
          start_pending_upload, api=API, body="json")
    r.add("GET", WS + "/datastores", list_datastores, api=API)
    r.add("GET", WS + "/datastores/{name}", get_datastore, api=API)
    r.add("POST", WS + "/datastores/{name}/listSecrets", list_secrets, api=API, body="none")
    for kind in ASSETS:
        asset_routes(app, kind)
    r.add("GET", WS + "/jobs", list_jobs, api=API)
    r.add("PUT", WS + "/jobs/{id}", put_job, api=API, body="json")
    r.add("GET", WS + "/jobs/{id}", get_job, api=API)
    r.add("DELETE", WS + "/jobs/{id}", delete_job, api=API)
    r.add("POST", WS + "/jobs/{id}/cancel", cancel_job, api=API, body="none")
    e = WS + "/onlineEndpoints"
    r.add("GET", e, list_endpoints, api=API)
    r.add("PUT", e + "/{name}", put_endpoint, api=API, body="json")
    r.add("GET", e + "/{name}", get_endpoint, api=API)
    r.add("PATCH", e + "/{name}", patch_endpoint, api=API, body="json")
    r.add("DELETE", e + "/{name}", delete_endpoint, api=API)
    r.add("POST", e + "/{name}/listKeys", list_keys, api=API, body="none")
    r.add("POST", e + "/{name}/regenerateKeys", regenerate_keys, api=API, body="json")
    r.add("POST", e + "/{name}/token", endpoint_token, api=API, body="none")
    d = e + "/{endpoint}/deployments"
    r.add("GET", d, list_deployments, api=API)
    r.add("PUT", d + "/{name}", put_deployment, api=API, body="json")
    r.add("GET", d + "/{name}", get_deployment, api=API)
    r.add("PATCH", d + "/{name}", patch_deployment, api=API, body="json")
    r.add("DELETE", d + "/{name}", delete_deployment, api=API)
    r.add("POST", d + "/{name}/getLogs", get_logs, api=API, body="json")
    ops = app.ops
    ops.finishers.update({"job_cancel": finish_job_cancel, "job_delete": finish_job_delete,
                          "endpoint": finish_endpoint, "endpoint_patch": finish_endpoint_patch,
                          "endpoint_delete": finish_endpoint_delete,
                          "regenerate_keys": finish_regenerate,
                          "online_deployment": finish_deployment,
                          "deployment_patch": finish_deployment_patch,
                          "deployment_delete": finish_deployment_delete})
    ops.renderers.update({"endpoint_patch": render_patched_endpoint,
                          "deployment_patch": render_patched_deployment})
