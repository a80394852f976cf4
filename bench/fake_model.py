"""A fast fake model server for load benchmarks: OpenAI-compatible streamed chat completions
of fixed words at a fixed pace. It fakes the model only, so the load falls on the app."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = 40  # pieces per reply
INTERVAL = 0.05  # seconds between pieces: a 2-second reply at 20 tokens/s


class FakeModelHandler(BaseHTTPRequestHandler):
    """POST /v1/chat/completions with stream=true answers WORDS pieces, then [DONE]."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        pieces = WORDS if request.get("max_tokens", 1024) > 30 else 4  # a short answer for titles
        for number in range(pieces):
            chunk = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": f"word{number} "}}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            time.sleep(INTERVAL)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


def start(port=0):
    """Serve on 127.0.0.1:port (by default one the kernel picks: see server_port) in a thread; return the
    server (call shutdown() to stop)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), FakeModelHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
