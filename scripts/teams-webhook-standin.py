#!/usr/bin/env python3
"""teams-webhook-standin.py — a local stand-in for a Microsoft Teams Workflows webhook.

For demos without a Teams tenant: it listens on 127.0.0.1, takes what
notify-teams posts, answers 202 Accepted with an empty body as Workflows
does, saves each message to a folder and prints one line per card:

    python3 scripts/teams-webhook-standin.py --out .mlstage/teams-cards --url-file /tmp/webhook
    TEAMS_WEBHOOK_URL=$(cat /tmp/webhook) mlstage run tasks/notify.yml

Like the real service it refuses, with a JSON error and nothing saved, a
message over 28 KB (413), a body that is not JSON or not the webhook
envelope {"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": {...}}]} (400).
Python standard library only.
"""

import argparse
import http.server
import json
import os
import signal
import sys
import threading

LIMIT_BYTES = 28 * 1024
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
# Where Workflows webhooks live; any path is taken, this one is what --url-file gives.
WEBHOOK_PATH = "/workflows/standin/triggers/manual/paths/invoke?api-version=2016-06-01"


def envelope_problem(doc):
    """Why `doc` is not a Workflows webhook message with one Adaptive Card, or None."""
    if not isinstance(doc, dict) or doc.get("type") != "message":
        return 'expected an object with "type": "message"'
    attachments = doc.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return 'expected a non-empty "attachments" list'
    first = attachments[0]
    if not isinstance(first, dict) or first.get("contentType") != CARD_TYPE:
        return f'expected attachments[0].contentType "{CARD_TYPE}"'
    content = first.get("content")
    if not isinstance(content, dict) or content.get("type") != "AdaptiveCard":
        return 'expected attachments[0].content to be an object with "type": "AdaptiveCard"'
    return None


def card_summary(card):
    """The title (first TextBlock) and the colour-coded decision line of a card."""
    blocks = [b for b in card.get("body", []) if isinstance(b, dict) and b.get("type") == "TextBlock"]
    title = blocks[0].get("text", "") if blocks else ""
    decision = next((b.get("text", "") for b in blocks[1:] if b.get("color") in ("Good", "Attention")), "")
    return title, decision


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "teams-webhook-standin/1.0"

    def log_message(self, fmt, *args):  # one summary line per card instead
        pass

    def answer(self, status, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def refuse(self, status, code, message):
        print(f"teams-standin: refused a message: HTTP {status} {code}: {message}", flush=True)
        self.answer(status, {"error": {"code": code, "message": message}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if len(raw) > LIMIT_BYTES:
            return self.refuse(413, "RequestEntityTooLarge",
                               f"the message is {len(raw)} bytes, over the {LIMIT_BYTES} byte limit")
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return self.refuse(400, "InvalidRequestContent", f"the body is not JSON: {e}")
        problem = envelope_problem(doc)
        if problem:
            return self.refuse(400, "InvalidRequestContent", problem)
        with self.server.lock:
            self.server.count += 1
            number = self.server.count
        path = os.path.join(self.server.out_dir, f"card-{number:04d}.json")
        with open(path + ".tmp", "wb") as f:
            f.write(raw)
        os.replace(path + ".tmp", path)
        title, decision = card_summary(doc["attachments"][0]["content"])
        print(f"teams-standin: card {number}: {title!r}{' — ' + decision if decision else ''} "
              f"({len(raw)} bytes) -> {path}", flush=True)
        self.answer(202)

    def do_GET(self):
        self.refuse(405, "MethodNotAllowed", "a webhook takes POST only")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--out", default=".mlstage/teams-cards", help="folder for the cards received")
    parser.add_argument("--url-file", help="write the webhook URL here once listening")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.out_dir = os.path.abspath(args.out)
    server.count = 0
    server.lock = threading.Lock()
    url = f"http://127.0.0.1:{server.server_address[1]}{WEBHOOK_PATH}"
    if args.url_file:
        with open(args.url_file + ".tmp", "w") as f:
            f.write(url + "\n")
        os.replace(args.url_file + ".tmp", args.url_file)
    print(f"teams-standin: listening on {url}, saving cards to {server.out_dir}", flush=True)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    server.server_close()
    print(f"teams-standin: stopped after {server.count} card(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
