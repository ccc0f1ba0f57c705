"""Plain HTTP and WebSocket clients of a gateway, for tests and benchmarks."""

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid

TIMEOUT = 30.0


class Http:
    def __init__(self, base_url, token=None, scheme="token"):
        self.base_url = base_url
        self.token = token
        self.scheme = scheme

    def call(self, method, path, body=None, headers=None, raw=None, token=True):
        """(status, parsed JSON body or None, headers) of one request. `raw`: bytes to
        send as they are (with no content type unless `headers` gives one)."""
        data = raw if raw is not None else (None if body is None else
                                            json.dumps(body).encode())
        request = urllib.request.Request(self.base_url + path, method=method, data=data)
        if body is not None and raw is None:
            request.add_header("Content-Type", "application/json")
        if token and self.token:
            request.add_header("Authorization", f"{self.scheme} {self.token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:
                return reply.status, _parse(reply.read()), reply.headers
        except urllib.error.HTTPError as e:
            return e.code, _parse(e.read()), e.headers

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body if body is not None else {}, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


def _parse(data):
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data


def raw_request(host, port, data, timeout=TIMEOUT):
    """Send `data` on a fresh TCP connection; return what comes back until it closes."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def jupyter_message(msg_type, content, channel="shell", parent=None, session="tests"):
    header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "tests",
              "session": session, "date": "2026-01-01T00:00:00.000000Z", "version": "5.3"}
    return {"header": header, "parent_header": parent or {}, "metadata": {},
            "content": content, "channel": channel, "buffers": []}


class JupyterSocket:
    """A kernel's channels WebSocket, as jupyter_server's gateway client opens it."""

    def __init__(self, base_url, kernel_id, token, timeout=TIMEOUT):
        import websocket

        url = base_url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
        self.ws = websocket.create_connection(url + "?session_id=tests",
                                              header=[f"Authorization: token {token}"],
                                              timeout=timeout)

    def send(self, message):
        self.ws.send(json.dumps(message))
        return message

    def receive(self):
        return json.loads(self.ws.recv())

    def request(self, msg_type, content, channel="shell"):
        return self.send(jupyter_message(msg_type, content, channel))

    def until_idle(self, request, answer_input=None):
        """The messages about `request` up to its `status: idle`, answering each
        input_request with `answer_input(prompt)`."""
        messages = []
        while True:
            message = self.receive()
            if message["parent_header"].get("msg_id") != request["header"]["msg_id"]:
                continue
            messages.append(message)
            if message["msg_type"] == "input_request" and answer_input is not None:
                self.send(jupyter_message("input_reply", {
                    "status": "ok", "value": answer_input(message["content"]["prompt"])},
                    "stdin", parent=message["header"]))
            if (message["msg_type"] == "status"
                    and message["content"]["execution_state"] == "idle"):
                return messages

    def execute(self, code, answer=None, **content):
        """Run `code`; `answer(prompt)` answers its reads (then stdin is allowed)."""
        request = self.request("execute_request", dict({
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": answer is not None, "stop_on_error": True}, **content))
        return self.until_idle(request, answer)

    def close(self):
        self.ws.close()


def stdout_of(messages, name="stdout"):
    return "".join(m["content"]["text"] for m in messages
                   if m["msg_type"] == "stream" and m["content"]["name"] == name)


def of_type(messages, msg_type):
    return [m for m in messages if m["msg_type"] == msg_type]
