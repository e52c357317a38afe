"""A fake OpenAI-compatible server on 127.0.0.1 for the tests of everything that talks to one (the subtask
annotator, the zero-shot progress model). Importable from any test: pytest puts tests/ on sys.path (the
folder of the root conftest.py)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeChatServer:
    """An OpenAI-compatible /v1/chat/completions endpoint on 127.0.0.1 answering from a script.

    `script(request_number, prompt_text, body)` returns `(status, answer_text)` or
    `(status, answer_text, extra)` where `extra` may hold "headers" (sent with the answer, e.g.
    {"Retry-After": "0.1"}), "delay" (seconds to wait before answering: a hang), "usage" (the answer's
    usage field) and "fields" (more top-level fields of the answer, e.g. "prompt_logprobs").
    Every request (path, body, Authorization header) is kept in `requests`.
    """

    def __init__(self, script):
        self.script = script
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(
                        {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                    )
                    number = len(server.requests)
                texts = [p["text"] for p in body["messages"][0]["content"] if p["type"] == "text"]
                status, answer, *rest = server.script(number, "\n".join(texts), body)
                extra = rest[0] if rest else {}
                if extra.get("delay"):
                    time.sleep(extra["delay"])
                if status == 200:
                    document = {
                        "id": "x",
                        "object": "chat.completion",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}],
                        **({"usage": extra["usage"]} if "usage" in extra else {}),
                        **extra.get("fields", {}),
                    }
                else:
                    document = {"error": answer}
                payload = json.dumps(document).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in extra.get("headers", {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
