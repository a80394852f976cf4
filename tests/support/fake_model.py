"""A FAKE model server, OpenAI-compatible (POST /v1/chat/completions, stream=true), that streams a known reply.

For tests and benchmarks where the exact text or the pace matters and the model itself is not what is
tested: the app reaches it through the Hugging Face backend (HF_BASE_URL), as it would a real server.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ListeningHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server whose listen queue holds hundreds of connections at once (socketserver's
    default is 5: a load test's many replies starting together would be refused, a fault of the fake)."""

    request_queue_size = 512
    daemon_threads = True


class FakeModelServer:
    """Serves `pieces` one every `interval` seconds for a reply; a title request (few max_tokens) gets `title`."""

    def __init__(self, pieces=None, interval=0.05, title="A fake model title", first_delay=0.0):
        self.pieces = list(pieces) if pieces is not None else [f"word{number} " for number in range(40)]
        self.interval = interval
        self.first_delay = first_delay  # seconds a reply waits before its first piece, asleep (no CPU), as a model
        self.title = title
        self.requests = 0
        self.abandoned = 0  # replies whose client went away before the end
        self.bodies = []  # each chat request's JSON body (the messages the model was sent)
        self.headers = []  # each chat request's headers, names lowercase (who pays: authorization, x-hf-bill-to)
        self.status = 200  # another status answers every chat request with an error (402: no credits left)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def end_headers(self):
                # Any origin may call it, as llama.cpp's server allows: a benchmark's page streams from it directly.
                self.send_header("Access-Control-Allow-Origin", "*")
                super().end_headers()

            def do_OPTIONS(self):  # a page's preflight, for a JSON body
                self.send_response(204)
                self.send_header("Access-Control-Allow-Methods", "GET, POST")
                self.send_header("Access-Control-Allow-Headers", "Content-Type, Authorization")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):  # /v1/models, as llama.cpp's server answers it
                body = json.dumps({"object": "list", "data": [{"id": "fake-model", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                server.requests += 1
                server.headers.append({name.lower(): value for name, value in self.headers.items()})
                server.bodies.append(request)
                if server.status != 200:
                    body = json.dumps({"error": f"refused with {server.status}"}).encode()
                    self.send_response(server.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                is_title = request.get("max_tokens", 1024) <= 30
                pieces = [server.title] if is_title else server.pieces
                if not is_title:
                    time.sleep(server.first_delay)
                try:
                    for piece in pieces:
                        chunk = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": piece}}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        if not is_title:
                            time.sleep(server.interval)
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except OSError:
                    server.abandoned += 1
                self.close_connection = True

        self.httpd = ListeningHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_port
        self.url = f"http://127.0.0.1:{self.port}/v1"

    @property
    def text(self):
        """The whole reply, as the app should store it."""
        return "".join(self.pieces)

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()  # shutdown() waits a poll
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
