#!/usr/bin/env python3
"""Serve a model trained by train.py over HTTP.

  GET  /health  -> {"status": "ok", "model": {...}}
  POST /score   <- {"data": [[10 numbers], ...]}  or  {"inputs": [{"age": .., ...}, ...]}
                -> {"predictions": [number, ...]}

Listens on 127.0.0.1 by default; prints "listening on http://HOST:PORT" once ready.
"""
import argparse
import json
import os
import pickle
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20
MAX_ROWS = 10000


def load(model_dir):
    with open(os.path.join(model_dir, "model.pkl"), "rb") as f:
        est = pickle.load(f)
    with open(os.path.join(model_dir, "model.json")) as f:
        meta = json.load(f)
    return est, meta


def rows_from(body, features):
    """Returns a list of rows (lists of floats) or raises ValueError with a reason."""
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object with \"data\" or \"inputs\"")
    if "data" in body:
        rows = body["data"]
        if not isinstance(rows, list) or not rows:
            raise ValueError("\"data\" must be a non-empty list of rows")
        out = []
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(features):
                raise ValueError(f"data[{i}] must be a list of {len(features)} numbers "
                                 f"({', '.join(features)})")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row):
                raise ValueError(f"data[{i}] must contain numbers only")
            out.append([float(v) for v in row])
        return out
    if "inputs" in body:
        items = body["inputs"]
        if not isinstance(items, list) or not items:
            raise ValueError("\"inputs\" must be a non-empty list of objects")
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(f"inputs[{i}] must be an object")
            missing = [f for f in features if f not in item]
            if missing:
                raise ValueError(f"inputs[{i}] lacks {', '.join(missing)}")
            out.append([float(item[f]) for f in features])
        return out
    raise ValueError("expected a JSON object with \"data\" or \"inputs\"")


def make_handler(est, meta):
    features = meta["features"]

    class Handler(BaseHTTPRequestHandler):
        server_version = "diabetes-score/1.0"

        def log_message(self, fmt, *args):
            sys.stderr.write("[score] %s %s\n" % (self.address_string(), fmt % args))

        def reply(self, status, doc):
            data = (json.dumps(doc) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                self.reply(200, {"status": "ok", "model": meta.get("params", {})})
            else:
                self.reply(404, {"error": f"no route {self.path}; try GET /health or POST /score"})

        def do_POST(self):
            if self.path != "/score":
                self.reply(404, {"error": f"no route {self.path}; try POST /score"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if length <= 0 or length > MAX_BODY:
                self.reply(400 if length <= 0 else 413,
                           {"error": "send a JSON body of at most 1 MiB with Content-Length"})
                return
            try:
                body = json.loads(self.rfile.read(length))
                rows = rows_from(body, features)
                if len(rows) > MAX_ROWS:
                    raise ValueError(f"at most {MAX_ROWS} rows per request")
            except (ValueError, json.JSONDecodeError) as e:
                self.reply(400, {"error": str(e)})
                return
            preds = est.predict(rows)
            self.reply(200, {"predictions": [round(float(p), 4) for p in preds]})

    return Handler


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model folder written by train.py")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "0")))
    args = p.parse_args(argv)
    est, meta = load(args.model)
    httpd = ThreadingHTTPServer((args.host, args.port), make_handler(est, meta))

    def stop(*_):
        # Raised in the thread running serve_forever, which it leaves; httpd.shutdown() here
        # would wait for that same thread to finish and never return.
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    host, port = httpd.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
