#!/usr/bin/env python3
"""server.py — a stateful fake of Entra ID, Azure Resource Manager and Azure Machine Learning
for mlstage's tests: one threaded HTTP/1.1 server on 127.0.0.1, strict about the wire contracts
in /work/shared/reference/azure/, with fault injection under /_fake/. See README.md.

    python3 server.py --port 0 [--state FILE] [--azurite URL] [--config FILE]

prints exactly one line, "listening http://127.0.0.1:<port>", then serves until SIGTERM.
"""
import argparse
import base64
import copy
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import arm  # noqa: E402
import control  # noqa: E402
import identity  # noqa: E402
import ml  # noqa: E402
from faults import Faults  # noqa: E402
from lro import Operations  # noqa: E402
from router import (DROP, HTTPError, Request, Router, arm_error, json_response,  # noqa: E402
                    sha_prefix)

SUB = "00000000-1111-2222-3333-444444444444"
DEFAULTS = {
    "tenant_id": "11111111-1111-1111-1111-111111111111",
    # client_id -> credentials. The secret needs URL-encoding ("+", "/", "&", "=", "%") on
    # purpose: "The client secret must be URL-encoded before being sent."
    "apps": {
        "22222222-2222-2222-2222-222222222222": {
            "secrets": ["fake+secret/with&special=chars%"], "federated": []},
        "33333333-3333-3333-3333-333333333333": {
            "secrets": [], "federated": [{
                "issuer": identity.GITHUB_ISSUER,
                "subject": "repo:mlstage/mlstage:ref:refs/heads/main",
                "audience": identity.EXCHANGE_AUDIENCE}]},
    },
    "managed_identity": {
        "enabled": True, "client_id": "44444444-4444-4444-4444-444444444444",
        "object_id": "55555555-5555-5555-5555-555555555555",
        "msi_res_id": "/subscriptions/%s/resourceGroups/rg-mlstage/providers/"
                      "Microsoft.ManagedIdentity/userAssignedIdentities/id-mlstage" % SUB},
    "identity_header": "fake-identity-header",
    "msi_expires_on": "string",  # "string" (App Service) | "int" (Azure ML) | "datetime"
    "actions_request_token": "fake-actions-request-token",
    "oidc": {"issuer": identity.GITHUB_ISSUER,
             "subject": "repo:mlstage/mlstage:ref:refs/heads/main",
             "repository": "mlstage/mlstage", "ref": "refs/heads/main",
             "default_audience": "https://github.com/mlstage", "lifetime": 300},
    "token_lifetime": 3600,
    "subscription_id": SUB,
    "resource_groups": {"rg-mlstage": "westeurope"},
    "workspaces": {"mlw-mlstage": "rg-mlstage"},
    "registries": {"mlr-mlstage": "rg-mlstage"},
    "computes": ["cpu-cluster"],
    "lro_polls": 2,
    "retry_after": 1,
    "job_states": ["Starting", "Running", "Finalizing"],
    "deployment_lro_headers": "both",  # both | async | location
    "validate_async": False,
    "page_size": 10,
    "datastore_endpoint": "core.windows.net",
    "datastore_protocol": "https",
    "azurite": "http://127.0.0.1:10000/devstoreaccount1",  # account URL [/container]
    "azurite_key": ml.AZURITE_KEY,
    "datastore_credentials": "AccountKey",  # AccountKey | Sas: what listSecrets hands out
    "ratelimit": {"reads": 11999, "writes": 1199, "deletes": 14999},
}
SECRET_FIELDS = {"client_secret", "client_assertion", "primaryKey", "secondaryKey", "keyValue"}
MAX_LOGGED_BODY = 64 * 1024


def fresh_state():
    return {"tokens": {}, "endpoint_tokens": {}, "deployments": {}, "arm_resources": {},
            "ml": {}, "operations": {}, "ratelimit": {}, "early_polls": 0}


def mask_json(value):
    if isinstance(value, dict):
        return {k: (sha_prefix(v) if k in SECRET_FIELDS and isinstance(v, str) else mask_json(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_json(v) for v in value]
    return value


class App:
    def __init__(self, args):
        self.lock = threading.RLock()
        self.started = time.time()
        self.state_file = args.state
        cfg = copy.deepcopy(DEFAULTS)
        if args.config:
            with open(args.config) as f:
                self._merge(cfg, json.load(f))
        for opt, key in (("token_lifetime", "token_lifetime"), ("lro_polls", "lro_polls"),
                         ("retry_after", "retry_after")):
            if getattr(args, opt) is not None:
                cfg[key] = getattr(args, opt)
        if args.azurite:
            cfg["azurite"] = args.azurite
        self.base_config = cfg
        self.secret = os.urandom(32)
        self.faults = Faults()
        self.ops = Operations(self)
        self.arm_router = Router()
        arm.register(self)
        ml.register(self)
        self.router = Router()
        self.router.add("POST", "/{tenant}/oauth2/v2.0/token", identity.token_post)
        self.router.add("GET", "/{tenant}/oauth2/v2.0/token", identity.token_get)
        self.router.add("GET", "/{tenant}/v2.0/.well-known/openid-configuration",
                        identity.openid_configuration)
        self.router.add("GET", "/metadata/identity/oauth2/token", identity.imds_token)
        self.router.add("GET", "/msi/token", identity.msi_token)
        self.router.add("GET", "/_actions/idtoken", identity.github_oidc)
        for method in ("POST", "GET", "PUT"):
            self.router.add(method, "/score/{endpoint}", ml.score)
        self.reset(save=False)
        if self.state_file and os.path.exists(self.state_file) and os.path.getsize(self.state_file):
            self.load()
            if args.azurite:  # an explicit flag wins over the dumped configuration
                self.config["azurite"] = args.azurite

    # ---- configuration and state --------------------------------------------------------

    def _merge(self, cfg, new):
        if not isinstance(new, dict):
            raise ValueError("config must be a JSON object")
        unknown = set(new) - set(DEFAULTS)
        if unknown:
            raise ValueError("unknown config keys %s; known: %s" % (sorted(unknown),
                                                                   sorted(DEFAULTS)))
        cfg.update(copy.deepcopy(new))

    def update_config(self, new):
        self._merge(self.config, new)
        self.save()

    @property
    def azurite(self):
        url = self.config["azurite"].rstrip("/")
        parts = [p for p in urlsplit(url).path.split("/") if p]
        return {"url": url, "account": parts[0] if parts else "devstoreaccount1",
                "container": parts[1] if len(parts) > 1 else "azureml-blobstore",
                "key": self.config["azurite_key"]}

    def reset(self, save=True):
        self.config = copy.deepcopy(self.base_config)
        self.state = fresh_state()
        self.faults.clear()
        self.requests = []
        self.next_seq = 1
        if save:
            self.save()

    def public_state(self):
        st = copy.deepcopy(self.state)
        st["tokens"] = control.mask_tokens(st["tokens"])
        st["endpoint_tokens"] = control.mask_tokens(st["endpoint_tokens"])
        for w in st["ml"].values():
            for ep in w["endpoints"].values():
                ep["keys"] = {k: sha_prefix(v) for k, v in ep["keys"].items()}
        return {"config": self.config, "azurite": self.azurite, "faults": self.faults.describe(),
                "state": st}

    def save(self):
        if not self.state_file:
            return
        doc = {"secret": base64.b64encode(self.secret).decode(), "config": self.config,
               "state": self.state, "faults": self.faults.dump()}
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_file)

    def load(self):
        with open(self.state_file) as f:
            doc = json.load(f)
        self.secret = base64.b64decode(doc["secret"])
        self.config = doc["config"]
        self.state = doc["state"]
        self.faults.rules = doc.get("faults", [])

    # ---- serving -----------------------------------------------------------------------------

    def log_request(self, req):
        headers = {}
        for k, v in req.headers.items():
            lk = k.lower()
            if lk == "authorization":
                scheme, _, cred = v.partition(" ")
                v = "%s %s" % (scheme, sha_prefix(cred)) if cred else sha_prefix(v)
            elif lk == "x-identity-header":
                v = sha_prefix(v)
            headers[lk] = headers[lk] + ", " + v if lk in headers else v
        entry = {"seq": self.next_seq, "time": time.time(), "method": req.method,
                 "path": req.path, "query": req.raw_query, "headers": headers,
                 "body": None, "status": None, "fault": None}
        self.next_seq += 1
        req.seq = entry["seq"]
        raw = req.body[:MAX_LOGGED_BODY]
        ctype = headers.get("content-type", "")
        try:
            text = raw.decode("utf-8")
            if "x-www-form-urlencoded" in ctype:
                from urllib.parse import parse_qsl, urlencode
                text = urlencode([(k, sha_prefix(v) if k in SECRET_FIELDS else v)
                                  for k, v in parse_qsl(text, keep_blank_values=True)])
            else:
                try:
                    entry["json"] = mask_json(json.loads(text))
                    text = json.dumps(entry["json"])
                except ValueError:
                    pass
            entry["body"] = text
        except UnicodeDecodeError:
            entry["body_base64"] = base64.b64encode(raw).decode()
        self.requests.append(entry)
        return entry

    @staticmethod
    def area(req):
        p = req.path.lower()
        if p.startswith("/subscriptions/"):
            return "arm"
        if "/oauth2/" in p:
            return "aad"
        return "other"

    def serve(self, req):
        """Returns a Response or DROP."""
        if req.path.startswith("/_fake/"):
            with self.lock:
                return control.handle(self, req)
        with self.lock:
            entry = self.log_request(req)
            effect, note = self.faults.check(req, self.area(req))
            entry["fault"] = note
        if isinstance(effect, tuple):  # ("delay", seconds, DROP | Response | None)
            time.sleep(effect[1])
            effect = effect[2]
        if effect is DROP:
            entry["status"] = "dropped"
            return DROP
        resp = effect if effect is not None else self.dispatch(req)
        entry["status"] = resp.status
        return resp

    def dispatch(self, req):
        is_arm = self.area(req) == "arm"
        with self.lock:
            try:
                if is_arm:
                    resp = arm.handle(self, req)
                else:
                    route, params = self.router.match(req.method, req.path)
                    if route is None:
                        status = 405 if params else 404
                        resp = json_response(status, {"error": {
                            "code": "NotFound" if status == 404 else "MethodNotAllowed",
                            "message": "azure_fake: no route for %s %s" % (req.method,
                                                                          req.path)}})
                    else:
                        resp = route.handler(self, req, **params)
            except HTTPError as e:
                resp = e.response
            except Exception:  # a bug in the fake: say so loudly rather than hang the client
                traceback.print_exc()
                resp = arm_error(500, "AzureFakeInternalError", traceback.format_exc(limit=3))
            if is_arm:
                arm.finish_headers(self, req, resp)
            try:
                self.save()
            except OSError:
                traceback.print_exc()
            return resp


def make_handler(app, verbose):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def version_string(self):
            return "azure-fake/1.0"

        def log_message(self, fmt, *args):
            if verbose:
                sys.stderr.write("[azure_fake] %s\n" % (fmt % args))

        def _read_body(self):
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks), False
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = self.headers.get("Content-Length")
            if length is None:
                return b"", True
            return self.rfile.read(int(length)), False

        def _serve(self):
            try:
                body, no_length = self._read_body()
            except ValueError:
                self.close_connection = True  # the rest of the stream cannot be trusted
                self.send_error(400, "bad Content-Length or chunk size")
                return
            host = self.headers.get("Host") or "127.0.0.1:%d" % self.server.server_port
            req = Request(self.command, self.path, self.headers, body, "http://" + host,
                          no_length)
            resp = app.serve(req)
            if resp is DROP:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self.send_response(resp.status)
            for k, v in resp.headers:
                self.send_header(k, v)
            if resp.status not in (204, 304) and resp.status >= 200:
                self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            if self.command != "HEAD" and resp.status not in (204, 304):
                self.wfile.write(resp.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    return Handler


def main(argv=None):
    p = argparse.ArgumentParser(description="azure_fake: Entra + ARM + Azure ML test server")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--state", help="dump state to FILE after every request; load it at start")
    p.add_argument("--azurite", help="blob account URL the default datastore points at, "
                   "optionally /container (default http://127.0.0.1:10000/devstoreaccount1)")
    p.add_argument("--config", help="JSON file merged over the defaults (see README.md)")
    p.add_argument("--token-lifetime", type=int, dest="token_lifetime")
    p.add_argument("--lro-polls", type=int, dest="lro_polls")
    p.add_argument("--retry-after", type=int, dest="retry_after")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    app = App(args)
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(app, args.verbose))
    httpd.daemon_threads = True

    def stop(*_):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("listening http://127.0.0.1:%d" % httpd.server_address[1], flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        with app.lock:
            app.save()
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
