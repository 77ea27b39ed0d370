"""test_server.py — the fake's own contract tests (stdlib unittest, urllib/http.client only).

Run: python3 -m unittest discover -s tests/servers/azure_fake
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from urllib.parse import quote, urlencode, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
TENANT = "11111111-1111-1111-1111-111111111111"
CLIENT = "22222222-2222-2222-2222-222222222222"
SECRET = "fake+secret/with&special=chars%"
FED_CLIENT = "33333333-3333-3333-3333-333333333333"
SUB = "00000000-1111-2222-3333-444444444444"
RG = "/subscriptions/%s/resourceGroups/rg-mlstage" % SUB
DEP = RG + "/providers/Microsoft.Resources/deployments"
WS = RG + "/providers/Microsoft.MachineLearningServices/workspaces/mlw-mlstage"
ARM_API = "api-version=2025-04-01"
ML_API = "api-version=2025-12-01"
ARM_SCOPE = "https://management.azure.com/.default"


class FakeServer:
    """Starts server.py, reads the port from its one stdout line, stops it with SIGTERM."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "server.py"),
                                      "--port", "0"] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening http://127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError("server did not start: %r %s" % (line, self.proc.stderr.read()))
        self.base = line.split(" ", 1)[1]
        self.port = int(self.base.rsplit(":", 1)[1])

    def stop(self):
        self.proc.terminate()
        code = self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code


class Reply:
    def __init__(self, resp, data):
        self.status = resp.status
        self.headers = resp.headers
        self.raw = data
        try:
            self.json = json.loads(data) if data else None
        except ValueError:
            self.json = None

    def header(self, name):
        return self.headers.get(name)

    def __repr__(self):
        return "<%d %s>" % (self.status, self.raw[:400])


class Base(unittest.TestCase):
    server = None
    config = {"retry_after": 0}

    @classmethod
    def setUpClass(cls):
        cls.server = FakeServer()

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0

    def setUp(self):
        self.control("POST", "/_fake/reset")
        self.control("POST", "/_fake/config", self.config)
        self._token = None

    # ---- plumbing

    def request(self, method, path, body=None, headers=None, raw_body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        hdrs = dict(headers or {})
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Reply(resp, resp.read())
        finally:
            conn.close()

    def control(self, method, path, body=None):
        r = self.request(method, path, body)
        self.assertEqual(r.status, 200, r)
        return r.json

    def token(self, client=CLIENT, secret=SECRET, scope=ARM_SCOPE, tenant=TENANT, form=None):
        form = form or {"grant_type": "client_credentials", "client_id": client,
                        "client_secret": secret, "scope": scope}
        return self.request("POST", "/%s/oauth2/v2.0/token" % tenant,
                            raw_body=urlencode(form).encode(),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})

    def arm_token(self):
        if self._token is None:
            r = self.token()
            self.assertEqual(r.status, 200, r)
            self._token = r.json["access_token"]
        return self._token

    def arm(self, method, path, body=None, api=None, headers=None, raw_body=None):
        hdrs = {"Authorization": "Bearer " + self.arm_token()}
        hdrs.update(headers or {})
        if api is not None:
            path += ("&" if "?" in path else "?") + api
        return self.request(method, path, body, hdrs, raw_body)

    def follow(self, url, **kw):
        """GET an absolute URL the server handed out (Azure-AsyncOperation, Location, nextLink)."""
        u = urlsplit(url)
        self.assertEqual(u.netloc, "127.0.0.1:%d" % self.server.port)
        return self.arm("GET", u.path + "?" + u.query, **kw)

    def assert_error(self, r, status, code, target=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json["error"]["code"], code, r)
        self.assertTrue(r.json["error"]["message"])
        if target is not None:
            self.assertEqual(r.json["error"].get("target"), target, r)


# ======================================================================================
class TestIdentity(Base):
    def test_client_secret_grant_returns_a_bearer_token_with_numeric_expiry(self):
        r = self.token()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["token_type"], "Bearer")
        self.assertIsInstance(r.json["expires_in"], int)
        self.assertEqual(r.json["access_token"].count("."), 2)

    def test_unencoded_secret_is_rejected_as_a_wrong_secret(self):
        body = ("grant_type=client_credentials&client_id=%s&client_secret=%s&scope=%s"
                % (CLIENT, SECRET, quote(ARM_SCOPE, safe="")))
        r = self.request("POST", "/%s/oauth2/v2.0/token" % TENANT, raw_body=body.encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertIn(r.status, (400, 401), r)

    def test_basic_auth_client_credentials_are_accepted(self):
        import base64
        cred = base64.b64encode(("%s:%s" % (quote(CLIENT), quote(SECRET, safe=""))).encode())
        r = self.request("POST", "/%s/oauth2/v2.0/token" % TENANT,
                         raw_body=urlencode({"grant_type": "client_credentials",
                                             "scope": ARM_SCOPE}).encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                  "Authorization": "Basic " + cred.decode()})
        self.assertEqual(r.status, 200, r)

    def test_a_token_for_this_servers_own_url_is_an_arm_token(self):
        # MLSTAGE_ARM_ENDPOINT=http://127.0.0.1:PORT makes a client ask for "<endpoint>/.default",
        # as a sovereign cloud's Resource Manager wants: here that resource is the fake's ARM.
        own = "http://127.0.0.1:%d/.default" % self.server.port
        r = self.token(scope=own)
        self.assertEqual(r.status, 200, r)
        token = r.json["access_token"]
        r = self.request("GET", "/subscriptions/%s/resourcegroups/rg-mlstage/providers/"
                         "Microsoft.Resources/deployments?api-version=2025-04-01" % SUB,
                         headers={"Authorization": "Bearer " + token})
        self.assertEqual(r.status, 200, r)
        # Another loopback port is not this server: still an unknown resource.
        r = self.token(scope="http://127.0.0.1:%d/.default" % (self.server.port + 1))
        self.assertEqual((r.status, r.json["error_codes"]), (400, [500011]))

    def test_token_endpoint_errors_use_the_aad_shape_and_codes(self):
        cases = [
            (self.token(secret="wrong"), 401, "invalid_client", 7000215),
            (self.token(client="99999999-9999-9999-9999-999999999999"), 400,
             "unauthorized_client", 700016),
            (self.token(tenant="common"), 400, "invalid_request", 90002),
            (self.token(scope="https://management.azure.com/user_impersonation"), 400,
             "invalid_scope", 1002012),
            (self.token(scope=ARM_SCOPE + " https://storage.azure.com/.default"), 400,
             "invalid_scope", 28000),
            (self.token(scope="https://managment.azure.com/.default"), 400,
             "invalid_resource", 500011),
            (self.token(form={"client_id": CLIENT, "client_secret": SECRET,
                              "scope": ARM_SCOPE}), 400, "invalid_request", 900144),
            (self.token(form={"grant_type": "client_credentials", "client_id": CLIENT,
                              "scope": ARM_SCOPE}), 401, "invalid_client", 7000218),
        ]
        for r, status, error, code in cases:
            self.assertEqual(r.status, status, r)
            self.assertEqual(r.json["error"], error, r)
            self.assertEqual(r.json["error_codes"], [code], r)
            self.assertTrue(r.json["error_description"].startswith("AADSTS%d:" % code))
            for k in ("timestamp", "trace_id", "correlation_id"):
                self.assertIn(k, r.json)

    def test_token_endpoint_only_takes_form_encoded_posts(self):
        r = self.request("POST", "/%s/oauth2/v2.0/token" % TENANT,
                         body={"grant_type": "client_credentials", "client_id": CLIENT,
                               "client_secret": SECRET, "scope": ARM_SCOPE})
        self.assertEqual((r.status, r.json["error_codes"]), (400, [900144]))
        r = self.request("GET", "/%s/oauth2/v2.0/token" % TENANT)
        self.assertEqual((r.status, r.json["error_codes"]), (400, [900561]))

    def test_github_oidc_token_federates_into_an_arm_token(self):
        url = "/_actions/idtoken?api-version=2.0&audience=" + quote("api://AzureADTokenExchange",
                                                                    safe="")
        auth = {"Authorization": "Bearer fake-actions-request-token"}
        r = self.request("GET", url, headers=auth)
        self.assertEqual(r.status, 200, r)
        jwt = r.json["value"]
        r = self.token(form={"grant_type": "client_credentials", "client_id": FED_CLIENT,
                             "scope": ARM_SCOPE, "client_assertion": jwt,
                             "client_assertion_type":
                                 "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
        self.assertEqual(r.status, 200, r)
        # the OIDC endpoint's own contract
        self.assertEqual(self.request("GET", url).status, 401)
        self.assertEqual(self.request("GET", "/_actions/idtoken?audience=x", headers=auth).status,
                         400, "api-version dropped: the client replaced the query")
        self.assertEqual(self.request("GET", "/_actions/idtoken?api-version=2.0&audience="
                                             "api://AzureADTokenExchange", headers=auth).status,
                         400, "audience not URL-encoded")

    def test_federated_assertions_are_checked_for_subject_expiry_and_signature(self):
        def exchange(assertion):
            return self.token(form={"grant_type": "client_credentials", "client_id": FED_CLIENT,
                                    "scope": ARM_SCOPE, "client_assertion": assertion,
                                    "client_assertion_type": "urn:ietf:params:oauth:client-"
                                                             "assertion-type:jwt-bearer"})
        wrong_sub = self.control("POST", "/_fake/assertion", {"sub": "repo:evil/fork:ref:x"})
        r = exchange(wrong_sub["value"])
        self.assertEqual((r.status, r.json["error_codes"]), (400, [70021]))
        self.assertIn("repo:evil/fork", r.json["error_description"])
        expired = self.control("POST", "/_fake/assertion", {"lifetime": -10})
        self.assertEqual(exchange(expired["value"]).json["error_codes"], [700024])
        good = self.control("POST", "/_fake/assertion", {})["value"]
        self.assertEqual(exchange(good[:-4] + "AAAA").json["error_codes"], [700027])
        self.assertEqual(exchange("not-a-jwt").json["error_codes"], [50027])
        self.assertEqual(exchange(good).status, 200)

    def test_imds_needs_the_metadata_header_and_answers_numbers_as_strings(self):
        path = ("/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
                + quote("https://management.azure.com/", safe=""))
        r = self.request("GET", path)
        self.assertEqual((r.status, r.json["error"]), (400, "invalid_request"))
        self.assertEqual(self.request("GET", path, headers={"Metadata": "True"}).status, 400)
        r = self.request("GET", path, headers={"Metadata": "true"})
        self.assertEqual(r.status, 200, r)
        for k in ("expires_in", "expires_on", "not_before"):
            self.assertIsInstance(r.json[k], str)
        self.assertEqual(r.json["resource"], "https://management.azure.com/")
        r = self.request("GET", path.replace(quote("https://management.azure.com/", safe=""),
                                             quote(ARM_SCOPE, safe="")),
                         headers={"Metadata": "true"})
        self.assertEqual(r.status, 400, "IMDS takes a resource, not a /.default scope")
        r = self.request("GET", path + "&client_id=00000000-0000-0000-0000-000000000000",
                         headers={"Metadata": "true"})
        self.assertEqual((r.status, r.json["error_description"]), (400, "Identity not found"))

    def test_app_service_msi_needs_the_identity_header(self):
        path = "/msi/token?api-version=2019-08-01&resource=https://management.azure.com/"
        self.assertEqual(self.request("GET", path).status, 401)
        r = self.request("GET", path, headers={"X-IDENTITY-HEADER": "fake-identity-header"})
        self.assertEqual(r.status, 200, r)
        self.assertIsInstance(r.json["expires_on"], str)
        self.control("POST", "/_fake/config", {"msi_expires_on": "int"})
        r = self.request("GET", path, headers={"X-IDENTITY-HEADER": "fake-identity-header"})
        self.assertIsInstance(r.json["expires_on"], int)
        # a token from managed identity works at ARM like any other
        r = self.request("GET", WS + "/datastores?" + ML_API,
                         headers={"Authorization": "Bearer " + r.json["access_token"]})
        self.assertEqual(r.status, 200, r)


# ======================================================================================
class TestArmFrontDoor(Base):
    def test_arm_rejects_missing_malformed_unknown_foreign_and_expired_tokens(self):
        path = WS + "/datastores?" + ML_API
        r = self.request("GET", path)
        self.assert_error(r, 401, "AuthenticationFailed")
        self.assertIn("invalid_token", r.header("WWW-Authenticate"))
        self.assert_error(self.request("GET", path, headers={"Authorization": "Token x"}),
                          401, "AuthenticationFailed")
        self.assert_error(self.request("GET", path, headers={"Authorization": "Bearer nope"}),
                          401, "InvalidAuthenticationToken")
        storage = self.token(scope="https://storage.azure.com/.default").json["access_token"]
        self.assert_error(self.request("GET", path,
                                       headers={"Authorization": "Bearer " + storage}),
                          401, "InvalidAuthenticationTokenAudience")
        self.assertEqual(self.arm("GET", path).status, 200)
        self.assertGreaterEqual(self.control("POST", "/_fake/expire-tokens")["expired"], 2)
        self.assert_error(self.arm("GET", path), 401, "ExpiredAuthenticationToken")

    def test_token_lifetime_is_configurable_to_expire_mid_run(self):
        self.control("POST", "/_fake/config", {"token_lifetime": 1})
        r = self.token()
        self.assertEqual(r.json["expires_in"], 1)
        time.sleep(1.1)
        r = self.request("GET", WS + "/datastores?" + ML_API,
                         headers={"Authorization": "Bearer " + r.json["access_token"]})
        self.assert_error(r, 401, "ExpiredAuthenticationToken")

    def test_api_version_is_required_exact_and_single(self):
        self.assert_error(self.arm("GET", WS + "/datastores"), 400, "MissingApiVersionParameter")
        self.assert_error(self.arm("GET", WS + "/datastores?api-version=2024-10-01"), 400,
                          "InvalidApiVersionParameter")
        self.assert_error(self.arm("GET", WS + "/datastores?%s&%s" % (ML_API, ML_API)), 400,
                          "InvalidApiVersionParameter")
        self.assert_error(self.arm("GET", DEP + "?" + ML_API), 400, "InvalidApiVersionParameter")
        self.assertEqual(self.arm("GET", DEP + "?" + ARM_API).status, 200)

    def test_bodies_must_be_json_objects_with_a_json_content_type(self):
        path = WS + "/models/m?" + ML_API
        r = self.arm("PUT", path, raw_body=b'{"properties": {}}',
                     headers={"Content-Type": "text/plain"})
        self.assert_error(r, 415, "UnsupportedMediaType")
        r = self.arm("PUT", path, raw_body=b'{"properties": ',
                     headers={"Content-Type": "application/json"})
        self.assert_error(r, 400, "InvalidRequestContent")
        r = self.arm("PUT", path, raw_body=b'{"a": 1, "a": 2}',
                     headers={"Content-Type": "application/json"})
        self.assert_error(r, 400, "InvalidRequestContent")
        r = self.arm("PUT", path, raw_body=b"", headers={"Content-Type": "application/json"})
        self.assert_error(r, 400, "InvalidRequestContent")

    def test_post_without_content_length_is_411(self):
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        s.sendall(("POST %s/datastores/workspaceblobstore/listSecrets?%s HTTP/1.1\r\n"
                   "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n"
                   % (WS, ML_API, self.arm_token())).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 411"), data[:100])

    def test_chunked_request_bodies_are_accepted(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        body = json.dumps({"properties": {"modelUri": "azureml://datastores/workspaceblobstore/"
                                                      "paths/m/1"}}).encode()
        conn.request("PUT", WS + "/models/chunky/versions/1?" + ML_API, body=iter([body]),
                     headers={"Authorization": "Bearer " + self.arm_token(),
                              "Content-Type": "application/json"}, encode_chunked=True)
        self.assertEqual(conn.getresponse().status, 201)
        conn.close()

    def test_unknown_subscription_resource_group_and_workspace_are_404(self):
        other = WS.replace(SUB, "99999999-1111-2222-3333-444444444444")
        self.assert_error(self.arm("GET", other + "/datastores?" + ML_API), 404,
                          "SubscriptionNotFound")
        self.assert_error(self.arm("GET", WS.replace("rg-mlstage", "rg-nope") + "/datastores?"
                                   + ML_API), 404, "ResourceGroupNotFound")
        self.assert_error(self.arm("GET", WS.replace("mlw-mlstage", "mlw-nope") + "/datastores?"
                                   + ML_API), 404, "ResourceNotFound")

    def test_every_arm_response_carries_request_ids_and_rate_limits(self):
        r = self.arm("GET", WS + "/datastores?" + ML_API,
                     headers={"x-ms-client-request-id": "abc-123",
                              "x-ms-correlation-request-id": "corr-1"})
        self.assertEqual(r.header("x-ms-client-request-id"), "abc-123")
        self.assertEqual(r.header("x-ms-correlation-request-id"), "corr-1")
        self.assertTrue(r.header("x-ms-request-id"))
        first = int(r.header("x-ms-ratelimit-remaining-subscription-reads"))
        r = self.arm("GET", WS + "/datastores?" + ML_API)
        self.assertEqual(int(r.header("x-ms-ratelimit-remaining-subscription-reads")), first - 1)
        r = self.arm("GET", WS + "/datastores?api-version=1")  # errors carry them too
        self.assertTrue(r.header("x-ms-request-id"))


# ======================================================================================
TEMPLATE = {
    "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
    "contentVersion": "1.0.0.0",
    "parameters": {
        "name": {"type": "string", "minLength": 3, "maxLength": 24},
        "sku": {"type": "string", "defaultValue": "Standard_LRS",
                "allowedValues": ["Standard_LRS", "Standard_GRS"]},
        "replicas": {"type": "int", "defaultValue": 1, "minValue": 1, "maxValue": 3},
        "location": {"type": "string", "defaultValue": "[resourceGroup().location]"},
    },
    "variables": {"tier": "Hot"},
    "resources": [{
        "type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01",
        "name": "[parameters('name')]", "location": "[parameters('location')]",
        "sku": {"name": "[parameters('sku')]"}, "kind": "StorageV2",
        "properties": {"accessTier": "[variables('tier')]"}}],
    "outputs": {
        "accountName": {"type": "string", "value": "[parameters('name')]"},
        "replicas": {"type": "int", "value": "[parameters('replicas')]"},
        "literal": {"type": "string", "value": "hello"},
        "accountId": {"type": "string", "value": "[resourceId('Microsoft.Storage/"
                                                 "storageAccounts', parameters('name'))]"},
    },
}


def deployment(params, template=None, mode="Incremental"):
    return {"properties": {"mode": mode, "template": template or TEMPLATE,
                           "parameters": {k: {"value": v} for k, v in params.items()}}}


class TestDeployments(Base):
    def deploy_and_wait(self, name, body):
        r = self.arm("PUT", DEP + "/" + name, body, ARM_API)
        self.assertEqual(r.status, 201, r)
        url = r.header("Azure-AsyncOperation")
        for _ in range(10):
            s = self.follow(url).json["status"]
            if s in ("Succeeded", "Failed", "Canceled"):
                return s
        self.fail("deployment never finished")

    def test_put_is_an_lro_reported_through_azure_asyncoperation(self):
        r = self.arm("PUT", DEP + "/d1", deployment({"name": "stmlstage"}), ARM_API)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["properties"]["provisioningState"], "Accepted")
        self.assertIn("/operationStatuses/", r.header("Azure-AsyncOperation"))
        self.assertIn("/operationResults/", r.header("Location"))
        self.assertEqual(r.header("Retry-After"), "0")
        seen = [self.follow(r.header("Azure-AsyncOperation")).json["status"] for _ in range(3)]
        self.assertEqual(seen, ["Accepted", "Running", "Succeeded"])
        g = self.arm("GET", DEP + "/d1", api=ARM_API).json["properties"]
        self.assertEqual(g["provisioningState"], "Succeeded")
        self.assertEqual(g["outputs"]["accountName"], {"type": "String", "value": "stmlstage"})
        self.assertEqual(g["outputs"]["replicas"], {"type": "Int", "value": 1})
        self.assertEqual(g["outputs"]["literal"]["value"], "hello")
        self.assertEqual(g["outputs"]["accountId"]["value"],
                         RG + "/providers/Microsoft.Storage/storageAccounts/stmlstage")
        self.assertEqual(g["parameters"]["location"]["value"], "westeurope")

    def test_location_polling_answers_202_then_200_with_the_deployment(self):
        self.control("POST", "/_fake/config", {"deployment_lro_headers": "location"})
        r = self.arm("PUT", DEP + "/d2", deployment({"name": "stmlstage"}), ARM_API)
        self.assertIsNone(r.header("Azure-AsyncOperation"))
        statuses = []
        for _ in range(3):
            p = self.follow(r.header("Location"))
            statuses.append(p.status)
        self.assertEqual(statuses, [202, 202, 200])
        self.assertEqual(p.json["properties"]["provisioningState"], "Succeeded")

    def test_a_poll_before_retry_after_ran_out_is_throttled_and_counted(self):
        self.control("POST", "/_fake/config", {"retry_after": 1})
        r = self.arm("PUT", DEP + "/early", deployment({"name": "stmlstage"}), ARM_API)
        self.assertEqual(r.header("Retry-After"), "1")
        early = self.follow(r.header("Azure-AsyncOperation"))
        self.assert_error(early, 429, "TooManyRequests")
        self.assertEqual(early.header("Retry-After"), "1")
        self.assertEqual(self.control("GET", "/_fake/state")["state"]["early_polls"], 1)
        time.sleep(1.1)
        on_time = self.follow(r.header("Azure-AsyncOperation"))
        self.assertEqual(on_time.status, 200, on_time)
        self.assertEqual(on_time.json["status"], "Accepted")
        self.assertEqual(self.control("GET", "/_fake/state")["state"]["early_polls"], 1)

    def test_resource_gets_advance_the_provisioning_state_too(self):
        self.arm("PUT", DEP + "/d3", deployment({"name": "stmlstage"}), ARM_API)
        states = [self.arm("GET", DEP + "/d3", api=ARM_API).json["properties"]
                  ["provisioningState"] for _ in range(3)]
        self.assertEqual(states, ["Accepted", "Running", "Succeeded"])

    def test_template_referencing_an_undeclared_parameter_is_invalid(self):
        t = json.loads(json.dumps(TEMPLATE))
        t["outputs"]["bad"] = {"type": "string", "value": "[parameters('nope')]"}
        r = self.arm("PUT", DEP + "/bad", deployment({"name": "stmlstage"}, t), ARM_API)
        self.assert_error(r, 400, "InvalidTemplate")
        self.assertIn("'nope' is not found", r.json["error"]["message"])

    def test_parameters_are_checked_like_resource_manager_does(self):
        cases = [({"name": "stmlstage", "extra": 1}, "not present in the original template"),
                 ({}, "'name' at line"),
                 ({"name": "st", }, "greater than or equal to '3'"),
                 ({"name": "stmlstage", "sku": "Premium"}, "not part of the allowed value"),
                 ({"name": "stmlstage", "replicas": "2"}, "Expected 'Integer'. Actual 'String'"),
                 ({"name": "stmlstage", "replicas": 9}, "less than or equal to '3'")]
        for params, text in cases:
            r = self.arm("POST", DEP + "/x/validate", deployment(params), ARM_API)
            self.assert_error(r, 400, "InvalidTemplate")
            self.assertIn(text, r.json["error"]["message"])
        body = deployment({})
        body["properties"]["parameters"] = {"name": "stmlstage"}  # bare value, no {"value": ...}
        self.assert_error(self.arm("POST", DEP + "/x/validate", body, ARM_API), 400,
                          "InvalidRequestContent", "properties.parameters.name")

    def test_deployment_body_needs_mode_and_exactly_one_template(self):
        body = deployment({"name": "stmlstage"})
        del body["properties"]["mode"]
        self.assert_error(self.arm("PUT", DEP + "/m", body, ARM_API), 400,
                          "InvalidRequestContent", "properties.mode")
        body = deployment({"name": "stmlstage"})
        body["properties"]["templateLink"] = {"uri": "https://example.com/t.json"}
        self.assert_error(self.arm("PUT", DEP + "/m", body, ARM_API), 400,
                          "InvalidRequestContent")
        body = deployment({"name": "stmlstage"})
        body["propertis"] = {}
        self.assert_error(self.arm("PUT", DEP + "/m", body, ARM_API), 400,
                          "InvalidRequestContent", "propertis")
        self.assert_error(self.arm("PUT", DEP + "/" + "x" * 65, deployment({}), ARM_API), 400,
                          "DeploymentNameLengthLimitExceeded")

    def test_validate_lists_the_resources_it_would_deploy(self):
        r = self.arm("POST", DEP + "/v/validate", deployment({"name": "stmlstage"}), ARM_API)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["properties"]["validatedResources"],
                         [{"id": RG + "/providers/Microsoft.Storage/storageAccounts/stmlstage"}])

    def test_what_if_computes_changes_against_what_was_deployed(self):
        self.assertEqual(self.deploy_and_wait("base", deployment({"name": "stone"})), "Succeeded")
        t = json.loads(json.dumps(TEMPLATE))
        t["resources"].append({"type": "Microsoft.Storage/storageAccounts",
                               "apiVersion": "2023-01-01", "name": "sttwo",
                               "location": "westeurope", "sku": {"name": "Standard_LRS"},
                               "kind": "StorageV2", "properties": {}})
        r = self.arm("POST", DEP + "/wi/whatIf", deployment({"name": "stone", "sku":
                                                             "Standard_GRS"}, t), ARM_API)
        self.assertEqual(r.status, 202, r)
        self.assertIsNone(r.header("Azure-AsyncOperation"))
        for _ in range(5):
            p = self.follow(r.header("Location"))
            if p.status == 200:
                break
            self.assertEqual(p.status, 202)
        self.assertEqual(p.json["status"], "Succeeded")
        changes = {c["resourceId"].rsplit("/", 1)[1]: c for c in p.json["properties"]["changes"]}
        self.assertEqual(changes["stone"]["changeType"], "Modify")
        self.assertEqual(changes["stone"]["delta"][0]["path"], "sku")
        self.assertEqual(changes["sttwo"]["changeType"], "Create")
        # same template and parameters again: nothing changes
        r = self.arm("POST", DEP + "/wi/whatIf", deployment({"name": "stone"}), ARM_API)
        while True:
            p = self.follow(r.header("Location"))
            if p.status == 200:
                break
        self.assertEqual([c["changeType"] for c in p.json["properties"]["changes"]],
                         ["NoChange"])
        # Complete mode with an empty template deletes what is there
        empty = dict(TEMPLATE, resources=[], outputs={})
        r = self.arm("POST", DEP + "/wi/whatIf", deployment({"name": "stone"}, empty, "Complete"),
                     ARM_API)
        while True:
            p = self.follow(r.header("Location"))
            if p.status == 200:
                break
        self.assertEqual([c["changeType"] for c in p.json["properties"]["changes"]], ["Delete"])

    def test_deployed_resources_can_be_read_back_and_absent_ones_are_404(self):
        self.assertEqual(self.deploy_and_wait("rb", deployment({"name": "stmlstage"})),
                         "Succeeded")
        sa = RG + "/providers/Microsoft.Storage/storageAccounts/stmlstage"
        for _ in range(2):  # reading must not change what what-if compares against
            r = self.arm("GET", sa + "?api-version=2023-01-01")
            self.assertEqual((r.status, r.json["properties"]["provisioningState"]),
                             (200, "Succeeded"))
        r = self.arm("POST", DEP + "/rb2/whatIf", deployment({"name": "stmlstage"}), ARM_API)
        while True:
            p = self.follow(r.header("Location"))
            if p.status == 200:
                break
        self.assertEqual([c["changeType"] for c in p.json["properties"]["changes"]],
                         ["NoChange"])
        self.assert_error(self.arm("GET", sa.replace("stmlstage", "stother") +
                                   "?api-version=2023-01-01"), 404, "ResourceNotFound")

    def test_magic_word_fails_the_deployment_with_details(self):
        self.assertEqual(self.deploy_and_wait("boom", deployment({"name": "fakearmfail1"})),
                         "Failed")
        g = self.arm("GET", DEP + "/boom", api=ARM_API).json["properties"]
        self.assertEqual(g["provisioningState"], "Failed")
        self.assertEqual(g["error"]["code"], "DeploymentFailed")
        self.assertEqual(g["error"]["details"][0]["code"], "ResourceDeploymentFailure")
        ops = self.arm("GET", RG + "/deployments/boom/operations", api=ARM_API).json["value"]
        self.assertEqual(ops[0]["properties"]["provisioningState"], "Failed")
        self.assertNotIn("outputs", g)

    def test_fault_can_decide_an_lro_outcome(self):
        self.control("POST", "/_fake/faults", [{"match": "PUT .*/deployments/lr$",
                                                "lro_result": "Failed",
                                                "lro_error": {"code": "Conflict",
                                                              "message": "nope"}}])
        r = self.arm("PUT", DEP + "/lr", deployment({"name": "stmlstage"}), ARM_API)
        for _ in range(3):
            a = self.follow(r.header("Azure-AsyncOperation")).json
        self.assertEqual((a["status"], a["error"]["code"]), ("Failed", "Conflict"))
        p = self.follow(r.header("Location"))
        self.assert_error(p, 400, "Conflict")

    def test_redeploy_while_active_conflicts_and_cancel_stops_it(self):
        self.arm("PUT", DEP + "/c", deployment({"name": "stmlstage"}), ARM_API)
        self.assert_error(self.arm("PUT", DEP + "/c", deployment({"name": "stmlstage"}),
                                   ARM_API), 409, "DeploymentActive")
        self.assertEqual(self.arm("POST", DEP + "/c/cancel", api=ARM_API, raw_body=b"").status,
                         204)
        g = self.arm("GET", DEP + "/c", api=ARM_API).json["properties"]
        self.assertEqual(g["provisioningState"], "Canceled")
        self.assert_error(self.arm("POST", DEP + "/c/cancel", api=ARM_API, raw_body=b""), 409,
                          "DeploymentCannotBeCancelled")


# ======================================================================================
class TestFaults(Base):
    def test_injected_429_carries_retry_after_and_early_retries_are_throttled_again(self):
        self.control("POST", "/_fake/faults", [{"match": "PUT .*/models/.*", "times": 1,
                                                "status": 429, "retry_after": "1"}])
        path = WS + "/models/m1/versions/1"
        body = {"properties": {"modelUri": "azureml://datastores/workspaceblobstore/paths/m/"}}
        r = self.arm("PUT", path, body, ML_API)
        self.assert_error(r, 429, "TooManyRequests")
        self.assertEqual(r.header("Retry-After"), "1")
        r = self.arm("PUT", path, body, ML_API)
        self.assertEqual(r.status, 429, "retried before Retry-After elapsed")
        time.sleep(1.05)
        self.assertEqual(self.arm("PUT", path, body, ML_API).status, 201)
        log = self.control("GET", "/_fake/requests")["requests"]
        self.assertEqual([e["fault"] for e in log if e["method"] == "PUT"],
                         ["status", "early-retry", None])

    def test_drop_closes_the_connection_without_a_response(self):
        self.control("POST", "/_fake/faults", [{"match": "GET .*/datastores$", "drop": True}])
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.arm("GET", WS + "/datastores", api=ML_API)
        self.assertEqual(self.arm("GET", WS + "/datastores", api=ML_API).status, 200)

    def test_5xx_with_skip_and_unlimited_times(self):
        self.control("POST", "/_fake/faults", [{"match": "GET .*/datastores$", "skip": 1,
                                                "times": -1, "status": 503}])
        self.assertEqual(self.arm("GET", WS + "/datastores", api=ML_API).status, 200)
        for _ in range(3):
            self.assert_error(self.arm("GET", WS + "/datastores", api=ML_API), 503,
                              "ServiceUnavailable")
        self.control("DELETE", "/_fake/faults")
        self.assertEqual(self.arm("GET", WS + "/datastores", api=ML_API).status, 200)

    def test_fault_specs_are_validated(self):
        r = self.request("POST", "/_fake/faults", [{"match": "x", "stauts": 500}])
        self.assertEqual(r.status, 400)
        r = self.request("POST", "/_fake/faults", [{"match": "x", "status": 500, "drop": True}])
        self.assertEqual(r.status, 400)

    def test_request_log_hides_credentials(self):
        self.arm("GET", WS + "/datastores", api=ML_API)
        log = self.control("GET", "/_fake/requests")["requests"]
        token_req = next(e for e in log if "/oauth2/" in e["path"])
        self.assertNotIn("fake%2Bsecret", token_req["body"])
        self.assertIn("client_secret=sha256%3A", token_req["body"])
        arm_req = next(e for e in log if e["path"].endswith("/datastores"))
        self.assertRegex(arm_req["headers"]["authorization"], r"^Bearer sha256:[0-9a-f]{12}$")
        self.assertEqual(arm_req["query"], ML_API)
        self.assertEqual(arm_req["status"], 200)
        since = self.control("GET", "/_fake/requests")["next"]
        self.assertEqual(self.control("GET", "/_fake/requests?since=%d" % since)["requests"], [])

    def test_state_shows_resources_and_reset_clears_them(self):
        self.arm("PUT", WS + "/models/m/versions/1",
                 {"properties": {"modelUri": "azureml://datastores/workspaceblobstore/paths/m"}},
                 ML_API)
        st = self.control("GET", "/_fake/state")
        ws = next(iter(st["state"]["ml"].values()))
        self.assertIn("1", ws["assets"]["models"]["m"]["versions"])
        self.assertTrue(all(k.startswith("sha256:") for k in st["state"]["tokens"]))
        self.control("POST", "/_fake/reset")
        self.assertEqual(self.control("GET", "/_fake/state")["state"]["ml"], {})


# ======================================================================================
ENV_ID = WS + "/environments/sklearn/versions/1"
COMPUTE_ID = WS + "/computes/cpu-cluster"


class TestMachineLearning(Base):
    def make_env(self):
        r = self.arm("PUT", ENV_ID, {"properties": {"image": "mcr.microsoft.com/azureml/"
                                                             "openmpi4.1.0-ubuntu22.04"}}, ML_API)
        self.assertEqual(r.status, 201, r)

    def make_model(self, name="diabetes", version="1", tags=None, model_type="custom_model"):
        r = self.arm("PUT", WS + "/models/%s/versions/%s" % (name, version),
                     {"properties": {"modelUri": "azureml://datastores/workspaceblobstore/paths/"
                                                 "models/%s/%s/" % (name, version),
                                     "modelType": model_type, "tags": tags or {}}}, ML_API)
        self.assertEqual(r.status, 201, r)
        return r.json["id"]

    def wait_async(self, r):
        self.assertIn(r.status, (200, 201), r)
        url = r.header("Azure-AsyncOperation")
        self.assertIn("/mfeOperationsStatus/", url)
        self.assertEqual(r.header("x-ms-async-operation-timeout"), "PT1H")
        for _ in range(10):
            a = self.follow(url).json
            if a["status"] != "InProgress":
                return a
        self.fail("operation never finished")

    def wait_location(self, r):
        self.assertEqual(r.status, 202, r)
        for _ in range(10):
            p = self.follow(r.header("Location"))
            if p.status != 202:
                return p
        self.fail("operation never finished")

    def test_default_datastore_points_at_azurite_and_lists_its_key(self):
        r = self.arm("GET", WS + "/datastores/workspaceblobstore", api=ML_API)
        p = r.json["properties"]
        self.assertEqual((p["datastoreType"], p["accountName"], p["isDefault"]),
                         ("AzureBlob", "devstoreaccount1", True))
        self.assertNotIn("key", p["credentials"]["secrets"])
        r = self.arm("POST", WS + "/datastores/workspaceblobstore/listSecrets", api=ML_API,
                     raw_body=b"")
        self.assertEqual(r.json["secretsType"], "AccountKey")
        self.assertTrue(r.json["key"].startswith("Eby8vdM02x"))
        self.assertEqual(self.arm("GET", WS + "/datastores/other", api=ML_API).status, 404)

    def test_a_sas_datastore_lists_a_sas_token(self):
        self.control("POST", "/_fake/config", {"datastore_credentials": "Sas"})
        r = self.arm("GET", WS + "/datastores/workspaceblobstore", api=ML_API)
        self.assertEqual(r.json["properties"]["credentials"],
                         {"credentialsType": "Sas", "secrets": {"secretsType": "Sas"}})
        r = self.arm("POST", WS + "/datastores/workspaceblobstore/listSecrets", api=ML_API,
                     raw_body=b"")
        self.assertEqual(r.json["secretsType"], "Sas")
        self.assertNotIn("key", r.json)
        self.assertIn("sv=2019-12-12", r.json["sasToken"])
        self.assertIn("&sig=", r.json["sasToken"])

    def test_model_versions_are_immutable_and_validated(self):
        path = WS + "/models/diabetes/versions/1"
        body = {"properties": {"modelUri": "azureml://datastores/workspaceblobstore/paths/a/",
                               "tags": {"git_commit": "abc"}}}
        self.assertEqual(self.arm("PUT", path, body, ML_API).status, 201)
        self.assertEqual(self.arm("PUT", path, body, ML_API).status, 200)
        body["properties"]["modelUri"] = "azureml://datastores/workspaceblobstore/paths/b/"
        r = self.arm("PUT", path, body, ML_API)
        self.assert_error(r, 409, "UserError", "properties.modelUri")
        self.assertEqual(r.json["error"]["innerError"]["code"], "Conflict")
        g = self.arm("GET", path, api=ML_API).json
        self.assertEqual(g["properties"]["modelUri"],
                         "azureml://datastores/workspaceblobstore/paths/a/")
        self.assertEqual(g["properties"]["provisioningState"], "Succeeded")
        c = self.arm("GET", WS + "/models/diabetes", api=ML_API).json["properties"]
        self.assertEqual((c["latestVersion"], c["nextVersion"]), ("1", "2"))
        # validation: missing modelUri, local path, unknown property, non-string tag, bad name
        r = self.arm("PUT", WS + "/models/diabetes/versions/2", {"properties": {}}, ML_API)
        self.assert_error(r, 400, "UserError", "properties.modelUri")
        self.assertEqual(r.json["error"]["details"][0]["code"], "Required")
        r = self.arm("PUT", WS + "/models/diabetes/versions/2",
                     {"properties": {"modelUri": "outputs/model"}}, ML_API)
        self.assert_error(r, 400, "UserError", "properties.modelUri")
        r = self.arm("PUT", WS + "/models/diabetes/versions/2",
                     {"properties": {"modelUri": "https://a.blob.core.windows.net/c/m",
                                     "commit": "abc", "tags": {"n": 1}}}, ML_API)
        self.assertEqual(sorted(d["code"] for d in r.json["error"]["details"]),
                         ["InvalidType", "UnknownProperty"])
        r = self.arm("PUT", WS + "/models/bad.name/versions/1", body, ML_API)
        self.assert_error(r, 400, "UserError", "name")
        self.assertEqual(self.arm("GET", WS + "/models/diabetes/versions/9", api=ML_API).status,
                         404)

    def test_a_model_version_can_point_at_files_already_in_the_workspace(self):
        # What register does with train's model_uri: no upload, the job's output folder as it is.
        uri = "azureml://datastores/workspaceblobstore/paths/mlstage/train/job-1/model/"
        body = {"properties": {"modelUri": uri, "modelType": "custom_model",
                               "tags": {"mlstage.commit": "abc"}}}
        r = self.arm("PUT", WS + "/models/diabetes/versions/1", body, ML_API)
        self.assertEqual(r.status, 201)
        self.assertEqual(r.json["properties"]["modelUri"], uri)
        g = self.arm("GET", WS + "/models/diabetes/versions/1", api=ML_API).json
        self.assertEqual((g["properties"]["modelUri"], g["properties"]["modelType"]),
                         (uri, "custom_model"))
        # A job's output and the long datastore form are asset URIs too.
        for n, u in ((2, "azureml://jobs/job-1/outputs/artifacts/paths/model/"),
                     (3, "azureml://subscriptions/s/resourcegroups/rg/workspaces/w/datastores/"
                         "workspaceblobstore/paths/m/")):
            r = self.arm("PUT", WS + "/models/diabetes/versions/%d" % n,
                         {"properties": {"modelUri": u}}, ML_API)
            self.assertEqual(r.status, 201, r.json)
        # A datastore URI without a path, or of a datastore the workspace does not have: 400.
        for u in ("azureml://datastores/workspaceblobstore",
                  "azureml://datastores/nosuchstore/paths/m/"):
            r = self.arm("PUT", WS + "/models/diabetes/versions/4",
                         {"properties": {"modelUri": u}}, ML_API)
            self.assert_error(r, 400, "UserError", "properties.modelUri")

    def test_model_version_list_orders_filters_and_pages(self):
        self.control("POST", "/_fake/config", {"page_size": 2})
        for v in ("1", "2", "3"):
            self.make_model(version=v, tags={"stage": "prod"} if v != "2" else {})
        r = self.arm("GET", WS + "/models/diabetes/versions?$orderBy=createdtime%20desc&$top=1",
                     api=ML_API)
        self.assertEqual([x["name"] for x in r.json["value"]], ["3"])
        r = self.arm("GET", WS + "/models/diabetes/versions?tags=stage%3Dprod", api=ML_API)
        self.assertEqual(sorted(x["name"] for x in r.json["value"]), ["1", "3"])
        r = self.arm("GET", WS + "/models/diabetes/versions?$orderBy=version%20asc", api=ML_API)
        self.assertEqual([x["name"] for x in r.json["value"]], ["1", "2"])
        nxt = self.follow(r.json["nextLink"]).json
        self.assertEqual([x["name"] for x in nxt["value"]], ["3"])
        self.assertNotIn("nextLink", nxt)
        self.assertEqual(self.arm("GET", WS + "/models/diabetes/versions?$orderBy=size",
                                  api=ML_API).status, 400)
        self.assertEqual(self.arm("GET", WS + "/models/diabetes/versions?tag=x",
                                  api=ML_API).status, 400)

    def job(self, command="python train.py --alpha 0.5", **extra):
        props = {"jobType": "Command", "command": command, "environmentId": ENV_ID,
                 "computeId": COMPUTE_ID, "experimentName": "diabetes",
                 "outputs": {"model": {"jobOutputType": "uri_folder"}}}
        props.update(extra)
        return {"properties": props}

    def test_command_job_moves_from_starting_to_completed(self):
        self.make_env()
        r = self.arm("PUT", WS + "/jobs/train-1", self.job(), ML_API)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["properties"]["status"], "NotStarted")
        studio = r.json["properties"]["services"]["Studio"]["endpoint"]
        self.assertTrue(studio.startswith("https://ml.azure.com/runs/train-1?wsid="))
        self.assertEqual(r.json["properties"]["outputs"]["model"]["uri"],
                         "azureml://datastores/workspaceblobstore/paths/azureml/train-1/model/")
        states = [self.arm("GET", WS + "/jobs/train-1", api=ML_API).json["properties"]["status"]
                  for _ in range(5)]
        self.assertEqual(states, ["Starting", "Running", "Finalizing", "Completed", "Completed"])
        # only tags may change afterwards
        self.assertEqual(self.arm("PUT", WS + "/jobs/train-1", self.job(tags={"a": "b"}),
                                  ML_API).status, 200)
        self.assertEqual(self.arm("PUT", WS + "/jobs/train-1", self.job("python other.py"),
                                  ML_API).status, 409)

    def test_magic_word_fails_the_job_with_an_error(self):
        self.make_env()
        self.arm("PUT", WS + "/jobs/train-2", self.job("python train.py FAKE_JOB_FAIL"), ML_API)
        for _ in range(4):
            p = self.arm("GET", WS + "/jobs/train-2", api=ML_API).json["properties"]
        self.assertEqual(p["status"], "Failed")
        self.assertIn("exited with status code 1", p["error"]["message"])

    def test_cancel_is_an_lro_that_ends_in_canceled(self):
        self.make_env()
        self.arm("PUT", WS + "/jobs/train-3", self.job("python train.py FAKE_JOB_HANG"), ML_API)
        r = self.arm("POST", WS + "/jobs/train-3/cancel", api=ML_API, raw_body=b"")
        self.assertEqual(r.status, 202, r)
        self.assertIsNone(r.header("x-ms-async-operation-timeout"))
        self.assertEqual(self.arm("GET", WS + "/jobs/train-3", api=ML_API)
                         .json["properties"]["status"], "CancelRequested")
        self.assertEqual(self.wait_location(r).status, 200)
        self.assertEqual(self.arm("GET", WS + "/jobs/train-3", api=ML_API)
                         .json["properties"]["status"], "Canceled")
        self.assertEqual(self.arm("POST", WS + "/jobs/train-3/cancel", api=ML_API,
                                  raw_body=b"").status, 409)

    def test_job_needs_command_environment_and_compute_that_exist(self):
        self.make_env()
        body = self.job()
        del body["properties"]["computeId"]
        del body["properties"]["command"]
        r = self.arm("PUT", WS + "/jobs/j", body, ML_API)
        self.assertEqual(sorted(d["target"] for d in r.json["error"]["details"]),
                         ["properties.command", "properties.computeId"])
        r = self.arm("PUT", WS + "/jobs/j", self.job(computeId=WS + "/computes/gpu"), ML_API)
        self.assert_error(r, 400, "UserError", "properties.computeId")
        r = self.arm("PUT", WS + "/jobs/j", self.job(environmentId="azureml:sklearn:1"), ML_API)
        self.assert_error(r, 400, "UserError", "properties.environmentId")
        r = self.arm("PUT", WS + "/jobs/j", self.job(
            environmentId="azureml://registries/azureml/environments/sklearn-1.5/labels/latest"),
            ML_API)
        self.assertEqual(r.status, 201, r)
        r = self.arm("PUT", WS + "/jobs/bad", self.job(jobType="Batch"), ML_API)
        self.assert_error(r, 400, "UserError", "properties.jobType")

    def endpoint(self, name="ep-diabetes", traffic=None, auth="Key"):
        body = {"location": "westeurope", "properties": {"authMode": auth}}
        if traffic is not None:
            body["properties"]["traffic"] = traffic
        return self.arm("PUT", WS + "/onlineEndpoints/" + name, body, ML_API)

    def online_deployment(self, model_id, endpoint="ep-diabetes", name="blue"):
        return self.arm("PUT", WS + "/onlineEndpoints/%s/deployments/%s" % (endpoint, name),
                        {"location": "westeurope", "sku": {"name": "Default", "capacity": 1},
                         "properties": {"endpointComputeType": "Managed", "model": model_id,
                                        "environmentId": ENV_ID,
                                        "instanceType": "Standard_DS3_v2",
                                        "codeConfiguration": {"scoringScript": "score.py"}}},
                        ML_API)

    def score(self, key, rows, deployment=None, endpoint="ep-diabetes"):
        hdrs = {"Authorization": "Bearer " + key}
        if deployment:
            hdrs["azureml-model-deployment"] = deployment
        return self.request("POST", "/score/" + endpoint, {"data": rows}, hdrs)

    def test_endpoint_deployment_traffic_keys_and_scoring(self):
        self.make_env()
        model = self.make_model()
        r = self.endpoint()
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["properties"]["provisioningState"], "Creating")
        scoring = r.json["properties"]["scoringUri"]
        self.assertEqual(scoring, self.server.base + "/score/ep-diabetes")
        self.assertEqual(self.online_deployment(model).status, 409, "endpoint not ready yet")
        self.assertEqual(self.wait_async(r)["status"], "Succeeded")
        d = self.online_deployment(model)
        self.assertEqual(d.json["properties"]["provisioningState"], "Creating")
        self.assertEqual(self.wait_async(d)["status"], "Succeeded")
        self.assertEqual(self.arm("GET", WS + "/onlineEndpoints/ep-diabetes/deployments/blue",
                                  api=ML_API).json["properties"]["provisioningState"],
                         "Succeeded")
        keys = self.arm("POST", WS + "/onlineEndpoints/ep-diabetes/listKeys", api=ML_API,
                        raw_body=b"").json
        self.assertEqual(sorted(keys), ["primaryKey", "secondaryKey"])
        # no traffic yet: only the deployment header routes
        self.assertEqual(self.score(keys["primaryKey"], [[1, 2]]).status, 404)
        r = self.score(keys["primaryKey"], [[1, 2.5], [3, 4]], deployment="blue")
        self.assertEqual((r.status, r.json), (200, {"predictions": [3.5, 7.0]}))
        self.assertEqual(r.header("azureml-model-deployment"), "blue")
        self.assertEqual(self.score("wrong", [[1]], deployment="blue").status, 401)
        self.assertEqual(self.wait_async(self.endpoint(traffic={"blue": 100}))["status"],
                         "Succeeded")
        r = self.score(keys["secondaryKey"], [[1, 1]])
        self.assertEqual((r.status, r.json["predictions"]), (200, [2.0]))
        # traffic must add up, and name deployments that exist
        self.assertEqual(self.endpoint(traffic={"blue": 50}).status, 400)
        self.assertEqual(self.endpoint(traffic={"blue": 50, "green": 50}).status, 400)
        logs = self.arm("POST", WS + "/onlineEndpoints/ep-diabetes/deployments/blue/getLogs",
                        {"containerType": "InferenceServer", "tail": 3}, ML_API)
        self.assertEqual(logs.status, 200, logs)
        self.assertEqual(len(logs.json["content"].strip().splitlines()), 3)
        logs = self.arm("POST", WS + "/onlineEndpoints/ep-diabetes/deployments/blue/getLogs",
                        {"containerType": "StorageInitializer"}, ML_API)
        self.assertIn("models/diabetes/1", logs.json["content"])
        bad = self.arm("POST", WS + "/onlineEndpoints/ep-diabetes/deployments/blue/getLogs",
                       {"containerType": "Sidecar"}, ML_API)
        self.assert_error(bad, 400, "UserError", "containerType")
        # a deployment with traffic cannot be deleted
        r = self.arm("DELETE", WS + "/onlineEndpoints/ep-diabetes/deployments/blue", api=ML_API)
        self.assert_error(r, 400, "UserError")

    def test_deployment_of_a_magic_model_fails_and_its_logs_say_why(self):
        self.make_env()
        model = self.make_model("broken", tags={"mlstage.test": "FAKE_DEPLOY_FAIL"})
        self.wait_async(self.endpoint())
        a = self.wait_async(self.online_deployment(model))
        self.assertEqual((a["status"], a["error"]["code"]), ("Failed", "ResourceNotReady"))
        logs = self.arm("POST", WS + "/onlineEndpoints/ep-diabetes/deployments/blue/getLogs",
                        {}, ML_API).json["content"]
        self.assertIn("FAKE_DEPLOY_FAIL", logs)
        self.assertEqual(self.endpoint(traffic={"blue": 100}).status, 400,
                         "no traffic to a failed deployment")

    def test_broken_model_scores_424_with_the_model_status(self):
        self.make_env()
        model = self.make_model("FAKE_SCORE_BROKEN")
        self.wait_async(self.endpoint())
        self.wait_async(self.online_deployment(model))
        key = self.arm("POST", WS + "/onlineEndpoints/ep-diabetes/listKeys", api=ML_API,
                       raw_body=b"").json["primaryKey"]
        r = self.score(key, [[1]], deployment="blue")
        self.assertEqual(r.status, 424)
        self.assertEqual(r.header("ms-azureml-model-error-statuscode"), "500")

    def test_online_deployment_body_is_validated(self):
        self.make_env()
        self.wait_async(self.endpoint())
        r = self.arm("PUT", WS + "/onlineEndpoints/ep-diabetes/deployments/blue",
                     {"location": "westeurope", "properties": {"endpointComputeType": "Managed"}},
                     ML_API)
        self.assertEqual(sorted(d["target"] for d in r.json["error"]["details"]),
                         ["properties.instanceType", "properties.model", "sku"])
        r = self.online_deployment("azureml:diabetes:1")
        self.assert_error(r, 400, "UserError", "properties.model")
        r = self.online_deployment(WS + "/models/nope/versions/1")
        self.assert_error(r, 400, "UserError", "properties.model")
        r = self.arm("PUT", WS + "/onlineEndpoints/ep_bad", {"location": "westeurope",
                                                             "properties": {"authMode": "Key"}},
                     ML_API)
        self.assert_error(r, 400, "UserError", "name")
        r = self.arm("PUT", WS + "/onlineEndpoints/ep-east", {"location": "eastus",
                                                              "properties": {"authMode": "Key"}},
                     ML_API)
        self.assert_error(r, 400, "UserError", "location")


class TestRegistry(Base):
    def test_start_pending_upload_hands_out_a_sas_uri_on_the_blob_account(self):
        reg = RG + "/providers/Microsoft.MachineLearningServices/registries/mlr-mlstage"
        r = self.arm("POST", reg + "/models/diabetes/versions/1/startPendingUpload",
                     {"pendingUploadType": "TemporaryBlobReference"}, ML_API)
        self.assertEqual(r.status, 200, r)
        ref = r.json["blobReferenceForConsumption"]
        self.assertTrue(ref["blobUri"].startswith("http://127.0.0.1:10000/devstoreaccount1/"))
        self.assertEqual(ref["credential"]["credentialType"], "SAS")
        self.assertIn("sig=", ref["credential"]["sasUri"])
        r = self.arm("POST", reg + "/models/diabetes/versions/1/startPendingUpload",
                     {"pendingUploadType": "None"}, ML_API)
        self.assert_error(r, 400, "UserError")
        r = self.arm("POST", reg.replace("mlr-mlstage", "nope") + "/models/d/versions/1/"
                     "startPendingUpload", {}, ML_API)
        self.assert_error(r, 404, "ResourceNotFound")


class TestProcess(unittest.TestCase):
    def test_state_file_survives_a_restart_and_sigterm_exits_zero(self):
        with tempfile.TemporaryDirectory() as tmp:
            state = os.path.join(tmp, "state.json")
            srv = FakeServer("--state", state, "--azurite",
                             "http://127.0.0.1:10000/devstoreaccount1/models")
            try:
                t = Base.token.__get__(type("T", (Base,), {"server": srv})())
                tok = t().json["access_token"]
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
                conn.request("PUT", WS + "/models/keep/versions/1?" + ML_API, body=json.dumps(
                    {"properties": {"modelUri": "azureml://datastores/workspaceblobstore/"
                                                "paths/k"}}),
                    headers={"Authorization": "Bearer " + tok,
                             "Content-Type": "application/json"})
                self.assertEqual(conn.getresponse().status, 201)
                conn.close()
            finally:
                self.assertEqual(srv.stop(), 0)
            srv = FakeServer("--state", state)
            try:
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
                conn.request("GET", WS + "/models/keep/versions/1?" + ML_API,
                             headers={"Authorization": "Bearer " + tok})
                self.assertEqual(conn.getresponse().status, 200, "model and token persisted")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
                conn.request("GET", "/_fake/state")
                st = json.loads(conn.getresponse().read())
                self.assertEqual(st["azurite"]["container"], "models")
                conn.close()
            finally:
                self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
