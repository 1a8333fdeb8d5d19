#!/usr/bin/env python3
"""A webhook receiver for tests/integration/webhooks.sh: checks each
delivery's signature and timestamp as docs/operations.md says a receiver
should, and writes one JSON line per request to LOG: the delivery id, the
event, whether the signature and the timestamp were good, and the status
it answered. The first FAIL requests are answered 500; while the file HOLD
exists a request is logged, then held until the file is gone (a receiver
that is slow to answer, for a restart of slipwayd in the middle).

usage: webhook-receiver.py PORT-FILE LOG SECRET FAIL HOLD
"""
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time

port_file, log_path, secret, fail_first, hold = sys.argv[1:6]
fail_first = int(fail_first)
lock = threading.Lock()
count = 0


def verify(headers, body):
    """The check a receiver makes: the signature over the timestamp and
    the body, and a timestamp within five minutes (no replays)."""
    ts = headers.get("X-Slipway-Timestamp", "")
    sig = headers.get("X-Slipway-Signature", "")
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    sig_ok = hmac.compare_digest(sig, "sha256=" + mac)
    ts_ok = ts.isdigit() and abs(time.time() - int(ts)) <= 300
    return sig_ok, ts_ok


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sig_ok, ts_ok = verify(self.headers, body)
        with lock:
            count += 1
            n = count
        status = 500 if n <= fail_first else 200 if sig_ok and ts_ok else 401
        try:
            event = json.loads(body)
        except ValueError:
            event = {}
        line = {
            "n": n,
            "delivery": self.headers.get("X-Slipway-Delivery"),
            "header_event": self.headers.get("X-Slipway-Event"),
            "id": event.get("id"),
            "event": event.get("event"),
            "target": event.get("target"),
            "detail": event.get("detail"),
            "path": self.path,
            "sig_ok": sig_ok,
            "ts_ok": ts_ok,
            "held": os.path.exists(hold),
            "status": status,
        }
        with lock, open(log_path, "a") as f:
            f.write(json.dumps(line) + "\n")
        while os.path.exists(hold):
            time.sleep(0.05)
        try:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
