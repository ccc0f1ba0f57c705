"""The one dispatch of requests, which the daemon and its in-process twin (LocalDaemon)
share: each says only how a run starts and how the main thread is signalled."""

import os

from repl_wire import ASSIST_ACTIONS, MAX_MATCHES, RequestError, sendable


def answer(request, session, files, start_run, signal_main):
    """The reply to `request`, or None for an execute (its events are the answer, once
    `start_run(run id, code, program)` has it going); RequestError for a refusal."""
    request_id, action = request.get("id"), request["action"]
    if action == "ping":
        return {"id": request_id, "reply": 0}
    if action == "execute":
        if not session.reserve(request_id):
            raise RequestError(409, "kernel-busy", "A run is going on already; "
                                                   "wait for its finished event.")
        try:
            program = place_program(files, session.program_driver, request)
        except RequestError:
            session.release()
            raise
        start_run(request_id, request["code"], program)
        return None
    if action == "input":
        if not session.provide_input(request["text"], request.get("eof") is True):
            raise RequestError(409, "not-waiting-input", "No read is waiting for input.")
        return {"id": request_id, "reply": 200}
    if action == "interrupt":
        interrupted = session.interrupt(signal_main, request.get("run"))
        return {"id": request_id, "reply": 200, "interrupted": interrupted}
    if action == "restart":
        return {"id": request_id, "reply": 200}
    return dict(answer_request(files, session.driver, request), id=request_id)


def place_program(files, driver, request):
    """Write an execute's program file (its code, under `program.name` or the
    language's source name) into the work folder; the Session's `program` for it."""
    program = request.get("program")
    if program is None:
        return None
    if driver is None:
        raise RequestError(400, "programs-unsupported", "This kernel's language does not "
                                                        "run programs.")
    code = request["code"]
    name = driver.entry_name(code, program.get("name"))
    placed = files.upload(name, code.encode("utf-8", "surrogatepass"))
    return {"path": os.path.join(files.root, *placed["path"].split("/")),
            "args": list(program.get("args", [])), "stdin": program.get("stdin")}


def answer_request(files, driver, request):
    """The reply to upload/download/list and to the driver's assists (raising
    RequestError for refusals)."""
    action = request["action"]
    if action in ASSIST_ACTIONS:
        return dict(answer_assist(driver, request), reply=200)
    if action == "upload":
        return dict(files.upload(request.get("path"), request.get("data")), reply=200)
    if action == "download":
        return dict(files.download(request.get("path")), reply=200)
    return dict(files.list(request.get("path", "")), reply=200)


def answer_assist(driver, request):
    """complete, inspect and is_complete, from the driver where it knows how (else: no
    matches, not found, unknown)."""
    action, code = request["action"], request["code"]
    cursor = request.get("cursor_pos", len(code))
    ask = getattr(driver, action, None)
    if action == "is_complete":
        status, indent = ask(code) if ask else ("unknown", "")
        return {"status": status, "indent": indent}
    if action == "complete":
        matches, start, end = ask(code, cursor) if ask else ([], cursor, cursor)
        return {"matches": [sendable(m) for m in matches[:MAX_MATCHES]],
                "cursor_start": start, "cursor_end": end}
    found, text = ask(code, cursor) if ask else (False, "")
    return {"found": found, "data": [["text/plain", sendable(text)]] if found else []}
