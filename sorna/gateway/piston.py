"""Piston's v2 API (`/api/v2/runtimes`, `/api/v2/execute`; also under `/api/v2/piston/`)
over Sorna kernels: each execute gets a fresh kernel (a warm one where the agent keeps a
pool) that is destroyed after it, and runs its files as a program (the REPL protocol's
`program` execute: the first file is the entry point, `args` its arguments, its exit
status the answer's `code`). `stdin` is the program's whole standard input, given at its
start, then end-of-file. A token runs at most its `runs` quota of
executes at once."""

import base64
import binascii
import collections

from sorna.defer import deferred
from sorna.gateway.languages import describe, piston_name, runtime
from sorna.gateway.tenants import Quotas, holding
from sorna.gateway.web import HttpError, Route, json_body
from sorna.ids import new_trace
from sorna.proto.actions import MAX_CODE_LENGTH, MAX_PROGRAM_ARGS
from sorna.proto.errors import SornaError

# The largest timeouts (ms) and memory limit (bytes) a request may name; the kernel's own
# limits still apply.
MAX_TIMEOUT_MS = 86_400_000
MAX_MEMORY = 1 << 50


def _stage(stdout="", stderr="", code=0, signal=None, message=None, status=None,
           output=None):
    """A Piston stage; `output` is stdout and stderr as they came (in that order
    when not given)."""
    return {"stdout": stdout, "stderr": stderr,
            "output": stdout + stderr if output is None else output, "code": code,
            "signal": signal, "message": message, "status": status}


def _field(body, name, kind, default, what, most=None):
    value = body.get(name, default)
    if value is None:
        return default
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise HttpError(400, f"{name} must be a number", "bad-field")
        if value < 0 and value != -1:
            raise HttpError(400, f"{name} must be non-negative", "bad-field")
        if most is not None and value > most:
            raise HttpError(400, f"{name} must be at most {most}", "bad-field")
        return value
    if not isinstance(value, kind):
        raise HttpError(400, f"{name} is required as {what}", "bad-field")
    return value


def _content(file, index):
    if not isinstance(file, dict) or not isinstance(file.get("content"), str):
        raise HttpError(400, f"files[{index}].content is required as a string", "bad-field")
    encoding = file.get("encoding") or "utf8"
    content = file["content"]
    try:
        if encoding == "base64":
            return base64.b64decode(content, validate=True)
        if encoding == "hex":
            return binascii.unhexlify(content)
    except (binascii.Error, ValueError):
        raise HttpError(400, f"files[{index}].content is not valid {encoding}", "bad-field")
    if encoding != "utf8":
        raise HttpError(400, f"files[{index}].encoding must be utf8, base64 or hex",
                        "bad-field")
    return content


class PistonApi:
    def __init__(self, client, clock, kernels, quotas=Quotas()):
        self.client = client
        self.clock = clock
        self.kernels = kernels  # for the languages live agents serve
        self.quotas = quotas
        self.running = collections.Counter()  # token name -> executes under way

    def routes(self):
        routes = []
        for base in (r"/api/v2", r"/api/v2/piston"):
            routes += [Route("GET", base + r"/runtimes", self.runtimes),
                       Route("POST", base + r"/execute", self.execute)]
        return routes

    @deferred
    async def runtimes(self, request, tenant=None):
        return 200, [runtime(lang, self.kernels.version(lang), self.kernels.packages(lang))
                     for lang in await self.kernels.langs()]

    async def _resolve(self, language, version):
        for lang in await self.kernels.langs():
            about = runtime(lang, self.kernels.version(lang))
            if language in (about["language"], lang, *about["aliases"]):
                if version in ("*", about["version"]) or about["version"].startswith(
                        version.rstrip(".x*") + "."):
                    return lang
        raise HttpError(400, f"{language[:64]}-{version[:32]} runtime is unknown",
                        "unknown-runtime")

    @deferred
    async def execute(self, request, tenant):
        kind = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise HttpError(415, "requests must be of type application/json",
                            "unsupported-media-type")
        body = json_body(request)
        language = _field(body, "language", str, None, "a string")
        version = _field(body, "version", str, None, "a string")
        if language is None:
            raise HttpError(400, "language is required as a string", "bad-field")
        if version is None:
            raise HttpError(400, "version is required as a string", "bad-field")
        files = body.get("files")
        if not isinstance(files, list) or not files:
            raise HttpError(400, "files is required as an array", "bad-field")
        contents = [_content(f, i) for i, f in enumerate(files)]
        if not isinstance(contents[0], str):
            raise HttpError(400, "files[0], the program, must be utf8 text", "bad-field")
        stdin = _field(body, "stdin", str, "", "a string")
        if len(stdin) > MAX_CODE_LENGTH:
            raise HttpError(400, f"stdin is {len(stdin)} characters long; the most is "
                                 f"{MAX_CODE_LENGTH}", "bad-field")
        args = _field(body, "args", list, [], "an array")
        if len(args) > MAX_PROGRAM_ARGS or not all(
                isinstance(a, str) and "\x00" not in a for a in args):
            raise HttpError(400, f"args must be an array of at most {MAX_PROGRAM_ARGS} "
                                 f"strings without NUL characters", "bad-field")
        limits = {}
        run_timeout = _field(body, "run_timeout", float, 0, "a number", MAX_TIMEOUT_MS)
        compile_timeout = _field(body, "compile_timeout", float, 0, "a number",
                                 MAX_TIMEOUT_MS)
        memory = _field(body, "run_memory_limit", float, 0, "a number", MAX_MEMORY)
        lang = await self._resolve(language, version)
        if run_timeout > 0:  # Sorna times the compilation and the run together
            compiled = describe(lang).compiled
            limits["exec_timeout"] = max(0.1, (run_timeout + (
                compile_timeout if compiled and compile_timeout > 0 else 0)) / 1000)
        if memory > 0:
            limits["memory_mb"] = max(16, int(memory) >> 20)
        self.quotas.check(tenant, "runs", self.running[tenant.name])
        with holding(self.running, tenant.name):
            return 200, await self._run(lang, files, contents, stdin, args, limits or None)

    async def _run(self, lang, files, contents, stdin, args, limits):
        trace = new_trace("gateway")
        kernel = await self.client.create(lang, limits=limits, trace=trace)
        kernel_id = kernel["kernel_id"]
        try:
            for index, (file, content) in enumerate(zip(files[1:], contents[1:]), 1):
                name = file.get("name") or f"file{index}.code"
                data = content.encode() if isinstance(content, str) else content
                await self.client.upload(kernel_id, name, data)
            program = {"args": args}
            if isinstance(files[0].get("name"), str) and files[0]["name"]:
                program["name"] = files[0]["name"]
            return self._answer(lang, await self._feed(kernel_id, contents[0], program,
                                                       stdin, trace))
        except SornaError as e:
            return self._answer(lang, ([], [], e))
        finally:
            try:
                await self.client.destroy(kernel_id, trace=trace)
            except SornaError:
                pass

    async def _feed(self, kernel_id, code, program, stdin, trace):
        """Run `code` as a program whose whole standard input is `stdin` (given at its
        start, then end-of-file, as Piston gives it); return (outputs in order,
        exceptions, None)."""
        reply = await self.client.run_code(kernel_id, code, program=dict(
            program, stdin=stdin), ordered=True, trace=trace)
        result = reply.get("result") or {}
        return result.get("outputs") or [], result.get("exceptions") or [], None

    def _answer(self, lang, outcome):
        outputs, exceptions, error = outcome
        texts = [(kind, data) for kind, data in outputs if kind in ("stdout", "stderr")]
        stdout = "".join(data for kind, data in texts if kind == "stdout")
        stderr = "".join(data for kind, data in texts if kind == "stderr")
        output = "".join(data for _, data in texts)
        answer = {"language": piston_name(lang),
                  "version": runtime(lang, self.kernels.version(lang))["version"]}
        if error is not None:
            status = "TO" if error.error == "exec-timeout" else "XX"
            run = _stage(stdout, stderr, None, "SIGKILL" if status == "TO" else None,
                         error.cause, status, output)
        else:
            code, signal, message, status = 0, None, None, None
            for name, args, _, trace in exceptions:
                if name == "CompileError":
                    failed = _stage("", trace, 1, None, "compilation failed", "RE")
                    answer["compile"] = answer["run"] = failed
                    return answer
                if name == "ExitStatus" and args and isinstance(args[0], int):
                    code, status = args[0], "RE"
                elif name == "Signal":
                    code, signal, status = None, str(args[0]) if args else "SIGKILL", "SG"
                else:
                    told = trace or f"{name}: {', '.join(map(str, args))}\n"
                    stderr, output = stderr + told, output + told
                    code, status = 1, "RE"
            run = _stage(stdout, stderr, code, signal, message, status, output)
        if describe(lang).compiled:
            answer["compile"] = _stage()
        answer["run"] = run
        return answer
