"""identity.py — Entra token endpoint, IMDS, App Service/Azure ML MSI, GitHub OIDC, bearer checks.

Contract: /work/shared/reference/azure/identity/entra-token-contracts.md (sections cited inline).
Tokens are JWT-shaped strings "signed" with an HMAC of the server's secret; the server also
remembers each one with its resource and expiry, which is what ARM and scoring check.
"""
import base64
import binascii
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qsl, unquote

from router import HTTPError, arm_error, json_response, new_id

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

# Resource URI (no "/.default", no trailing slash, lower case) -> audience family.
RESOURCES = {
    "https://management.azure.com": "arm",
    "https://management.core.windows.net": "arm",
    "https://storage.azure.com": "storage",
    "https://ml.azure.com": "ml",
    "https://graph.microsoft.com": "graph",
    "499b84ac-1321-427f-aa17-267ca6975798": "devops",
}
ARM_AUDIENCES = ("'https://management.core.windows.net/','https://management.core.windows.net',"
                 "'https://management.azure.com/','https://management.azure.com'")


def resource_family(resource, base_url=None):
    """The audience family of a resource URI. `base_url` is this server as the client addressed
    it: it stands in for the Resource Manager there (MLSTAGE_ARM_ENDPOINT points at it), and a
    client asks for "<its ARM endpoint>/.default", as it must for a sovereign cloud's ARM."""
    r = resource.rstrip("/").lower()
    if base_url and r == base_url.rstrip("/").lower():
        return "arm"
    return RESOURCES.get(r)


# ---- JWT-shaped tokens ------------------------------------------------------------

def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_jwt(app, claims):
    header = {"typ": "JWT", "alg": "RS256", "kid": "azure-fake"}
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    sig = hmac.new(app.secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(sig)


def parse_jwt(app, token):
    """(header, claims, signature_ok) or None when the string is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        sig = _unb64(parts[2])
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    expect = hmac.new(app.secret, (parts[0] + "." + parts[1]).encode(), hashlib.sha256).digest()
    return header, claims, hmac.compare_digest(sig, expect)


def issue_token(app, resource, client_id, via, oid=None, base_url=None):
    """Issues and remembers an access token for `resource`; returns (token, expires_at)."""
    now = int(time.time())
    exp = now + int(app.config["token_lifetime"])
    tenant = app.config["tenant_id"]
    claims = {"aud": resource,
              "iss": "https://sts.windows.net/%s/" % tenant, "iat": now, "nbf": now, "exp": exp,
              "appid": client_id, "tid": tenant, "oid": oid or client_id, "sub": oid or client_id,
              "idtyp": "app", "ver": "1.0", "uti": new_id()}
    token = mint_jwt(app, claims)
    app.state["tokens"][token] = {"resource": resource,
                                  "family": resource_family(resource, base_url),
                                  "client_id": client_id, "via": via, "issued": now, "exp": exp}
    return token, exp


# ---- Entra v2 token endpoint (section 1 and 2) ----------------------------------------

def aad_fail(status, error, code, description):
    now = time.gmtime()
    trace, corr = new_id(), new_id()
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", now)
    raise HTTPError(json_response(status, {
        "error": error,
        "error_description": "AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s"
                             % (code, description, trace, corr, stamp),
        "error_codes": [code], "timestamp": stamp, "trace_id": trace, "correlation_id": corr,
        "error_uri": "https://login.microsoftonline.com/error?code=%d" % code}))


def missing_param(name):
    aad_fail(400, "invalid_request", 900144,
             "The request body must contain the following parameter: '%s'." % name)


def token_get(app, req, tenant):
    aad_fail(400, "invalid_request", 900561,
             "The endpoint only accepts POST requests. Received a %s request." % req.method)


def token_post(app, req, tenant):
    cfg = app.config
    if tenant.lower() != cfg["tenant_id"].lower():
        aad_fail(400, "invalid_request", 90002,
                 "Tenant '%s' not found. Check to make sure you have the correct tenant ID and "
                 "are signing into the correct cloud." % tenant)
    ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        # What Entra answers when it cannot read a form: it finds no grant_type.
        missing_param("grant_type")
    try:
        text = req.body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError):
        aad_fail(400, "invalid_request", 9002313,
                 "Invalid request. Request is malformed or invalid.")
    form = {}
    for k, v in pairs:
        if k in form:
            aad_fail(400, "invalid_request", 9002313, "Invalid request. Request is malformed or "
                     "invalid. (azure_fake: parameter '%s' appears twice)" % k)
        form[k] = v
    basic = req.header("Authorization") or ""
    if basic.lower().startswith("basic "):
        # RFC 6749 2.3.1: form-urlencode id and secret, then base64 "id:secret".
        try:
            cid, _, sec = base64.b64decode(basic[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            aad_fail(401, "invalid_client", 7000215, "Invalid client secret provided.")
        form.setdefault("client_id", unquote(cid.replace("+", " ")))
        if "client_secret" in form:
            aad_fail(400, "invalid_request", 9002313, "Invalid request. Request is malformed or "
                     "invalid. (azure_fake: client secret sent both in Basic auth and the body)")
        form["client_secret"] = unquote(sec.replace("+", " "))
    grant = form.get("grant_type")
    if not grant:
        missing_param("grant_type")
    if grant != "client_credentials":
        aad_fail(400, "unsupported_grant_type", 70003,
                 "The app requested an unsupported grant type '%s'." % grant)
    client_id = form.get("client_id")
    if not client_id:
        missing_param("client_id")
    apps = cfg["apps"]
    appreg = apps.get(client_id) or apps.get(client_id.lower())
    if appreg is None:
        aad_fail(400, "unauthorized_client", 700016,
                 "Application with identifier '%s' was not found in the directory '%s'. This can "
                 "happen if the application has not been installed by the administrator of the "
                 "tenant or consented to by any user in the tenant. You may have sent your "
                 "authentication request to the wrong tenant." % (client_id, tenant))
    scope = form.get("scope")
    if not scope:
        missing_param("scope")
    resource = check_scope(scope, req.base_url)
    has_secret, has_assertion = "client_secret" in form, "client_assertion" in form
    if has_secret and has_assertion:
        aad_fail(400, "invalid_request", 9002313, "Invalid request. Request is malformed or "
                 "invalid. (azure_fake: both client_secret and client_assertion were sent)")
    if not has_secret and not has_assertion:
        aad_fail(401, "invalid_client", 7000218, "The request body must contain the following "
                 "parameter: 'client_assertion' or 'client_secret'.")
    if has_secret:
        if form["client_secret"] not in appreg.get("secrets", []):
            aad_fail(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the "
                     "secret being sent in the request is the client secret value, not the "
                     "client secret ID, for a secret added to app '%s'." % client_id)
    else:
        check_assertion(app, form, appreg)
    token, exp = issue_token(app, resource, client_id, "client_secret" if has_secret
                             else "client_assertion", base_url=req.base_url)
    life = exp - int(time.time())
    return json_response(200, {"token_type": "Bearer", "expires_in": life,
                               "ext_expires_in": life, "access_token": token})


def check_scope(scope, base_url=None):
    """One resource, ending in /.default (client credentials). Returns the resource URI."""
    scopes = scope.split()
    if not scopes:
        missing_param("scope")
    resources = []
    for s in scopes:
        if not s.endswith("/.default"):
            aad_fail(400, "invalid_scope", 1002012,
                     "The provided value for scope %s is not valid. Client credential flows must "
                     "have a scope value with /.default suffixed to the resource identifier "
                     "(application ID URI)." % s)
        resources.append(s[: -len("/.default")])
    families = {r.rstrip("/").lower() for r in resources}
    if len(families) > 1 or len(resources) > 1:
        aad_fail(400, "invalid_scope", 28000,
                 "Provided value for the input parameter scope is not valid because it contains "
                 "more than one resource. Scope %s is not valid." % scope)
    resource = resources[0]
    if resource_family(resource, base_url) is None:
        aad_fail(400, "invalid_resource", 500011,
                 "The resource principal named %s was not found in the tenant. This can happen if "
                 "the application has not been installed by the administrator of the tenant or "
                 "consented to by any user in the tenant." % resource)
    if resource.startswith("http") and not resource.endswith("/"):
        resource += "/"  # the token's audience, as Entra writes it for v1 resources
    return resource


def check_assertion(app, form, appreg):
    """Section 2 (federated credential): a JWT from a trusted issuer with a matching subject."""
    if form.get("client_assertion_type") != JWT_BEARER:
        aad_fail(400, "invalid_request", 9002313, "Invalid request. Request is malformed or "
                 "invalid. (azure_fake: client_assertion_type must be '%s')" % JWT_BEARER)
    parsed = parse_jwt(app, form["client_assertion"])
    if parsed is None:
        aad_fail(400, "invalid_request", 50027, "JWT token is invalid or malformed.")
    _, claims, sig_ok = parsed
    if not sig_ok:
        aad_fail(401, "invalid_client", 700027, "Client assertion contains an invalid signature.")
    now = time.time()
    if claims.get("exp", 0) <= now or claims.get("nbf", 0) > now + 300:
        aad_fail(400, "invalid_client", 700024,
                 "Client assertion is not within its valid time range. Current time: %s, expiry "
                 "time of assertion %s." % (int(now), claims.get("exp")))
    auds = claims.get("aud")
    auds = auds if isinstance(auds, list) else [auds]
    for fic in appreg.get("federated", []):
        if (claims.get("iss") == fic["issuer"] and claims.get("sub") == fic["subject"]
                and fic.get("audience", EXCHANGE_AUDIENCE) in auds):
            return
    aad_fail(400, "invalid_request", 70021,
             "No matching federated identity record found for presented assertion. Assertion "
             "Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'."
             % (claims.get("iss"), claims.get("sub"), ",".join(str(a) for a in auds)))


def openid_configuration(app, req, tenant):
    base = req.base_url + "/" + tenant
    return json_response(200, {
        "token_endpoint": base + "/oauth2/v2.0/token",
        "authorization_endpoint": base + "/oauth2/v2.0/authorize",
        "issuer": "https://login.microsoftonline.com/%s/v2.0" % app.config["tenant_id"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                  "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "token"],
        "tenant_region_scope": "EU"})


# ---- managed identity -------------------------------------------------------------------

def _mi_select(app, req, names, fail):
    """Which identity the query selects (section 5 and 6); `fail(msg)` raises."""
    mi = app.config["managed_identity"]
    if not mi.get("enabled", True):
        fail("Identity not found")
    chosen = [(k, req.query(k)) for k in names if req.query(k) is not None]
    if len(chosen) > 1:
        fail("Only one of %s may be given" % ", ".join(names))
    if chosen:
        k, v = chosen[0]
        field = {"client_id": "client_id", "clientid": "client_id", "object_id": "object_id",
                 "principal_id": "object_id", "msi_res_id": "msi_res_id",
                 "mi_res_id": "msi_res_id"}[k]
        if v.lower() != str(mi.get(field, "")).lower():
            fail("Identity not found")
    return mi


def imds_token(app, req):
    """Section 5: GET /metadata/identity/oauth2/token, header Metadata: true, strings for numbers."""
    def fail(desc, error="invalid_request"):
        raise HTTPError(json_response(400, {"error": error, "error_description": desc}))

    if req.header("Metadata") != "true":
        fail("Required metadata header not specified")
    if len(req.query_all("api-version")) != 1:
        fail("Required query variable 'api-version' is missing" if not req.query_all("api-version")
             else "api-version was given more than once")
    if req.query("api-version") != "2018-02-01":
        fail("Invalid API version %s; azure_fake serves 2018-02-01" % req.query("api-version"))
    resource = req.query("resource")
    if not resource:
        fail("Required query variable 'resource' is missing")
    if resource.endswith("/.default") or resource_family(resource, req.base_url) is None:
        fail("AADSTS500011: The resource principal named %s was not found in the tenant. "
             "(IMDS takes a resource URI, not a scope)" % resource, "invalid_resource")
    mi = _mi_select(app, req, ("client_id", "object_id", "msi_res_id"), fail)
    token, exp = issue_token(app, resource, mi["client_id"], "imds", mi.get("object_id"),
                             req.base_url)
    now = int(time.time())
    return json_response(200, {"access_token": token, "refresh_token": "",
                               "expires_in": str(exp - now), "expires_on": str(exp),
                               "ext_expires_in": str(exp - now), "not_before": str(now),
                               "resource": resource, "token_type": "Bearer",
                               "client_id": mi["client_id"]})


def msi_token(app, req):
    """Section 6: GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=..., X-IDENTITY-HEADER."""
    def fail(msg, status=400):
        raise HTTPError(json_response(status, {"statusCode": status, "message": msg,
                                               "correlationId": new_id()}))

    given = req.header("X-IDENTITY-HEADER")
    if given is None:
        fail("X-IDENTITY-HEADER header is missing", 401)
    if given != app.config["identity_header"]:
        fail("X-IDENTITY-HEADER header value is not valid", 401)
    if req.query_all("api-version") != ["2019-08-01"]:
        fail("api-version must be given once and be 2019-08-01")
    resource = req.query("resource")
    if not resource:
        fail("The resource query parameter is missing")
    if resource.endswith("/.default") or resource_family(resource, req.base_url) is None:
        fail("Unable to load the proper Managed Identity: AADSTS500011 resource '%s' was not "
             "found (MSI takes a resource URI, not a scope)" % resource)
    mi = _mi_select(app, req, ("client_id", "clientid", "mi_res_id", "principal_id"), fail)
    token, exp = issue_token(app, resource, mi["client_id"], "msi", mi.get("object_id"),
                             req.base_url)
    fmt = app.config["msi_expires_on"]
    if fmt == "int":  # "Azure ML ... returns expires_on as an integer"
        expires_on = exp
    elif fmt == "datetime":  # Windows App Service
        expires_on = time.strftime("%m/%d/%Y %I:%M:%S %p +00:00", time.gmtime(exp)).lstrip("0")
    else:
        expires_on = str(exp)
    return json_response(200, {"access_token": token, "expires_on": expires_on,
                               "resource": resource, "token_type": "Bearer",
                               "client_id": mi["client_id"]})


# ---- GitHub Actions OIDC (section 4) -----------------------------------------------------

def github_oidc(app, req):
    def fail(status, msg):
        raise HTTPError(json_response(status, {"message": msg}))

    auth = req.header("Authorization") or ""
    if auth != "Bearer " + app.config["actions_request_token"]:
        fail(401, "Bad credentials: send Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if req.query_all("api-version") != ["2.0"]:
        fail(400, "api-version must be given exactly once and be '2.0' (the request URL already "
                  "carries it: append '&audience=...', do not replace the query)")
    audiences = req.query_all("audience")
    if len(audiences) > 1:
        fail(400, "audience given more than once")
    raw = [p[len("audience="):] for p in req.raw_query.split("&") if p.startswith("audience=")]
    if raw and any(c in raw[0] for c in ":/"):
        fail(400, "audience must be URL-encoded (api%3A%2F%2FAzureADTokenExchange)")
    oidc = app.config["oidc"]
    now = int(time.time())
    claims = {"iss": oidc["issuer"], "sub": oidc["subject"],
              "aud": audiences[0] if audiences else oidc["default_audience"],
              "iat": now, "nbf": now, "exp": now + int(oidc["lifetime"]),
              "jti": new_id(), "repository": oidc["repository"], "ref": oidc["ref"],
              "sha": "0" * 40, "run_id": "1", "event_name": "push",
              "job_workflow_ref": oidc["repository"] + "/.github/workflows/ci.yml@" + oidc["ref"]}
    return json_response(200, {"count": 1, "value": mint_jwt(app, claims)})


def mint_assertion(app, overrides):
    """For tests: a federated-credential JWT with the default claims, overridable."""
    oidc = app.config["oidc"]
    now = int(time.time())
    claims = {"iss": oidc["issuer"], "sub": oidc["subject"], "aud": EXCHANGE_AUDIENCE,
              "iat": now, "nbf": now, "exp": now + int(oidc["lifetime"]), "jti": new_id()}
    lifetime = overrides.pop("lifetime", None)
    if lifetime is not None:
        claims["exp"] = now + int(lifetime)
    claims.update(overrides)
    return mint_jwt(app, claims)


# ---- bearer checks -----------------------------------------------------------------------

def check_arm_bearer(app, req):
    """ARM's 401s: AuthenticationFailed, InvalidAuthenticationToken(Audience), Expired..."""
    def fail(code, msg, err_desc):
        www = ('Bearer authorization_uri="%s/%s", error="invalid_token", error_description="%s"'
               % (req.base_url, app.config["tenant_id"], err_desc))
        raise HTTPError(arm_error(401, code, msg, headers=[("WWW-Authenticate", www)]))

    auth = req.header("Authorization")
    if auth is None:
        fail("AuthenticationFailed", "Authentication failed. The 'Authorization' header is "
             "missing.", "The authentication failed because of missing 'Authorization' header.")
    scheme, _, token = auth.partition(" ")
    if scheme != "Bearer" or not token or " " in token:
        fail("AuthenticationFailed", "Authentication failed. The 'Authorization' header is "
             "provided in an invalid format.", "The 'Authorization' header is invalid.")
    info = app.state["tokens"].get(token)
    if info is None:
        fail("InvalidAuthenticationToken", "The access token is invalid.",
             "The access token is invalid.")
    if info["family"] != "arm":
        fail("InvalidAuthenticationTokenAudience",
             "The access token has been obtained for wrong audience or resource '%s'. It should "
             "exactly match with one of the allowed audiences %s." % (info["resource"],
                                                                     ARM_AUDIENCES),
             "The access token has wrong audience.")
    now = time.time()
    if info["exp"] <= now:
        fail("ExpiredAuthenticationToken",
             "The access token expiry UTC time '%s' is earlier than current UTC time '%s'."
             % (time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(info["exp"])),
                time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(now))),
             "The access token has expired.")
    return info
