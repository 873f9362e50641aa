"""Local HTTP servers that speak the Anthropic Messages and OpenAI chat-completions wire protocols and
replay scripted turns (responses, errors, truncated bodies), recording every request."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Step = dict | Callable[[dict], dict]


class ScriptedServer:
    """Serves ``steps`` in order on POST ``path``; then ``default`` (a step) forever."""

    def __init__(self, path: str, steps: list[Step], default: Step | None = None) -> None:
        self.path, self.steps, self.default = path, list(steps), default
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                n = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(n) or b"{}")
                if self.path.rstrip("/") != outer.path:
                    return self._send(
                        {"status": 404, "body": {"error": {"type": "not_found", "message": self.path}}}
                    )
                with outer.lock:
                    outer.requests.append(body)
                    outer.headers.append(dict(self.headers))
                    step = outer.steps.pop(0) if outer.steps else outer.default
                if step is None:
                    step = {
                        "status": 500,
                        "body": {"error": {"type": "api_error", "message": "script exhausted"}},
                    }
                if callable(step):
                    step = step(body)
                self._send(step)

            def _send(self, step: dict) -> None:
                data = json.dumps(step.get("body", {})).encode()
                self.send_response(step.get("status", 200))
                self.send_header("content-type", "application/json")
                for k, v in step.get("headers", {}).items():
                    self.send_header(k, str(v))
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if step.get("truncate"):
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- Anthropic Messages ----------------------------------------------------------------------------
def a_usage(inp=1000, out=100, cache_read=0, cache_write=0) -> dict:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
    }


def a_tool(name: str, args, cid: str | None = None) -> dict:
    return {"type": "tool_use", "id": cid or f"toolu_{uuid.uuid4().hex[:16]}", "name": name, "input": args}


def a_text(text: str) -> dict:
    return {"type": "text", "text": text}


def a_msg(
    *blocks: dict, stop: str | None = None, usage: dict | None = None, model="claude-sonnet-4-5"
) -> dict:
    if stop is None:
        stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    return {
        "status": 200,
        "body": {
            "id": f"msg_{uuid.uuid4().hex[:12]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": list(blocks),
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage or a_usage(),
        },
    }


def a_error(status: int, kind: str, message: str = "", headers: dict | None = None) -> dict:
    return {
        "status": status,
        "headers": headers or {},
        "body": {"type": "error", "error": {"type": kind, "message": message or kind}},
    }


# -- OpenAI chat completions -----------------------------------------------------------------------
def o_usage(prompt=1000, completion=100, cached=0) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def o_call(name: str, arguments, cid: str | None = None) -> dict:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {
        "id": cid or f"call_{uuid.uuid4().hex[:12]}",
        "type": "function",
        "function": {"name": name, "arguments": args},
    }


def o_msg(
    content: str | None = None,
    calls: list[dict] | None = None,
    finish: str | None = None,
    usage: dict | None = None,
    model: str = "local-model",
) -> dict:
    msg: dict = {"role": "assistant", "content": content}
    if calls:
        msg["tool_calls"] = calls
    finish = finish or ("tool_calls" if calls else "stop")
    return {
        "status": 200,
        "body": {
            "id": f"chatcmpl-{uuid.uuid4().hex[:10]}",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
            "usage": usage or o_usage(),
        },
    }


def o_error(status: int, message: str = "", headers: dict | None = None) -> dict:
    return {
        "status": status,
        "headers": headers or {},
        "body": {"error": {"message": message or f"error {status}", "type": "error", "code": None}},
    }
