"""The original deployment's commands: `python3 -m sorna.manager.server`,
`python3 -m sorna.agent.server --manager-addr tcp://HOST:5001 --max-kernels 15` and
`python3 -m sorna.gateway.server`, as real processes: a cluster that creates and runs a
kernel, SIGTERM that stops it with no container left, the plugins' options in `--help`,
and a wrong setting's message and exit status."""

import re
import subprocess
import sys

from sorna.testing.gateway import Http
from sorna.testing.processes import use_test_keys
from tests.integration import ClusterTestCase


def options_of(help_text):
    """The option names a usage text lists (`--max-kernels`, ...)."""
    return set(re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", help_text, re.MULTILINE))


def run(*argv):
    use_test_keys()
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


class ModuleCommandTests(ClusterTestCase):
    def test_the_original_commands_run_a_cluster_and_stop_on_sigterm(self):
        manager = self.start_manager(module=True)
        agent = self.start_agent(manager, max_kernels=15, module=True, json_log=True)
        self.assertEqual(manager.command()[1:3], ["-m", "sorna.manager.server"])
        command = agent.command()
        self.assertEqual(command[1:5], ["-m", "sorna.agent.server", "--manager-addr",
                                        manager.addr])
        self.assertEqual(command[command.index("--max-kernels") + 1], "15")
        self.assertIn('"log_text"', agent.log(), "SORNA_LOG_FORMAT=json is honoured")
        client = self.client(manager)
        kernel = client.create("python3")
        self.assertEqual(client.execute(kernel["kernel_id"], "print(6 * 7)")["stdout"],
                         "42\n")
        gateway = self.start_gateway(manager, module=True)
        status, result, _ = Http(gateway.url, gateway.token).post("/api/v2/execute", {
            "language": "python", "version": "*", "files": [{"content": "print(1)"}]})
        self.assertEqual((status, result["run"]["stdout"]), (200, "1\n"))
        for process in (gateway, agent, manager):
            process.stop()
            self.assertTrue(process.stopped_cleanly(), process.log_tail())
        self.assertEqual(self.containers_of(agent), [])

    def test_help_lists_every_option_of_the_twistd_plugin(self):
        for part in ("manager", "agent", "gateway"):
            module = run("-m", f"sorna.{part}.server", "--help")
            plugin = run("-c", "from twisted.scripts.twistd import run; run()",
                         f"sorna-{part}", "--help")
            self.assertEqual(module.returncode, 0, module.stderr)
            self.assertEqual(options_of(module.stdout), options_of(plugin.stdout))
            self.assertIn("--manager-addr" if part != "manager" else "--redis",
                          module.stdout)

    def test_a_wrong_setting_exits_non_zero_with_the_plugins_message(self):
        module = run("-m", "sorna.agent.server", "--manager-addr", "tcp://127.0.0.1:1",
                     "--max-kernels", "0")
        plugin = run("-c", "from twisted.scripts.twistd import run; run()", "-n",
                     "sorna-agent", "--manager-addr", "tcp://127.0.0.1:1",
                     "--max-kernels", "0")
        self.assertEqual((module.returncode, plugin.returncode), (1, 1))
        message = module.stdout.strip().splitlines()[-1]
        self.assertTrue(message.startswith("python3 -m sorna.agent.server"), message)
        self.assertEqual(message.partition(": ")[2],
                         plugin.stdout.strip().splitlines()[-1].partition(": ")[2])
        self.assertIn("--max-kernels", message)
