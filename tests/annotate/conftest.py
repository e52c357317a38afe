"""Fixtures for the annotate tests: a writable copy of the shared tiny dataset, a fake VLM server."""

from __future__ import annotations

import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture
def dataset_copy(tiny_dataset, tmp_path):
    """A writable copy of the tiny dataset (3 episodes of 20, 24, 16 frames at 10 fps)."""
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset[0], root)
    return root


def good_answer(prompt: str, names: list[str]) -> str:
    """A well-formed answer for the episode described in `prompt`: equal-length subtasks, with a timeline."""
    duration = float(re.search(r"runs from 0\.00 s to ([0-9.]+) s", prompt).group(1))
    cuts = [round(duration * k / len(names), 2) for k in range(len(names) + 1)]
    cuts[-1] = duration
    timeline = "\n".join(
        f"- {n}: {a:.2f}s to {b:.2f}s, the arm moves" for n, a, b in zip(names, cuts, cuts[1:], strict=False)
    )
    spans = [{"name": n, "start": a, "end": b} for n, a, b in zip(names, cuts, cuts[1:], strict=False)]
    return f"Timeline:\n{timeline}\n\n```json\n{json.dumps({'subtasks': spans})}\n```"


class FakeChatServer:
    """An OpenAI-compatible /v1/chat/completions endpoint on 127.0.0.1 answering from a script.

    `script(request_number, prompt_text, body) -> (status, answer_text)`; every request body is kept.
    """

    def __init__(self, script):
        self.script = script
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                texts = [p["text"] for p in body["messages"][0]["content"] if p["type"] == "text"]
                status, answer = server.script(len(server.requests), "\n".join(texts), body)
                payload = json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}],
                    }
                    if status == 200
                    else {"error": answer}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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


@pytest.fixture
def chat_server():
    """The FakeChatServer class (use as `with chat_server(script) as server:`)."""
    return FakeChatServer


@pytest.fixture
def answer_for():
    """`answer_for(prompt, names)`: a well-formed model answer for the episode the prompt describes."""
    return good_answer
