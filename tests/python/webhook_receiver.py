"""A webhook receiver for the tests, written against the reference `standardwebhooks`
library (not against Framehouse's code): every delivery is verified with it, and what
arrived is reported on a small control API.

    python webhook_receiver.py            prints {"port": N} once it listens on 127.0.0.1

Control (plain HTTP, unsigned):
    PUT /control/secret   body: the whsec_ secret deliveries must verify with
    PUT /control/fail     body: N — answer 500 to the next N verified deliveries
    PUT /control/status   body: a status code to answer every verified delivery with
    PUT /control/hold     body: 1 to hold deliveries open until set to 0
    GET /control/received the verified deliveries: [{id, type, timestamp, data, signatures}]
    GET /control/rejected deliveries that failed verification: [{reason, headers}]
    GET /control/attempts how many delivery requests arrived (verified or not)
Anything else is a delivery.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

lock = threading.Lock()
released = threading.Event()
released.set()
state = {
    "secret": None,
    "fail": 0,
    "status": 204,
    "received": [],
    "rejected": [],
    "attempts": 0,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args):
        pass

    def _body(self):
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length)

    def _answer(self, status, payload=None):
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender gave up (timeout) or went away (killed): nothing to answer

    def do_GET(self):
        with lock:
            if self.path == "/control/received":
                return self._answer(200, state["received"])
            if self.path == "/control/rejected":
                return self._answer(200, state["rejected"])
            if self.path == "/control/attempts":
                return self._answer(200, state["attempts"])
        self._answer(404, {"error": "unknown control path"})

    def do_PUT(self):
        text = self._body().decode().strip()
        with lock:
            if self.path == "/control/secret":
                state["secret"] = text
            elif self.path == "/control/fail":
                state["fail"] = int(text)
            elif self.path == "/control/status":
                state["status"] = int(text)
            elif self.path == "/control/hold":
                if text == "1":
                    released.clear()
                else:
                    released.set()
            else:
                return self._answer(404, {"error": "unknown control path"})
        self._answer(204)

    def do_POST(self):
        body = self._body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        with lock:
            state["attempts"] += 1
            secret = state["secret"]
        released.wait()
        try:
            if secret is None:
                raise WebhookVerificationError("no secret set")
            payload = Webhook(secret).verify(body, headers)
        except (WebhookVerificationError, ValueError) as e:
            with lock:
                state["rejected"].append({"reason": str(e), "headers": headers})
            return self._answer(401, {"error": str(e)})
        with lock:
            if state["fail"] > 0:
                state["fail"] -= 1
                return self._answer(500, {"error": "told to fail"})
            status = state["status"]
            if 200 <= status < 300:
                state["received"].append(
                    {
                        "id": headers.get("webhook-id"),
                        "type": payload.get("type"),
                        "timestamp": payload.get("timestamp"),
                        "data": payload.get("data"),
                        "signatures": headers.get("webhook-signature", "").split(" "),
                    }
                )
        self._answer(status, {"ok": 200 <= status < 300})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    # Stops when the test that started it closes our stdin (or dies).
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
