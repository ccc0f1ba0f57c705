"""CurveZMQ with real processes: who gets in, who does not, and how fast they are told.

Each test makes its own keys folder (`sorna keys init`), so that it can add, copy and
revoke keys without touching the run's."""

import os
import shutil
import signal
import time

import msgpack
import zmq
import zmq.auth

from sorna import keys
from sorna.client.blocking import BlockingClient
from sorna.curve import ClientCurve
from sorna.proto.errors import Forbidden
from sorna.testing.processes import ManagerProcess, wait_until
from tests.integration import ClusterTestCase
from tests.integration.test_cli import sorna

FAST = 5.0  # a refused key must be told well within the call's timeout (30 s)


class SecureClusterTests(ClusterTestCase):
    def setUp(self):
        super().setUp()
        self.folder = os.path.join(os.path.abspath(self.mktemp()), "keys")
        keys.init(self.folder)
        own = ["--keys", self.folder]
        self.manager, self.agent = self.start_cluster(
            manager_kw={"extra_args": own}, agent_kw={"extra_args": own, "wait": False})
        self.wait_for(self.agent.agent_id)

    def client(self, keys_=None, timeout=30.0, **kw):
        client = BlockingClient(self.manager.addr, timeout=timeout, execute_timeout=timeout,
                                keys=keys_ or self.folder, **kw)
        self.addCleanup(client.close)
        return client

    def wait_for(self, agent_id):
        client = self.client()
        return wait_until(lambda: any(a["agent_id"] == agent_id
                                      for a in client.status()["agents"]),
                          20, f"agent {agent_id} registering")

    def stranger(self):
        """A key pair no cluster knows, that knows the manager's public key."""
        return ClientCurve(*zmq.curve_keypair(), keys.manager_key(self.folder))

    def assertRefusedFast(self, call, error="key-refused"):
        started = time.monotonic()
        with self.assertRaises(Forbidden) as caught:
            call()
        self.assertLess(time.monotonic() - started, FAST)
        self.assertEqual(caught.exception.error, error, caught.exception.cause)
        return caught.exception

    def test_a_client_with_the_clusters_keys_works_end_to_end(self):
        client = self.client()
        self.assertEqual(client.status()["security"], "curve")
        kernel = client.create("python3")
        self.assertEqual(kernel["agent_key"],
                         keys.own_pair(self.folder, "agents")[0].decode())
        client.upload(kernel["kernel_id"], "in.txt", b"x" * 4096)
        result = client.execute(kernel["kernel_id"], "print(len(open('in.txt').read()))")
        self.assertEqual(result["stdout"], "4096\n")
        client.destroy(kernel["kernel_id"])
        self.assertIn("CurveZMQ, keys of", self.manager.log())

    def test_an_unknown_client_gets_nothing_done(self):
        kernel = self.client().create("python3")
        self.destroy_later(self.client(), kernel["kernel_id"])
        stranger = self.client(self.stranger())
        e = self.assertRefusedFast(lambda: stranger.create("python3"))
        self.assertIn("refused this client's key", e.cause)
        # at the agent too, with the agent's public key (it is public)
        sock = self.zmq.socket(zmq.DEALER)
        sock.linger = 0
        curve = self.stranger().towards(kernel["agent_key"].encode())
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = (
            curve.server, curve.public, curve.secret)
        sock.connect(kernel["kernel_addr"])
        self.addCleanup(sock.close, 0)
        sock.send_multipart([b"", msgpack.packb({"action": "execute", "id": 1,
                                                 "kernel_id": kernel["kernel_id"],
                                                 "code": "open('pwned', 'w')"})])
        self.assertFalse(sock.poll(2000), "an unknown key got an answer from the agent")
        self.assertEqual(len(self.containers_of(self.agent)), 1)
        files = self.client().list_files(kernel["kernel_id"])
        self.assertNotIn("pwned", [f["name"] for f in files])
        # and the CLI says what is wrong
        other = os.path.join(os.path.abspath(self.mktemp()), "other")
        keys.init(other)
        done = sorna("--keys", other, "status", manager=self.manager.addr)
        self.assertEqual(done.returncode, 3, done.stderr)
        self.assertIn("the CurveZMQ handshake with", done.stderr)

    def test_a_rogue_agent_never_appears_and_never_gets_a_kernel(self):
        # one with its own keys (and the manager's public one), one with a client's key
        rogue = os.path.join(os.path.abspath(self.mktemp()), "rogue")
        keys.init(rogue)
        shutil.copy(os.path.join(self.folder, "manager.key"), rogue)
        thief = os.path.join(os.path.abspath(self.mktemp()), "thief")
        os.makedirs(os.path.join(thief, "agents"))
        shutil.copy(os.path.join(self.folder, "manager.key"), thief)
        shutil.copy(os.path.join(self.folder, "clients", "client.key_secret"),
                    os.path.join(thief, "agents", "agent.key_secret"))
        impostors = [self.start_agent(self.manager, wait=False, extra_args=["--keys", folder])
                     for folder in (rogue, thief)]
        impostors[0].wait_for_log("refused the connection", 20)
        impostors[1].wait_for_log("refused this agent's heartbeat", 20)
        self.manager.wait_for_log("refused a message from", 20)
        client = self.client()
        listed = {a["agent_id"] for a in client.status()["agents"]}
        self.assertEqual(listed, {self.agent.agent_id})
        created = [client.create("python3") for _ in range(3)]
        for kernel in created:
            self.destroy_later(client, kernel["kernel_id"])
            self.assertEqual(client.kernel_info(kernel["kernel_id"])["agent_id"],
                             self.agent.agent_id)
        for impostor in impostors:
            self.assertEqual(self.containers_of(impostor), [])
        # allowed later, the one with its own keys gets in without a restart
        shutil.copy(os.path.join(rogue, "agents", "agent.key"),
                    os.path.join(self.folder, "agents", "rogue.key"))
        self.manager.signal(signal.SIGHUP)
        self.wait_for(impostors[0].agent_id)

    def test_a_second_key_cannot_take_an_agents_id(self):
        keys.add(self.folder, "agents", "second")
        self.manager.signal(signal.SIGHUP)
        self.manager.wait_for_log("after SIGHUP: ", 10)
        self.agent.stop()
        # the id is free of its process (it said goodbye) but not of its key
        twin = self.start_agent(self.manager, wait=False, agent_id=self.agent.agent_id,
                                extra_args=["--keys", self.folder, "--key-name", "second"])
        twin.wait_for_log("refused this agent's heartbeat", 20)
        self.assertIn("belongs to another agent key", twin.log())
        self.manager.wait_for_log("key agents/second", 10)

    def test_a_revoked_key_is_refused_after_a_reload(self):
        keys.add(self.folder, "clients", "leaving")
        keys.add(self.folder, "clients", "watched")
        for process in (self.manager, self.agent):  # a SIGHUP, or the folder watch
            process.signal(signal.SIGHUP)
            process.wait_for_log("after SIGHUP: ", 10)
        leaving = self.client(key_name="leaving")
        kernel = leaving.create("python3")
        self.destroy_later(self.client(), kernel["kernel_id"])
        leaving.execute(kernel["kernel_id"], "x = 1")
        os.unlink(os.path.join(self.folder, "clients", "leaving.key"))
        for process in (self.manager, self.agent):
            process.signal(signal.SIGHUP)
            process.wait_for_log("(0 added, 1 removed)", 10)
        # refused on the connections it opened before, at the manager and at the agent
        self.assertRefusedFast(lambda: leaving.status())
        e = self.assertRefusedFast(lambda: leaving.execute(kernel["kernel_id"], "x"))
        self.assertIn("no longer", e.cause)
        # and by the watch alone, within its interval
        watched = self.client(key_name="watched")
        watched.status()
        os.unlink(os.path.join(self.folder, "clients", "watched.key"))
        wait_until(lambda: _refused(watched.status), 3 * keys.WATCH_INTERVAL + 5,
                   "the watch revoking the key")
        self.assertEqual(self.client().execute(kernel["kernel_id"], "print(x)")["stdout"],
                         "1\n")


def _refused(call):
    try:
        call()
    except Forbidden:
        return True
    return False


class InsecureTests(ClusterTestCase):
    def test_an_insecure_cluster_says_so_and_keyed_clients_are_told(self):
        manager, agent = self.start_cluster(insecure=True)
        self.assertIn("runs --insecure", manager.log())
        self.assertIn("runs --insecure", agent.log())
        done = sorna("--insecure", "status", manager=manager.addr)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("INSECURE", done.stdout)
        started = time.monotonic()
        with BlockingClient(manager.addr, timeout=30) as client:  # the run's keys
            with self.assertRaises(Forbidden) as caught:
                client.status()
        self.assertLess(time.monotonic() - started, FAST)
        self.assertIn("runs --insecure (then set SORNA_INSECURE=1)", caught.exception.cause)

    def test_a_plaintext_client_is_told_the_cluster_needs_keys(self):
        manager = self.start_manager()
        done = sorna("--insecure", "status", manager=manager.addr)
        self.assertEqual(done.returncode, 3)
        self.assertIn("requires CurveZMQ keys", done.stderr)

    def test_servers_without_keys_refuse_to_start_and_say_how_to_make_them(self):
        home = self.mktemp()
        os.makedirs(home)
        error = self.start_fails(ManagerProcess(env={"SORNA_KEYS": "", "HOME": home}))
        self.assertIn("found no CurveZMQ keys", error)
        self.assertIn("sorna keys init", error)
