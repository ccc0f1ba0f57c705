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


class FloodProbe:
    """An attacker token's silent WebSockets on one of its kernels while a neighbour
    token runs cells on a kernel of its own: the gateway's RSS (before, at peak, after
    the sockets close) and the neighbour's round trips. `flood` is "output" (the
    attacker's cells print `cell_bytes` each, which every socket of the kernel is sent)
    or "kernel_info" (the silent sockets send kernel_info_requests without reading the
    replies), or "none" (the baseline: the neighbour alone). The tests run it small,
    bench/gateway_tenants.py at full size. `latencies`: the neighbour's, in seconds."""

    def __init__(self, gateway_url, gateway_pid, attacker, neighbour, sockets=20,
                 seconds=30.0, flood="output", cell_bytes=1 << 20, kernels=1):
        """`kernels`: how many kernels of the attacker's the silent sockets are spread
        over (the first one is the one whose cells print)."""
        self.url = gateway_url
        self.pid = gateway_pid
        self.attacker = attacker
        self.neighbour = neighbour
        self.sockets = sockets
        self.seconds = seconds
        self.flood = flood
        self.cell_bytes = cell_bytes
        self.kernels = kernels

    def run(self):
        import collections
        import threading
        import time

        from sorna.testing.processes import rss

        attacker, neighbour = Http(self.url, self.attacker), Http(self.url, self.neighbour)
        kernels = []
        try:
            for http in [neighbour] + [attacker] * self.kernels:
                status, kernel, _ = http.post("/api/kernels", {"name": "python3"})
                if status != 201:
                    raise RuntimeError(f"could not start a kernel: {status} {kernel}")
                kernels.append((http, kernel))
            own, targets = kernels[0][1], [kernel for _, kernel in kernels[1:]]
            target = targets[0]
            driver = JupyterSocket(self.url, target["id"], self.attacker)
            calm = JupyterSocket(self.url, own["id"], self.neighbour)
            driver.execute("1")
            calm.execute("1")
            time.sleep(1.0)
            before = rss(self.pid)
            upgrades, silent = collections.Counter(), []
            for i in range(self.sockets):
                try:
                    silent.append(_silent_socket(self.url, targets[i % len(targets)]["id"],
                                                 self.attacker))
                    upgrades[101] += 1
                except Exception as e:  # a refused upgrade (the quotas)
                    upgrades[getattr(e, "status_code", type(e).__name__)] += 1
            peak, stop, latencies = [before], threading.Event(), []

            def sample():
                while not stop.is_set():
                    peak.append(rss(self.pid))
                    time.sleep(0.1)

            def neighbour_runs():
                while not stop.is_set():
                    started = time.monotonic()
                    calm.execute("print(1)")
                    latencies.append(time.monotonic() - started)

            threads = [threading.Thread(target=sample), threading.Thread(
                target=neighbour_runs)]
            for thread in threads:
                thread.start()
            end = time.monotonic() + self.seconds
            sent = 0
            sending = list(silent)
            while time.monotonic() < end:
                if self.flood == "output":
                    driver.execute(f"print('x' * {self.cell_bytes})")
                elif self.flood == "none":
                    time.sleep(0.05)
                else:
                    for sock in list(sending):
                        try:
                            sock.send(json.dumps(jupyter_message("kernel_info_request",
                                                                 {})))
                        except Exception:
                            sending.remove(sock)  # the gateway closed it
                    time.sleep(0.001)
                sent += 1
            stop.set()
            for thread in threads:
                thread.join()
            self.latencies = latencies
            closed = sum(1 for sock in silent if _closed_by_peer(sock))
            for sock in silent:
                sock.close()
            driver.close()
            calm.close()
            time.sleep(3.0)
            after = rss(self.pid)
        finally:
            for http, kernel in kernels:
                http.delete(f"/api/kernels/{kernel['id']}")
        from statistics import median
        ordered = sorted(latencies)
        return {"flood": self.flood, "sockets_asked": self.sockets,
                "upgrades": {str(k): v for k, v in upgrades.items()},
                "closed_by_gateway": closed, "rounds": sent,
                "rss_mib": {"before": round(before / 2 ** 20, 1),
                            "peak": round(max(peak) / 2 ** 20, 1),
                            "after": round(after / 2 ** 20, 1)},
                "neighbour_ms": {"n": len(ordered),
                                 "p50": round(median(ordered) * 1000, 1) if ordered else None,
                                 "p90": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 1)
                                 if ordered else None}}


def _silent_socket(base_url, kernel_id, token):
    """A channels WebSocket (token in the query, as a browser sends it) that will never
    read, with a small receive buffer so that what it does not read waits in the
    gateway."""
    import websocket

    url = base_url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    return websocket.create_connection(
        f"{url}?token={token}", timeout=TIMEOUT,
        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))


def _closed_by_peer(sock):
    """Whether the gateway closed this socket (it reads what is left, to see)."""
    import websocket

    sock.settimeout(2.0)
    try:
        while True:
            frame = sock.recv_frame()
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                return True
    except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
        return True
    except websocket.WebSocketTimeoutException:
        return False
