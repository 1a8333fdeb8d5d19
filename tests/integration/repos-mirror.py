#!/usr/bin/python3
# A loopback HTTP mirror for tests/integration/repos.sh, serving ROOT in one
# of these ways:
#   good     every file, whole or from a Range request's offset (206)
#   slow     64 bytes every half second
#   corrupt  .rpm files with a byte flipped every 4 KiB; the rest as good
#   drop     .rpm files asked for whole: half the bytes, then the connection
#            is closed; the rest (and Range requests) as good
# Each request is appended to LOG as "PATH RANGE" (RANGE "-" when none).
#
#   repos-mirror.py PORT ROOT MODE LOG
import http.server
import os
import socket
import sys
import time

port, root, mode, log = int(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3], sys.argv[4]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        rel = self.path.split("?")[0].lstrip("/")
        full = os.path.normpath(os.path.join(root, rel))
        rng = self.headers.get("Range")
        with open(log, "a") as f:
            f.write("%s %s\n" % (self.path, (rng or "-").replace(" ", "")))
        if not full.startswith(root + "/") or not os.path.isfile(full):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with open(full, "rb") as f:
            data = f.read()
        start = 0
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)
        body = bytearray(data[start:])
        rpm = full.endswith(".rpm")
        if mode == "corrupt" and rpm:
            for i in range(100, len(body), 4096):
                body[i] ^= 0xFF
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if mode == "slow":
                for i in range(0, len(body), 64):
                    self.wfile.write(body[i:i + 64])
                    self.wfile.flush()
                    time.sleep(0.5)
            elif mode == "drop" and rpm and not start:
                self.wfile.write(body[:len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


Server(("127.0.0.1", port), Handler).serve_forever()
