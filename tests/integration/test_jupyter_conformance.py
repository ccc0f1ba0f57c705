"""The Jupyter project's kernel conformance suite (`jupyter_kernel_test`) through the
gateway, driven by jupyter_server's own gateway client (GatewayKernelManager and
GatewayKernelClient, as nbclient and papermill get them), with a local ipykernel run
through the same tests and samples as the control.

Each language's samples cover what Sorna serves for it; a test of the suite whose
feature a language does not have is left out of its class (`not_served`, rather than
skipped: a skip fails here), as docs/GATEWAY.md states too."""

import os
import copy
import queue
import select
import unittest

import jupyter_kernel_test
from jupyter_client.utils import run_sync
from twisted.python import log
from twisted.trial.unittest import SynchronousTestCase

from sorna import language_spec
from sorna.gateway.languages import describe
from sorna.testing.processes import (
    AgentProcess, GatewayProcess, ManagerProcess, remove_agent_containers, wait_for_agent,
)
from tests.support import require_docker, require_image

# Parts of a test the suite skips on its own: ipykernel, the control, fails the history
# `range` part as the suite asks it (its sessions are numbered otherwise), so the
# samples declare tail and search only, as ipykernel's do; Sorna's range is tested in
# tests/test_gateway.py.
ALLOWED_SKIPS = ("History range not supported",)


def conformance_case(name, samples, set_up=None, tear_down=None):
    """A TestCase with jupyter_kernel_test's tests, less the language's `not_served`,
    and `samples`."""
    left_out = samples.get("not_served", ())
    attrs = {key: value for key, value in vars(jupyter_kernel_test.KernelTests).items()
             if not key.startswith("test_") or key not in left_out}
    attrs.update(samples)
    if set_up is not None:
        attrs["setUpClass"] = classmethod(set_up)
        attrs["tearDownClass"] = classmethod(tear_down)
    return type(name, (unittest.TestCase,), attrs)


HISTORY = {"code_history_pattern": "1?2*", "supported_history_operations": ("tail", "search")}
# The suite's tests that need a sample a language may not have; a language whose folder
# has no such sample does not serve the feature, and the test is left out of its class.
NEEDS = {"test_execute_result": "code_execute_result", "test_history": "code_execute_result",
         "test_display_data": "code_display_data", "test_clear_output": "code_clear_output",
         "test_pager": "code_page_something", "test_is_complete": "complete_code_samples",
         "test_completion": "completion_samples", "test_inspect": "code_inspect_sample"}


def samples_of(lang):
    """jupyter_kernel_test's samples for `lang`, from its folder ([samples.jupyter])."""
    about = describe(lang)
    given = copy.deepcopy(about.samples["jupyter"])
    samples = {"kernel_name": lang, "language_name": about.jupyter.language,
               "file_extension": about.jupyter.extension, **given,
               "not_served": tuple(test for test, sample in NEEDS.items()
                                   if sample not in given)}
    for sample in samples.get("completion_samples", ()):
        sample["matches"] = set(sample["matches"])
    if "code_execute_result" in given:  # a cell's value: it is in the history too
        samples.update({**HISTORY, **given})
    return samples


PYTHON3 = samples_of("python3")
LANGUAGES = {lang: samples_of(lang) for lang in language_spec.folders() if lang != "python3"}


class BlockingGatewayClient:
    """jupyter_server's GatewayKernelClient (asyncio) with the blocking calls that
    jupyter_kernel_test makes of a client."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get_shell_msg(self, *args, **kw):
        return run_sync(self._client.get_shell_msg)(*args, **kw)

    def get_iopub_msg(self, *args, **kw):
        return run_sync(self._client.get_iopub_msg)(*args, **kw)

    @property
    def iopub_channel(self):
        return PatientChannel(self._client.iopub_channel, self._client.channel_socket)


class PatientChannel:
    """A GatewayKernelClient channel whose `get_msg` does not give up on a message that
    has reached the client but not its queue yet. jupyter_kernel_test reads iopub with
    0.1 s timeouts, made for ZMQ, where what was sent is already in the socket; the
    gateway client's queues are filled by a thread reading the WebSocket, while
    `get_msg` spins on the GIL, so on a loaded machine the thread can be late by more
    than that. After such a timeout this one waits longer while the WebSocket still
    holds unread data, and once briefly for a frame being decoded; a message that was
    never sent is still missed, only later."""

    PATIENCE = 5.0  # seconds, while unread data waits in the socket
    GRACE = 0.2  # seconds, for a frame the reading thread has but has not queued

    def __init__(self, channel, socket):
        self._channel = channel
        self._socket = socket

    def __getattr__(self, name):
        return getattr(self._channel, name)

    async def get_msg(self, timeout=None, **kw):
        try:
            return await self._channel.get_msg(timeout=timeout, **kw)
        except queue.Empty:
            wait = self.PATIENCE if self._unread() else self.GRACE
            return await self._channel.get_msg(timeout=wait, **kw)

    def _unread(self):
        sock = getattr(self._socket, "sock", None)
        try:
            return bool(sock is not None and select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return False


def _through_the_gateway(cls):
    """A cluster (below), and the kernel made through jupyter_server's gateway
    client."""
    from jupyter_server.gateway.managers import GatewayKernelManager

    _cluster(cls)
    try:
        cls.km = GatewayKernelManager()
        run_sync(cls.km.start_kernel)(kernel_name=cls.kernel_name)
        client = cls.km.client()
        run_sync(client.start_channels)()
        cls.kc = BlockingGatewayClient(client)
    except BaseException:
        _stop(cls)
        raise


def _cluster(cls):
    """A manager, an agent and a gateway as real processes, and jupyter_server's
    gateway client pointed at the gateway with a plain token."""
    from jupyter_server.gateway.gateway_client import GatewayClient

    docker = require_docker()
    require_image(docker, f"sorna/kernel-{cls.kernel_name}")
    cls.docker = docker
    cls.processes = []
    try:
        manager = ManagerProcess(heartbeat_interval=0.5).start()
        cls.processes.append(manager)
        agent = AgentProcess(manager.addr, agent_id=f"conformance-{cls.kernel_name}",
                             max_kernels=2, heartbeat_interval=0.5)
        cls.processes.append(agent)
        agent.start()
        wait_for_agent(manager.addr, agent.agent_id, timeout=20)
        cls.agent = agent
        gateway = GatewayProcess(manager.addr).start()
        cls.processes.append(gateway)
        token = gateway.add_token("notebooks")
        GatewayClient.clear_instance()
        GatewayClient.instance(url=gateway.url, auth_token=token, request_timeout=30.0)
    except BaseException:
        _stop(cls)
        raise


def _stop(cls):
    from jupyter_server.gateway.gateway_client import GatewayClient

    if getattr(cls, "kc", None) is not None:
        cls.kc.stop_channels()
        run_sync(cls.km.shutdown_kernel)()
        cls.kc = None
    for process in reversed(cls.processes):
        process.stop()
        process.remove_workdir()
    if getattr(cls, "agent", None) is not None:
        remove_agent_containers(cls.docker, cls.agent.agent_id)
    GatewayClient.clear_instance()
    cls.docker.close()


class ConformanceTests(SynchronousTestCase):
    """Each language's run of the suite is one test here: jupyter_kernel_test's tests
    share one kernel per class (setUpClass), which the stdlib's runner provides."""

    def assertConforms(self, case):
        result = unittest.TestResult()
        unittest.defaultTestLoader.loadTestsFromTestCase(case).run(result)
        problems = [f"{test}: {trace.strip().splitlines()[-1]}"
                    for test, trace in result.failures + result.errors]
        problems += [f"{test}: skipped ({why})" for test, why in result.skipped
                     if why not in ALLOWED_SKIPS]
        log.msg(f"jupyter_kernel_test, {case.__name__}: {result.testsRun} run, "
                f"{len(problems)} failed or skipped")
        self.assertEqual(problems, [], "\n".join(problems))
        self.assertGreater(result.testsRun, 0)

    def test_python3_through_the_gateway(self):
        self.assertConforms(conformance_case("Python3ThroughTheGateway", PYTHON3,
                                             _through_the_gateway, _stop))

    def test_every_other_language_through_the_gateway(self):
        failed = []
        for lang, samples in LANGUAGES.items():
            try:
                self.assertConforms(conformance_case(f"{lang.title()}ThroughTheGateway",
                                                     samples, _through_the_gateway,
                                                     _stop))
            except self.failureException as e:
                failed.append(f"{lang}:\n{e}")
        self.assertEqual(failed, [], "\n".join(failed))

    def test_python3_ipykernel_control(self):
        """The same tests and samples against a local ipykernel."""
        self.assertConforms(conformance_case("Python3IpykernelControl", PYTHON3))


NOTEBOOK = [
    "x = 6", "x * 7", "print('hi')\nx", "'%.2f' % 3.14159",
    "class H:\n    def _repr_html_(self):\n        return '<b>h</b>'\ndisplay(H())", "H()",
    "import sys\nprint('err', file=sys.stderr)", "1/0", "None",
    "[n * n for n in range(4)]", "def f(a, b=2):\n    return a + b\nf(1)",
    "from IPython.display import HTML, Markdown, display\n"
    "display(HTML('<b>h</b>'), Markdown('*m*'))", "!echo from a shell",
]


def run_notebook(cells, km=None):
    """The notebook of `cells` as nbclient executes it (errors allowed), on `km` or a
    local ipykernel."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(code) for code in cells]
    NotebookClient(notebook, km=km, kernel_name="python3", allow_errors=True,
                   timeout=60).execute()
    return notebook


def outputs_of(notebook):
    """Each cell's outputs as a reader sees them: a rich output by its rich types (its
    text/plain may hold an address), an error by its name and value."""
    cells = []
    for cell in notebook.cells:
        seen = []
        for output in cell.outputs:
            if output.output_type == "stream":
                # ipykernel runs !commands in a pseudo-terminal: its lines end in \r\n
                seen.append(("stream", output.name, output.text.replace("\r\n", "\n")))
            elif output.output_type == "error":
                seen.append(("error", output.ename, output.evalue))
            else:
                rich = {k: v for k, v in output.data.items() if k != "text/plain"}
                seen.append((output.output_type, rich or dict(output.data),
                             output.get("execution_count")))
        cells.append(seen)
    return cells


class NotebookTests(SynchronousTestCase):
    def test_a_notebook_through_the_gateway_gives_ipykernels_outputs(self):
        from jupyter_server.gateway.managers import GatewayKernelManager

        class Gateway:
            kernel_name = "python3"

        _cluster(Gateway)
        try:
            ours = outputs_of(run_notebook(NOTEBOOK, GatewayKernelManager()))
        finally:
            _stop(Gateway)
        theirs = outputs_of(run_notebook(NOTEBOOK))
        for number, (mine, control) in enumerate(zip(ours, theirs), 1):
            self.assertEqual(mine, control, f"cell {number}: {NOTEBOOK[number - 1]!r}")

    def test_papermill_runs_a_parameterized_notebook_through_the_gateway(self):
        import nbformat
        import papermill
        from jupyter_server.gateway.managers import GatewayKernelManager

        folder = self.mktemp()
        os.makedirs(folder)
        source, executed = (os.path.join(folder, name) for name in ("in.ipynb",
                                                                    "out.ipynb"))
        notebook = nbformat.v4.new_notebook()
        notebook.cells = [nbformat.v4.new_code_cell("x = 1"),
                          nbformat.v4.new_code_cell("print(x * 2)\nx + 1")]
        notebook.cells[0].metadata["tags"] = ["parameters"]
        nbformat.write(notebook, source)

        class Gateway:
            kernel_name = "python3"

        _cluster(Gateway)
        try:
            papermill.execute_notebook(source, executed, parameters={"x": 21},
                                       kernel_name="python3", language="python",
                                       progress_bar=False,
                                       kernel_manager_class=GatewayKernelManager)
        finally:
            _stop(Gateway)
        cells = nbformat.read(executed, as_version=4).cells
        [injected] = [c for c in cells if "injected-parameters" in c.metadata.get("tags", [])]
        self.assertIn("x = 21", injected.source)
        [stream, result] = cells[-1].outputs
        self.assertEqual((stream.text, result.data["text/plain"]), ("42\n", "22"))
