"""A headless Chromium driven over its DevTools protocol, with Python's
standard library only: the browser started in a process group of its own,
a WebSocket client just large enough for the protocol, and the few calls
the page's tests make (navigate, evaluate, wait for, click, screenshot)."""
import base64
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.request


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class WebSocket:
    def __init__(self, url):
        m = re.match(r"ws://([^/:]+):(\d+)(/.*)", url)
        host, port, path = m.group(1), int(m.group(2)), m.group(3)
        self.sock = socket.create_connection((host, port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the browser closed the DevTools connection")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError("no WebSocket upgrade: " + head.decode(errors="replace"))

    def send(self, text):
        data = text.encode()
        n = len(data)
        if n < 126:
            hdr = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        mask = os.urandom(4)
        self.sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the browser closed the DevTools connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)
            op = b0 & 0x0F
            if op == 0x9:  # ping
                continue
            if op == 0x8:
                raise ConnectionError("the browser closed the DevTools connection")
            message += payload
            if b0 & 0x80:
                return message.decode()


class Browser:
    """One headless Chromium with one page."""

    def __init__(self, out_dir, width=1280, height=900):
        exe = find_chromium()
        if not exe:
            raise FileNotFoundError("no chromium")
        self.profile = os.path.join(out_dir, "chromium-profile")
        os.makedirs(self.profile, exist_ok=True)
        self.log = open(os.path.join(out_dir, "chromium.log"), "w")
        args = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.PIPE, start_new_session=True)
        ws_url = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline().decode(errors="replace")
            if not line and self.proc.poll() is not None:
                break
            self.log.write(line)
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                ws_url = m.group(1)
                break
        if not ws_url:
            self.close()
            raise RuntimeError("chromium did not start; see chromium.log")
        # The rest of its stderr goes to the log, so the pipe never fills.
        threading.Thread(target=self._drain, daemon=True).start()
        port = re.match(r"ws://[^:]+:(\d+)/", ws_url).group(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        self.ws = WebSocket(pages[0]["webSocketDebuggerUrl"])
        self.next_id = 0
        self.console = []
        self.stubs = {}  # URL ending -> (status, JSON body): answered by the test, not the server
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _drain(self):
        for line in self.proc.stderr:
            try:
                self.log.write(line.decode(errors="replace"))
            except ValueError:
                return

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if msg.get("method") == "Fetch.requestPaused":
                self._answer(msg["params"])
            elif msg.get("method") == "Runtime.exceptionThrown":
                self.console.append(msg["params"]["exceptionDetails"].get("exception", {}).get("description", "?"))
            elif msg.get("method") == "Runtime.consoleAPICalled" and msg["params"]["type"] == "error":
                self.console.append(" ".join(str(a.get("value", a.get("description"))) for a in msg["params"]["args"]))

    def stub(self, url_end, status, body):
        """Answers every request whose URL ends in url_end with status and
        the JSON body, from now on (the Fetch domain intercepts them)."""
        self.stubs[url_end] = (status, body)
        self.call("Fetch.enable", patterns=[{"urlPattern": "*" + u} for u in self.stubs])

    def _answer(self, params):
        url = params["request"]["url"].split("?")[0]
        self.next_id += 1
        for end, (status, body) in self.stubs.items():
            if url.endswith(end):
                data = base64.b64encode(json.dumps(body).encode()).decode()
                self.ws.send(json.dumps({"id": self.next_id, "method": "Fetch.fulfillRequest", "params": {
                    "requestId": params["requestId"], "responseCode": status,
                    "responseHeaders": [{"name": "Content-Type", "value": "application/json"}], "body": data}}))
                return
        self.ws.send(json.dumps({"id": self.next_id, "method": "Fetch.continueRequest",
                                 "params": {"requestId": params["requestId"]}}))

    def navigate(self, url):
        self.call("Page.navigate", url=url)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails'].get('exception', {}).get('description', r['exceptionDetails'])}")
        return r["result"].get("value")

    def wait_for(self, expr, timeout=30, step=0.05):
        """Evaluates expr until it is truthy; returns its value, or raises
        TimeoutError with the last value."""
        deadline = time.time() + timeout
        value = None
        while time.time() < deadline:
            try:
                value = self.eval(expr)
            except RuntimeError as e:
                value = str(e)
            else:
                if value:
                    return value
            time.sleep(step)
        raise TimeoutError(f"waited {timeout} s for {expr}; last: {value!r}")

    def click(self, selector):
        """A mouse click in the middle of the element, as a person's."""
        box = self.eval(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e) return null; e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        if not box:
            raise RuntimeError(f"no element {selector}")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type_into(self, selector, text):
        self.eval(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    def screenshot(self, path):
        r = self.call("Page.captureScreenshot", format="png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))

    def close(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # Its child processes share its group: none may outlive the test.
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()
