"""The deployment examples in `etc/`: the supervisord program file, the systemd units and
the run scripts they start.

First what the files say (parsed, and every command's arguments accepted by the plugins'
own Options), then the run scripts as real processes (a manager, and an agent whose id
comes from a stand-in EC2 metadata service on 127.0.0.1), and, when supervisord is
installed, the program file under a real supervisord. Each run ends with SIGTERM, a clean
exit, and no container of the agent left.
"""

import configparser
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from sorna.agent import tap as agent_tap
from sorna.client.blocking import BlockingClient
from sorna.manager import tap as manager_tap
from sorna.testing.processes import (
    ManagerProcess, ProcessError, TwistdProcess, agent_containers, free_port, wait_for_agent,
    wait_until,
)
from tests.integration import HEARTBEAT, REPLY_TIMEOUT, ClusterTestCase
from tests.test_identity import FakeMetadataService

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ETC = os.path.join(ROOT, "etc")
SUPERVISORD_CONF = os.path.join(ETC, "supervisord", "sorna.conf")
UNITS = {name: os.path.join(ETC, "systemd", f"sorna-{name}.service")
         for name in ("manager", "agent")}
INSTALLED_AT = "/opt/sorna"  # where the examples expect Sorna
TAPS = {"sorna-manager": lambda: manager_tap.Options(environ={}),
        "sorna-agent": agent_tap.Options}


def script_path(command):
    """The repository's copy of the script a configured command runs."""
    script = command.split()[0]
    if not script.startswith(INSTALLED_AT + "/"):
        raise AssertionError(f"{command!r} does not run a script under {INSTALLED_AT}")
    return os.path.join(ROOT, os.path.relpath(script, INSTALLED_AT))


def dry_run(script, env=None):
    """The command a run script would exec with `env` (nothing else but PATH and the
    run's keys folder)."""
    done = subprocess.run(
        [script, "--dry-run"],
        env={"PATH": os.environ["PATH"], "SORNA_KEYS": os.environ["SORNA_KEYS"],
             **(env or {})},
        capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"{script} --dry-run failed: {done.stderr}")
    return done.stdout.splitlines()


def parse_environment(value):
    """supervisord's `environment=KEY="value",KEY2="value2"`."""
    pairs = re.findall(r'\s*([A-Za-z_][A-Za-z0-9_]*)="([^"]*)"\s*(?:,|$)', value)
    rebuilt = ",".join(f'{k}="{v}"' for k, v in pairs)
    if rebuilt != re.sub(r'\s*,\s*', ",", value.strip()):
        raise AssertionError(f"cannot read environment={value}")
    return dict(pairs)


def format_environment(env):
    return ",".join(f'{k}="{v}"' for k, v in env.items())


def read_supervisord_conf(path=SUPERVISORD_CONF):
    parser = configparser.ConfigParser(interpolation=None)
    with open(path) as f:
        parser.read_file(f)
    return parser


def read_unit(path):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    with open(path) as f:
        parser.read_file(f)
    return parser


def check_twistd_command(testcase, argv, plugin):
    """`argv` is `twistd -n --pidfile= [--logger L] PLUGIN OPTIONS...` with OPTIONS the
    plugin accepts; returns the parsed Options."""
    testcase.assertEqual(argv[:3], ["twistd", "-n", "--pidfile="])
    rest = argv[3:]
    if rest[:1] == ["--logger"]:
        rest = rest[2:]
    testcase.assertEqual(rest[0], plugin)
    options = TAPS[plugin]()
    options.parseOptions(rest[1:])
    return options


def twistd_shim(folder):
    """A folder with a `twistd` running this interpreter's Twisted, so that the run
    scripts start the code under test whatever else PATH holds."""
    bin_dir = os.path.join(folder, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    shim = os.path.join(bin_dir, "twistd")
    with open(shim, "w") as f:
        f.write(f'#!/bin/sh\nexec {sys.executable} -c '
                f'"from twisted.scripts.twistd import run; run()" "$@"\n')
    os.chmod(shim, 0o755)
    return bin_dir


class ConfigTests(SynchronousTestCase):
    def test_supervisord_programs(self):
        conf = read_supervisord_conf()
        programs = {s.split(":", 1)[1]: conf[s] for s in conf.sections()
                    if s.startswith("program:")}
        self.assertEqual(set(programs), {"sorna-manager", "sorna-agent"})
        self.assertFalse([s for s in conf.sections() if s.startswith("group:")],
                         "a group would stop the manager together with the agent")
        for name, program in programs.items():
            for key, value in (("stopasgroup", "true"), ("killasgroup", "true"),
                               ("stopsignal", "TERM"), ("autorestart", "true"),
                               ("redirect_stderr", "true")):
                self.assertEqual(program[key], value, f"{name}: {key}")
            self.assertTrue(program["stdout_logfile"].startswith("/var/log/sorna/"))
            script = script_path(program["command"])
            self.assertTrue(os.access(script, os.X_OK), f"{script} is not executable")
            env = parse_environment(program["environment"])
            options = check_twistd_command(self, dry_run(script, env), name)
            with open(script) as f:
                text = f.read()
            for variable in env:
                self.assertIn("${" + variable, text, f"{script} ignores {variable}")
            if name == "sorna-agent":
                self.assertEqual((options["manager-addr"], options["max-kernels"]),
                                 ("tcp://127.0.0.1:5001", 8))
        self.assertGreaterEqual(int(programs["sorna-agent"]["stopwaitsecs"]), 60)
        self.assertLess(int(programs["sorna-manager"]["priority"]),
                        int(programs["sorna-agent"]["priority"]),
                        "the agent must stop before the manager")

    def test_systemd_units(self):
        for name, path in UNITS.items():
            unit = read_unit(path)
            service = unit["Service"]
            self.assertEqual(service["Type"], "simple")
            self.assertEqual(service["KillMode"], "mixed")
            self.assertEqual(service["Restart"], "on-failure")
            self.assertEqual(service["EnvironmentFile"], "-/etc/default/sorna")
            self.assertGreaterEqual(int(service["TimeoutStopSec"]),
                                    60 if name == "agent" else 10)
            self.assertEqual(unit["Install"]["WantedBy"], "multi-user.target")
            check_twistd_command(self, dry_run(script_path(service["ExecStart"])),
                                 f"sorna-{name}")
        agent = read_unit(UNITS["agent"])["Unit"]
        self.assertIn("docker.service", agent["After"].split())
        self.assertIn("docker.service", agent["Requires"].split())

    def test_systemd_accepts_the_units(self):
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            raise SkipTest("systemd-analyze is not installed")
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        paths = []
        for path in UNITS.values():
            with open(path) as f:
                text = f.read().replace(INSTALLED_AT, ROOT)
            paths.append(os.path.join(folder, os.path.basename(path)))
            with open(paths[-1], "w") as f:
                f.write(text)
        done = subprocess.run([analyze, "verify", *paths], capture_output=True, text=True,
                              timeout=60)
        self.assertNotIn("Unknown", done.stderr)
        self.assertNotIn("not executable", done.stderr)

    def test_run_script_defaults_and_settings(self):
        manager = check_twistd_command(
            self, dry_run(os.path.join(ETC, "run-manager.sh")), "sorna-manager")
        self.assertEqual((manager["listen"], manager["port"], manager["redis"]),
                         ("*", 5001, None))
        self.assertEqual(manager["keys"].folder, os.environ["SORNA_KEYS"])
        manager = check_twistd_command(self, dry_run(os.path.join(ETC, "run-manager.sh"), {
            "SORNA_KEYS": "", "SORNA_INSECURE": "1"}), "sorna-manager")
        self.assertEqual((manager["keys"], manager["insecure"]), (None, 1))
        manager = check_twistd_command(self, dry_run(os.path.join(ETC, "run-manager.sh"), {
            "SORNA_PORT": "5101", "SORNA_LISTEN": "127.0.0.1", "SORNA_LOG_FORMAT": "json",
            "SORNA_REDIS": "redis://127.0.0.1:6379/2", "SORNA_HEARTBEAT_INTERVAL": "1.5",
            "SORNA_MANAGER_ARGS": "--create-timeout 20"}), "sorna-manager")
        self.assertEqual((manager["listen"], manager["port"], manager["redis"],
                          manager["heartbeat-interval"], manager["create-timeout"]),
                         ("127.0.0.1", 5101, "redis://127.0.0.1:6379/2", 1.5, 20.0))

        agent = check_twistd_command(
            self, dry_run(os.path.join(ETC, "run-agent.sh")), "sorna-agent")
        self.assertEqual((agent["manager-addr"], agent["port"], agent["max-kernels"],
                          agent["listen"], agent["agent-id"], agent["instance-metadata"]),
                         ("tcp://127.0.0.1:5001", 6001, 8, "*", None, "auto"))
        agent = check_twistd_command(self, dry_run(os.path.join(ETC, "run-agent.sh"), {
            "SORNA_MANAGER_ADDR": "tcp://10.0.0.5:5001", "SORNA_AGENT_PORT": "6101",
            "SORNA_MAX_KERNELS": "3", "SORNA_LISTEN": "10.0.0.6", "SORNA_AGENT_ID": "a-1",
            "SORNA_ADVERTISE_HOST": "agent1.example", "SORNA_INSTANCE_METADATA": "off",
            "SORNA_HEARTBEAT_INTERVAL": "1.5", "SORNA_IPC_ROOT": "/run/sorna",
            "SORNA_WARM_POOL": "python3=1,nodejs=1",
            "SORNA_AGENT_ARGS": "--docker-threads 2"}), "sorna-agent")
        self.assertEqual(
            (agent["manager-addr"], agent["port"], agent["max-kernels"], agent["listen"],
             agent["agent-id"], agent["advertise-host"], agent["instance-metadata"],
             agent["heartbeat-interval"], agent["ipc-root"], agent["docker-threads"],
             agent["warm-pool"]),
            ("tcp://10.0.0.5:5001", 6101, 3, "10.0.0.6", "a-1", "agent1.example", "off",
             1.5, "/run/sorna", 2, {"python3": 1, "nodejs": 1}))


class HostPackagesTests(SynchronousTestCase):
    """etc/install-host-packages.sh, which `make run`, `make test` and CI call."""

    script = os.path.join(ETC, "install-host-packages.sh")

    def run_script(self, *packages, user=None):
        # The script comes on stdin and the process starts in /: another user may not be
        # able to read the checkout.
        command = ["bash", "-s", "--", *packages]
        if user is not None:
            command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups",
                       *command]
        with open(self.script, "rb") as script:
            return subprocess.run(command, stdin=script, capture_output=True, text=True,
                                  timeout=60, cwd="/")

    def test_installed_packages_need_nothing(self):
        done = self.run_script("bash", "coreutils")  # every Debian machine has them
        self.assertEqual((done.returncode, done.stdout, done.stderr), (0, "", ""))

    def test_without_root_it_prints_the_command_that_installs_what_is_missing(self):
        if os.geteuid() != 0 or not shutil.which("setpriv"):
            raise SkipTest("needs root (to run the script as another user) and setpriv")
        done = self.run_script("bash", "sorna-no-such-package", user=65534)
        self.assertEqual(done.returncode, 1)
        self.assertIn("apt-get install -y sorna-no-such-package", done.stderr)
        self.assertNotIn("bash", done.stderr.split("\n", 1)[1])  # only what is missing


class ScriptProcess(TwistdProcess):
    """A run script from `etc/`, which execs twistd (so the pid is twistd's)."""

    def __init__(self, script, ready_pattern, env, **kw):
        self.name = os.path.basename(script).replace(".sh", "")
        super().__init__(**kw)
        self.script = script
        self.ready_pattern = ready_pattern
        self.env["PATH"] = twistd_shim(self.workdir) + os.pathsep + self.env["PATH"]
        self.env.update(env)

    def command(self):
        return [self.script]


class RunScriptTests(ClusterTestCase):
    def start_script(self, script, ready_pattern, env):
        process = ScriptProcess(os.path.join(ETC, script), ready_pattern, env)
        self.addCleanup(process.remove_workdir)
        self.addCleanup(self._stop_cleanly, process)
        return process.start()

    def test_manager_and_agent_from_the_run_scripts(self):
        instance_id = f"i-{uuid.uuid4().hex[:17]}"
        metadata = FakeMetadataService("v2", answers={
            "instance-id": instance_id, "instance-type": "t3.micro",
            "local-ipv4": "10.9.8.7", "placement/availability-zone": "test-zone-1a"})
        metadata.start(self)
        self.addCleanup(self._assert_no_containers, instance_id)

        port, agent_port = free_port(), free_port()
        manager_addr = f"tcp://127.0.0.1:{port}"
        manager = self.start_script("run-manager.sh", ManagerProcess.ready_pattern, {
            "SORNA_PORT": str(port), "SORNA_LISTEN": "127.0.0.1",
            "SORNA_HEARTBEAT_INTERVAL": str(HEARTBEAT)})
        agent_tmp = tempfile.mkdtemp(prefix="sorna-etc-agent-")
        self.addCleanup(shutil.rmtree, agent_tmp, True)
        agent = self.start_script(
            "run-agent.sh", re.compile(rf"sorna-agent {instance_id} ready on (\S+)"), {
                "SORNA_MANAGER_ADDR": manager_addr, "SORNA_AGENT_PORT": str(agent_port),
                "SORNA_LISTEN": "127.0.0.1", "SORNA_MAX_KERNELS": "2",
                "SORNA_HEARTBEAT_INTERVAL": str(HEARTBEAT),
                "SORNA_INSTANCE_METADATA": metadata.url, "TMPDIR": agent_tmp})

        entry = wait_for_agent(manager_addr, instance_id, timeout=20)
        self.assertEqual(entry["addr"], f"tcp://127.0.0.1:{agent_port}",
                         "a --listen address beats the instance's local-ipv4")
        self.assertEqual((entry["max_kernels"], entry["instance"]),
                         (2, {"id": instance_id, "type": "t3.micro",
                              "local_ipv4": "10.9.8.7", "zone": "test-zone-1a"}))
        self.assertIn(f"agent id {instance_id} (the instance id)", agent.log())

        client = BlockingClient(manager_addr, timeout=REPLY_TIMEOUT,
                                execute_timeout=REPLY_TIMEOUT)
        self.addCleanup(client.close)
        kernel = client.create("python3")
        self.assertEqual(client.execute(kernel["kernel_id"], "print(6*7)")["stdout"], "42\n")
        # The default warm pool (python3=2) takes the one slot left.
        wait_until(lambda: len(self.docker_containers(instance_id)) == 2, 30,
                   "the warm pool filling the free slot")

        # SIGTERM with a kernel running: the agent destroys it, then both exit cleanly
        agent.stop(timeout=60)
        self.assertTrue(agent.stopped_cleanly(), agent.log_tail())
        self.assertEqual(self.docker_containers(instance_id), [])
        manager.stop()
        self.assertTrue(manager.stopped_cleanly(), manager.log_tail())

    def docker_containers(self, agent_id):
        return agent_containers(self.docker, agent_id)


class SupervisordTests(ClusterTestCase):
    """The program file under a real supervisord, with ports, paths and logs moved into a
    temporary folder. supervisord is not part of the CI machine's packages: without it
    this skips (and fails under SORNA_REQUIRE_DOCKER=1, like a missing Docker)."""

    def setUp(self):
        super().setUp()
        self.supervisord = shutil.which("supervisord")
        if self.supervisord is None:
            reason = "supervisord is not installed (apt-get install supervisor)"
            if os.environ.get("SORNA_REQUIRE_DOCKER") == "1":
                raise AssertionError(reason + " (SORNA_REQUIRE_DOCKER=1)")
            raise SkipTest(reason)
        self.folder = tempfile.mkdtemp(prefix="sorna-supervisord-")
        self.addCleanup(shutil.rmtree, self.folder, True)

    def write_conf(self, manager_port, agent_port, agent_id):
        conf = read_supervisord_conf()
        for name, env in (
                ("sorna-manager", {"SORNA_PORT": str(manager_port),
                                   "SORNA_HEARTBEAT_INTERVAL": str(HEARTBEAT)}),
                ("sorna-agent", {"SORNA_MANAGER_ADDR": f"tcp://127.0.0.1:{manager_port}",
                                 "SORNA_AGENT_PORT": str(agent_port),
                                 "SORNA_AGENT_ID": agent_id, "SORNA_MAX_KERNELS": "2",
                                 "SORNA_HEARTBEAT_INTERVAL": str(HEARTBEAT),
                                 "TMPDIR": self.folder})):
            program = conf[f"program:{name}"]
            program["command"] = script_path(program["command"])
            program["environment"] = format_environment(dict(
                parse_environment(program["environment"]), SORNA_LISTEN="127.0.0.1",
                SORNA_INSTANCE_METADATA="off", **env))
            program["stdout_logfile"] = os.path.join(self.folder, f"{name}.log")
            program["stopwaitsecs"] = "60"
        conf["supervisord"] = {
            "nodaemon": "true", "logfile": os.path.join(self.folder, "supervisord.log"),
            "pidfile": os.path.join(self.folder, "supervisord.pid"),
            "childlogdir": self.folder, "loglevel": "info"}
        conf["unix_http_server"] = {"file": os.path.join(self.folder, "supervisor.sock")}
        conf["rpcinterface:supervisor"] = {
            "supervisor.rpcinterface_factory":
                "supervisor.rpcinterface:make_main_rpcinterface"}
        conf["supervisorctl"] = {
            "serverurl": "unix://" + os.path.join(self.folder, "supervisor.sock")}
        path = os.path.join(self.folder, "supervisord.conf")
        with open(path, "w") as f:
            conf.write(f)
        return path

    def log(self, name):
        try:
            with open(os.path.join(self.folder, f"{name}.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_for_line(self, name, pattern, timeout=30):
        try:
            return wait_until(lambda: re.search(pattern, self.log(name)), timeout,
                              f"{name} logging {pattern!r}")
        except ProcessError as e:
            self.fail(f"{e}; supervisord's log:\n{self.log('supervisord')}\n"
                      f"{name}'s log:\n{self.log(name)}")

    def children(self, pid):
        """Pids whose parent is `pid`."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
        return found

    @staticmethod
    def running(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def stop(self, process, programs):
        """SIGTERM supervisord and wait; SIGKILL it and its programs if it hangs."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        for pid in programs:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def test_programs_under_supervisord(self):
        manager_port, agent_port = free_port(), free_port()
        agent_id = f"etc-{uuid.uuid4().hex[:12]}"
        self.addCleanup(self._assert_no_containers, agent_id)
        conf = self.write_conf(manager_port, agent_port, agent_id)
        env = dict(os.environ, PATH=twistd_shim(self.folder) + os.pathsep
                   + os.environ["PATH"])
        process = subprocess.Popen(
            [self.supervisord, "-c", conf], env=env, cwd=self.folder,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        programs = []
        self.addCleanup(self.stop, process, programs)

        self.wait_for_line("sorna-manager", r"sorna-manager ready on")
        self.wait_for_line("sorna-agent", rf"sorna-agent {agent_id} ready on")
        programs.extend(self.children(process.pid))
        self.assertEqual(len(programs), 2, "supervisord runs two programs")
        manager_addr = f"tcp://127.0.0.1:{manager_port}"
        wait_for_agent(manager_addr, agent_id, timeout=20)

        client = BlockingClient(manager_addr, timeout=REPLY_TIMEOUT,
                                execute_timeout=REPLY_TIMEOUT)
        self.addCleanup(client.close)
        kernel = client.create("python3")
        self.assertEqual(client.execute(kernel["kernel_id"], "print(6*7)")["stdout"], "42\n")

        self.stop(process, [])
        self.assertEqual(process.returncode, 0, self.log("supervisord"))
        for pid in programs:
            self.assertFalse(self.running(pid), f"program {pid} outlived supervisord")
        for name in ("sorna-agent", "sorna-manager"):
            log = self.log(name)
            self.assertIn("Server Shut Down.", log, f"{name} did not stop cleanly:\n{log}")
            self.assertNotIn("Traceback", log)
        self.assertIn(f"sorna-agent {agent_id} stopped", self.log("sorna-agent"))
        supervisord_log = self.log("supervisord")
        self.assertLess(supervisord_log.index("stopped: sorna-agent"),
                        supervisord_log.index("stopped: sorna-manager"),
                        "the agent must stop first")
        self.assertNotIn("SIGKILL", supervisord_log)
