"""The manager, on the in-memory network with a Clock; the tests play the agents."""

import json
import os
import secrets

import zmq
import zmq.auth

from twisted.internet import defer, task
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sorna import keys
from sorna.client.api import SornaClient
from sorna.cluster_keys import ServerKeys
from sorna.curve import ClientCurve
from sorna.manager import tap
from sorna.proto.codec import decode, encode
from sorna.proto.errors import SornaError
from sorna.testing.keys import agent_curve, client_curve, use_test_keys
from sorna.testing.transport import FakeNetwork

MANAGER = "tcp://127.0.0.1:5001"


class FakeAgent:
    """An agent connection: heartbeats, and answers to commands (now, or when told)."""

    def __init__(self, network, agent_id, max_kernels=3, langs=("python3",), auto=True,
                 curve="test"):
        """`curve`: the ClientCurve it dials with ("test": the test agent key's)."""
        self.agent_id = agent_id
        self.max_kernels = max_kernels
        self.langs = list(langs)
        self.auto = auto
        self.kernels = {}
        self.commands = []
        self.failure = None
        self.session = secrets.token_hex(16)
        self.replies = []  # what the manager answered its heartbeats (refusals)
        self.socket = network.dealer(MANAGER, self._on_message,
                                     curve=agent_curve() if curve == "test" else curve)

    def heartbeat(self, kernels=None, **fields):
        self.socket.send([b"", encode(dict({
            "action": "heartbeat", "agent_id": self.agent_id, "session": self.session,
            "addr": f"tcp://{self.agent_id}:6001", "max_kernels": self.max_kernels,
            "kernels": self.kernels if kernels is None else kernels, "langs": self.langs,
            "aliases": {"python3": ["python", "py3"]}}, **fields))])

    def _on_message(self, frames):
        message, _ = decode(frames[-1])
        if "action" not in message:
            self.replies.append(message)
            return
        self.commands.append(message)
        if self.auto:
            self.answer(message)

    def answer(self, command, failure=None):
        failure = failure or self.failure
        if failure:
            reply = {"id": command["id"], "reply": failure[0], "error": "x", "cause": failure[1]}
        else:
            if command["action"] == "create_kernel":
                self.kernels[command["kernel_id"]] = command["lang"]
            elif command["action"] == "destroy_kernel":
                self.kernels.pop(command["kernel_id"], None)
            reply = {"id": command["id"], "reply": 200, "kernel_id": command["kernel_id"]}
        self.socket.send([b"", encode(reply)])

    def creates(self):
        return [c for c in self.commands if c["action"] == "create_kernel"]


class ManagerTests(SynchronousTestCase):
    argv = []

    def setUp(self):
        self.clock = task.Clock()
        self.network = FakeNetwork()
        options = tap.Options(environ={"SORNA_KEYS": use_test_keys()})
        options.parseOptions(["--listen", "127.0.0.1", "--create-timeout", "10",
                              "--create-attempt-timeout", "5", *self.argv])
        self.manager = tap.makeService(options, clock=self.clock, transport=self.network)
        self.manager.startService()
        self.client = SornaClient(MANAGER, transport=self.network, clock=self.clock)
        self.logged = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def tearDown(self):
        self.client.close()
        self.successResultOf(self.manager.stopService())

    def agent(self, agent_id="a1", **kw):
        agent = FakeAgent(self.network, agent_id, **kw)
        agent.heartbeat()
        return agent

    def error(self, d):
        return self.failureResultOf(d, SornaError).value

    def test_no_agent_is_503_with_advice(self):
        e = self.error(self.client.create("python3"))
        self.assertEqual(e.code, 503)
        self.assertIn("start one", e.cause)

    def test_create_places_on_an_agent_and_resolves_aliases(self):
        agent = self.agent()
        kernel = self.successResultOf(self.client.create("python"))
        [command] = agent.creates()
        self.assertEqual(command["lang"], "python3")
        self.assertEqual(kernel, {"kernel_id": command["kernel_id"],
                                  "kernel_addr": "tcp://a1:6001", "lang": "python3",
                                  "agent_key": agent_curve().public.decode()})
        info = self.successResultOf(self.client.kernel_info(kernel["kernel_id"]))
        self.assertEqual((info["agent_id"], info["agent_key"]), ("a1", kernel["agent_key"]))

    def test_unknown_language(self):
        self.agent()
        e = self.error(self.client.create("intercal"))
        self.assertEqual((e.code, e.error), (400, "unknown-language"))
        self.assertIn("python3", e.cause)
        self.assertIn("rust", e.cause)  # the languages Sorna has, served or not

    def test_a_language_no_live_agent_has_is_503_naming_the_image(self):
        self.agent()
        e = self.error(self.client.create("rust"))
        self.assertEqual((e.code, e.error), (503, "no-image"))
        self.assertIn("sorna/kernel-rust", e.cause)

    def test_aliases_come_from_the_agents(self):
        agent = self.agent(langs=("python3", "nodejs"), max_kernels=10)
        agent.heartbeat(aliases={"nodejs": ["node", "JavaScript"], "python3": ["py"]})
        for name in ("node", "javascript", "JAVASCRIPT", "py", "nodejs", "NodeJS"):
            kernel = self.successResultOf(self.client.create(name))
            self.assertIn(kernel["lang"], ("nodejs", "python3"), name)
        self.assertEqual([c["lang"] for c in agent.creates()],
                         ["nodejs", "nodejs", "nodejs", "python3", "nodejs", "nodejs"])

    def test_max_kernels_holds_under_concurrent_creates(self):
        agent = self.agent(max_kernels=3, auto=False)
        results = [self.client.create("python3") for _ in range(20)]
        self.assertEqual(len(agent.creates()), 3)
        refused = [self.error(d) for d in results[3:]]
        self.assertEqual({e.code for e in refused}, {503})
        for command in agent.creates():
            agent.answer(command)
        created = [self.successResultOf(d) for d in results[:3]]
        self.assertEqual(len({k["kernel_id"] for k in created}), 3)
        self.assertEqual(self.error(self.client.create("python3")).code, 503)

    def test_the_least_loaded_agent_is_chosen(self):
        a, b = self.agent("a1", max_kernels=4), self.agent("a2", max_kernels=4)
        for _ in range(4):
            self.successResultOf(self.client.create("python3"))
        self.assertEqual((len(a.creates()), len(b.creates())), (2, 2))

    def test_failed_creation_gives_the_slot_back(self):
        agent = self.agent(max_kernels=1)
        agent.failure = (500, "the image is broken")
        e = self.error(self.client.create("python3"))
        self.assertEqual(e.code, 500)
        self.assertIn("the image is broken", e.cause)
        agent.failure = None
        self.successResultOf(self.client.create("python3"))

    def test_silent_agent_times_out_and_frees_the_slot(self):
        agent = self.agent(max_kernels=1, auto=False)
        d = self.client.create("python3")
        self.clock.advance(3)
        agent.heartbeat()
        self.clock.advance(7.5)
        e = self.error(d)
        self.assertEqual((e.code, e.error), (504, "create-timeout"))
        agent.auto = True
        agent.heartbeat()
        self.successResultOf(self.client.create("python3"))

    def test_a_silent_or_failing_agent_is_passed_over_within_the_deadline(self):
        silent = self.agent("a1", auto=False)  # asked first (ties go to the lowest id)
        good = self.agent("a2", max_kernels=9)
        d = self.client.create("python3")
        self.assertEqual(len(silent.creates()), 1)
        self.clock.advance(5)  # the attempt timeout here (--create-timeout 10: halves)
        kernel = self.successResultOf(d)
        self.assertEqual(self.successResultOf(self.client.kernel_info(kernel["kernel_id"]))[
            "agent_id"], "a2")
        # While it cools down, the silent one is not asked first.
        self.successResultOf(self.client.create("python3"))
        self.assertEqual((len(silent.creates()), len(good.creates())), (1, 2))
        failing = self.agent("a0", max_kernels=9)
        failing.failure = (500, "the engine is down")
        for _ in range(2):
            kernel = self.successResultOf(self.client.create("python3"))
            self.assertEqual(self.successResultOf(self.client.kernel_info(
                kernel["kernel_id"]))["agent_id"], "a2")
        self.assertLessEqual(len(failing.creates()), 1)  # asked once at most, then cooled

    def test_get_or_create_keeps_one_kernel_per_session(self):
        agent = self.agent(auto=False)
        first = self.client.get_or_create("u1", "e1", "python3")
        second = self.client.get_or_create("u1", "e1", "python")  # alias: same session
        self.assertEqual(len(agent.creates()), 1)
        agent.answer(agent.creates()[0])
        k1, k2 = self.successResultOf(first), self.successResultOf(second)
        self.assertEqual(k1["kernel_id"], k2["kernel_id"])
        agent.auto = True
        k3 = self.successResultOf(self.client.get_or_create("u1", "e2", "python3"))
        self.assertNotEqual(k3["kernel_id"], k1["kernel_id"])

    def test_the_front_ends_trace_id_goes_with_the_commands_to_the_agent(self):
        agent = self.agent()
        kernel = self.successResultOf(self.client.create("python3", trace="web-1"))
        self.successResultOf(self.client.get_or_create("u", "e", "python3", trace="web-2"))
        self.successResultOf(self.client.destroy(kernel["kernel_id"], trace="web-3"))
        self.assertEqual([c["trace"] for c in agent.commands], ["web-1", "web-2", "web-3"])

    def test_without_a_trace_id_the_agent_gets_the_managers(self):
        agent = self.agent()
        self.successResultOf(self.client.create("python3"))
        self.assertRegex(agent.creates()[0]["trace"], r"^manager-[0-9a-f]{12}$")

    def test_destroy(self):
        agent = self.agent()
        kernel = self.successResultOf(self.client.create("python3"))
        self.successResultOf(self.client.destroy(kernel["kernel_id"]))
        self.assertEqual(agent.commands[-1]["action"], "destroy_kernel")
        self.assertEqual(self.error(self.client.destroy(kernel["kernel_id"])).code, 404)
        self.assertEqual(self.error(self.client.kernel_info(kernel["kernel_id"])).code, 404)

    def test_dead_agents_are_dropped_after_three_intervals(self):
        a1, a2 = self.agent("a1"), self.agent("a2")
        kernel = self.successResultOf(self.client.get_or_create("u", "e", "python3"))
        owner, other = (a1, a2) if a1.creates() else (a2, a1)
        for _ in range(3):
            self.clock.advance(3)
            other.heartbeat()
        status = self.successResultOf(self.client.status())
        self.assertEqual([a["agent_id"] for a in status["agents"]], [other.agent_id])
        lost = self.error(self.client.kernel_info(kernel["kernel_id"]))
        self.assertEqual((lost.code, lost.error), (404, "kernel-lost"))
        self.assertIn(f"its agent {owner.agent_id} stopped answering", lost.cause)
        again = self.successResultOf(self.client.get_or_create("u", "e", "python3"))
        self.assertNotEqual(again["kernel_id"], kernel["kernel_id"])
        self.assertEqual(len(other.creates()), 1)

    def test_heartbeats_forget_vanished_kernels_and_destroy_orphans(self):
        agent = self.agent()
        kernel = self.successResultOf(self.client.get_or_create("u", "e", "python3"))
        self.clock.advance(4)
        agent.heartbeat()
        self.clock.advance(3)  # past the grace of two intervals, the agent still alive
        agent.heartbeat(kernels={"O" * 22: "python3"})
        lost = self.error(self.client.kernel_info(kernel["kernel_id"]))
        self.assertEqual((lost.code, lost.error), (404, "kernel-lost"))
        self.assertIn("stopped running on agent a1", lost.cause)
        command = agent.commands[-1]
        self.assertEqual(command, {"action": "destroy_kernel", "kernel_id": "O" * 22,
                                   "id": command["id"], "trace": command["trace"]})
        self.assertRegex(command["trace"], r"^manager-[0-9a-f]{12}$")
        again = self.successResultOf(self.client.get_or_create("u", "e", "python3"))
        self.assertNotEqual(again["kernel_id"], kernel["kernel_id"])

    def test_young_kernels_survive_a_heartbeat_sent_before_them(self):
        agent = self.agent()
        kernel = self.successResultOf(self.client.create("python3"))
        agent.heartbeat(kernels={})
        self.successResultOf(self.client.kernel_info(kernel["kernel_id"]))

    def test_an_id_held_by_a_live_agent_cannot_be_taken(self):
        agent = self.agent()  # a1, with a kernel
        kernel = self.successResultOf(self.client.create("python3"))
        impostor = FakeAgent(self.network, "a1", max_kernels=100)
        impostor.heartbeat(kernels={})
        self.clock.advance(2)  # the impostor's empty list would make the kernel vanish
        impostor.heartbeat(kernels={})
        [a1] = self.successResultOf(self.client.status())["agents"]
        self.assertEqual((a1["max_kernels"], a1["kernels"]), (3, 1))
        self.successResultOf(self.client.kernel_info(kernel["kernel_id"]))
        self.successResultOf(self.client.create("python3"))
        self.assertEqual(len(agent.creates()), 2)  # commands still go to the real one
        self.assertEqual(impostor.commands, [])
        self.assertFlushedRefusal()

    def assertFlushedRefusal(self):
        warnings = [e for e in self.logged if "refused a heartbeat" in e.get("log_format", "")]
        self.assertTrue(warnings, "the refusal was not logged")

    def test_a_restarted_agent_takes_its_id_back_after_saying_goodbye_or_timing_out(self):
        old = self.agent()
        old.heartbeat(leaving=True)  # a clean stop
        fresh = FakeAgent(self.network, "a1", max_kernels=5)
        fresh.heartbeat()
        [a1] = self.successResultOf(self.client.status())["agents"]
        self.assertEqual(a1["max_kernels"], 5)
        # Killed without a goodbye: its successor waits for the agent timeout.
        again = FakeAgent(self.network, "a1", max_kernels=7)
        again.heartbeat()
        self.assertEqual(self.successResultOf(self.client.status())["agents"][0]["max_kernels"], 5)
        self.clock.advance(9)
        again.heartbeat()
        self.assertEqual(self.successResultOf(self.client.status())["agents"][0]["max_kernels"], 7)

    def test_one_connection_speaks_for_one_agent(self):
        agent = self.agent()
        agent.agent_id = "a2"
        agent.heartbeat()
        self.assertEqual([a["agent_id"] for a in self.successResultOf(self.client.status())[
            "agents"]], ["a1"])

    def test_heartbeats_past_the_rate_or_listing_too_many_kernels_do_nothing(self):
        agent = self.agent()  # its first heartbeat of this interval
        for _ in range(3):
            agent.heartbeat()
        agent.max_kernels = 9
        agent.heartbeat()  # the fifth within one interval: ignored
        self.assertEqual(self.successResultOf(self.client.status())["agents"][0][
            "max_kernels"], 3)
        self.clock.advance(3)
        agent.heartbeat()
        self.assertEqual(self.successResultOf(self.client.status())["agents"][0][
            "max_kernels"], 9)
        self.clock.advance(3)
        agent.auto = False
        agent.heartbeat(kernels={f"{n:022d}": "python3" for n in range(9 + 17)})
        self.assertEqual([c for c in agent.commands if c["action"] == "destroy_kernel"], [])

    def test_reconciliation_sends_a_bounded_number_of_destroys(self):
        agent = self.agent(max_kernels=100, auto=False)
        agent.heartbeat(kernels={f"{n:022d}": "python3" for n in range(100)})
        destroys = [c for c in agent.commands if c["action"] == "destroy_kernel"]
        self.assertEqual(len(destroys), 8)

    def test_front_ends_cannot_forge_agent_replies(self):
        agent = self.agent(auto=False)
        d = self.client.create("python3")
        [command] = agent.creates()
        forger = self.network.dealer(MANAGER, lambda frames: None, curve=agent_curve())
        forger.send([b"", encode({"id": command["id"], "reply": 200})])
        self.assertNoResult(d)
        agent.answer(command)
        self.successResultOf(d)

    def test_shutdown_refuses_new_work_and_ends_what_waits_on_agents_first(self):
        agent = self.agent(auto=False)
        d = self.client.create("python3")
        self.assertEqual(len(agent.creates()), 1)
        stopped = self.manager.stopService()
        e = self.failureResultOf(d, SornaError).value
        self.assertEqual((e.code, e.error), (503, "shutting-down"))
        self.successResultOf(stopped)  # without waiting for the agent's answer
        self.manager.startService()  # tearDown stops it again

    def test_while_it_drains_the_manager_answers_503_and_pongs(self):
        slow = defer.Deferred()
        self.manager.server.in_flight.track(slow)  # a request still being handled
        stopped = self.manager.stopService()
        self.assertNoResult(stopped)
        e = self.failureResultOf(self.client.create("python3"), SornaError).value
        self.assertEqual((e.code, e.error), (503, "shutting-down"))
        self.assertIn("shutting down", e.cause)
        self.assertEqual(self.successResultOf(self.client.ping("x")), "x")
        slow.callback(None)
        self.successResultOf(stopped)
        self.manager.startService()

    def test_options_are_validated(self):
        for argv in (["--port", "0"], ["--heartbeat-interval", "0"],
                     ["--max-message-size", "10"], ["--placement", "random"],
                     ["--max-kernels-per-user", "-1"], ["--metrics-port", "0"],
                     ["--metrics-port", "70000"]):
            self.assertRaises(Exception, tap.Options().parseOptions, argv)


class InsecureManagerTests(SynchronousTestCase):
    """`--insecure`: plaintext, as the 2016 JSON front-ends need."""

    def setUp(self):
        self.clock = task.Clock()
        self.network = FakeNetwork()
        options = tap.Options(environ={})
        options.parseOptions(["--listen", "127.0.0.1", "--insecure"])
        self.manager = tap.makeService(options, clock=self.clock, transport=self.network)
        self.manager.startService()
        self.addCleanup(lambda: self.successResultOf(self.manager.stopService()))

    def agent(self):
        agent = FakeAgent(self.network, "a1", curve=None)
        agent.heartbeat()
        return agent

    def test_status_says_insecure(self):
        client = SornaClient(MANAGER, transport=self.network, clock=self.clock,
                             insecure=True)
        self.addCleanup(client.close)
        self.assertEqual(self.successResultOf(client.status())["security"], "insecure")

    def test_a_client_with_keys_is_told_the_manager_speaks_plaintext(self):
        client = SornaClient(MANAGER, transport=self.network, clock=self.clock,
                             keys=client_curve())
        self.addCleanup(client.close)
        e = self.failureResultOf(client.status(), SornaError).value
        self.assertEqual((e.code, e.error), (403, "handshake-failed"))
        self.assertIn("runs --insecure (then set SORNA_INSECURE=1)", e.cause)

    def test_2016_json_front_end(self):
        self.agent()
        replies = []
        req = self.network.dealer(MANAGER, lambda frames: replies.append(json.loads(frames[-1])))
        req.send([b"", b'{"action": 0, "body": "hello"}'])
        req.send([b"", b'{"action": 2, "user_id": 1, "entry_id": "e", "lang": "python3"}'])
        req.send([b"", b'{"action": 2, "user_id": 1, "entry_id": "e", "lang": "python3"}'])
        self.assertEqual(replies[0], {"reply": 0, "body": "hello"})
        self.assertEqual(replies[1]["reply"], 200)
        self.assertEqual(replies[1]["kernel_id"], replies[2]["kernel_id"])
        req.send([b"", json.dumps({"action": 3, "kernel_id": replies[1]["kernel_id"]}).encode()])
        self.assertEqual(replies[3]["reply"], 200)
        req.send([b"", b'{"action": 3, "kernel_id": "nope"}'])
        self.assertEqual(replies[4]["reply"], 400)



class CurveManagerTests(SynchronousTestCase):
    """Which keys may do what on a manager with keys."""

    def setUp(self):
        self.clock = task.Clock()
        self.network = FakeNetwork()
        self.folder = os.path.join(self.mktemp(), "keys")
        keys.init(self.folder)
        keys.add(self.folder, "agents", "other")
        keys.add(self.folder, "clients", "other")
        options = tap.Options(environ={})
        options.parseOptions(["--listen", "127.0.0.1", "--keys", self.folder])
        self.ring = options["keys"].ring
        self.manager = tap.makeService(options, clock=self.clock, transport=self.network)
        self.manager.startService()
        self.addCleanup(lambda: self.successResultOf(self.manager.stopService()))
        self.logged = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def curve(self, relative):
        public, secret = zmq.auth.load_certificate(
            os.path.join(self.folder, f"{relative}.key_secret"))
        return ClientCurve(public, secret, keys.manager_key(self.folder))

    def client(self, relative="clients/client"):
        client = SornaClient(MANAGER, transport=self.network, clock=self.clock,
                             keys=self.curve(relative))
        self.addCleanup(client.close)
        return client

    def status(self):
        return self.successResultOf(self.client().status())

    def test_replies_name_the_agents_key_and_status_says_curve(self):
        FakeAgent(self.network, "a1", curve=self.curve("agents/agent")).heartbeat()
        kernel = self.successResultOf(self.client().create("python3"))
        self.assertEqual(kernel["agent_key"], keys.own_pair(self.folder, "agents")[0].decode())
        self.assertEqual(self.status()["security"], "curve")

    def test_a_key_of_another_cluster_is_refused_at_the_handshake(self):
        stranger = ClientCurve(*zmq.curve_keypair(), keys.manager_key(self.folder))
        client = SornaClient(MANAGER, transport=self.network, clock=self.clock,
                             keys=stranger)
        self.addCleanup(client.close)
        e = self.failureResultOf(client.status(), SornaError).value
        self.assertEqual((e.code, e.error), (403, "key-refused"))
        self.assertIn("refused this client's key", e.cause)
        rogue = FakeAgent(self.network, "rogue", curve=stranger)
        rogue.heartbeat()
        self.assertEqual(self.status()["agents"], [])

    def test_a_client_key_cannot_register_an_agent(self):
        impostor = FakeAgent(self.network, "a1", curve=self.curve("clients/client"))
        impostor.heartbeat()
        replies = impostor.replies
        self.assertEqual(self.status()["agents"], [])
        self.assertEqual((replies[0]["reply"], replies[0]["error"]), (403, "key-refused"))

    def test_an_agent_key_cannot_create_kernels(self):
        FakeAgent(self.network, "a1", curve=self.curve("agents/agent")).heartbeat()
        e = self.failureResultOf(self.client("agents/other").create("python3"),
                                 SornaError).value
        self.assertEqual((e.code, e.error), (403, "key-refused"))
        self.assertIn("'create' needs a key listed in the cluster's clients folder",
                      e.cause)

    def test_an_agent_id_stays_bound_to_its_first_key(self):
        first = FakeAgent(self.network, "a1", curve=self.curve("agents/agent"))
        first.heartbeat()
        first.heartbeat(leaving=True)  # gone: the id is free for the same key only
        second = FakeAgent(self.network, "a1", curve=self.curve("agents/other"))
        second.heartbeat()
        replies = second.replies
        self.assertEqual((replies[0]["reply"], replies[0]["error"]),
                         (403, "agent-key-mismatch"))
        self.assertTrue(any("agents/other" in str(e.get("key")) for e in self.logged))
        os.unlink(os.path.join(self.folder, "agents", "agent.key"))
        self.clock.advance(keys.WATCH_INTERVAL)  # the watch sees the key go
        second.heartbeat()
        self.assertEqual(len(replies), 1)  # accepted: no second refusal
        kernel = self.successResultOf(self.client().create("python3"))
        self.assertEqual(kernel["agent_key"], second.socket.curve.public.decode())

    def test_a_revoked_client_key_is_refused_on_its_open_connection(self):
        client = self.client("clients/other")
        self.successResultOf(client.status())
        os.unlink(os.path.join(self.folder, "clients", "other.key"))
        self.clock.advance(keys.WATCH_INTERVAL)
        e = self.failureResultOf(client.status(), SornaError).value
        self.assertEqual((e.code, e.error), (403, "key-refused"))
        self.assertIn("no longer", e.cause)
        self.successResultOf(self.client("clients/client").status())
        self.assertTrue(any("1 removed" in (e.get("log_format", "") + str(e.get("removed")))
                            or e.get("removed") == 1 for e in self.logged))


class PackingManagerTests(ManagerTests):
    argv = ["--placement", "most-loaded"]

    def test_the_least_loaded_agent_is_chosen(self):
        a, b = self.agent("a1", max_kernels=2), self.agent("a2", max_kernels=2)
        for _ in range(3):
            self.successResultOf(self.client.create("python3"))
        self.assertEqual((len(a.creates()), len(b.creates())), (2, 1))


class QuotaManagerTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.network = FakeNetwork()
        options = tap.Options(environ={"SORNA_KEYS": use_test_keys()})
        options.parseOptions(["--listen", "127.0.0.1", "--max-kernels-per-user", "2"])
        self.manager = tap.makeService(options, clock=self.clock, transport=self.network)
        self.manager.startService()
        self.client = SornaClient(MANAGER, transport=self.network, clock=self.clock)
        self.agent = FakeAgent(self.network, "a1", max_kernels=10, auto=False)
        self.agent.heartbeat()

    def tearDown(self):
        self.client.close()
        self.successResultOf(self.manager.stopService())

    def test_a_user_gets_429_past_the_quota_even_when_asking_at_once(self):
        requests = [self.client.get_or_create("u", f"e{i}", "python3") for i in range(3)]
        requests.append(self.client.get_or_create("u", "e0", "python3"))  # same session
        requests.append(self.client.get_or_create("v", "e0", "python3"))  # another user
        while self.agent.creates() and len(self.agent.commands) < 10:
            pending = [c for c in self.agent.creates() if "answered" not in c]
            if not pending:
                break
            for command in pending:
                command["answered"] = True
                self.agent.answer(command)
        first, second, third, again, other = requests
        k0 = self.successResultOf(first)
        self.successResultOf(second)
        e = self.failureResultOf(third, SornaError).value
        self.assertEqual((e.code, e.error), (429, "quota-exceeded"))
        self.assertIn("destroy one first", e.cause)
        self.assertEqual(self.successResultOf(again)["kernel_id"], k0["kernel_id"])
        self.successResultOf(other)
        self.assertEqual(len(self.agent.creates()), 3)
        self.agent.auto = True
        self.successResultOf(self.client.destroy(k0["kernel_id"]))
        self.successResultOf(self.client.get_or_create("u", "e2", "python3"))


class RestartedManagerTests(SynchronousTestCase):
    """A manager that starts on a table it shares with its predecessor (Redis)."""

    def test_agents_get_three_intervals_to_be_heard_before_they_are_judged(self):
        from sorna.manager.registry import AgentRecord, KernelRecord, MemoryCapacityTable
        from sorna.manager.service import ManagerService
        clock = task.Clock()
        clock.advance(1000)  # the old manager heard the agent at 0: long ago
        table = MemoryCapacityTable(agent_timeout=9)
        self.successResultOf(table.heartbeat(AgentRecord("a1", "tcp://a1:6001", 2,
                                                         ["python3"], 0), 0))
        self.successResultOf(table.add_kernel(KernelRecord(
            "K" * 22, "a1", "python3", "tcp://a1:6001", 0, ("u", "e", "python3"))))
        network = FakeNetwork()
        manager = ManagerService(MANAGER, table, network, clock,
                                 keys=ServerKeys.load(use_test_keys(), "manager"))
        manager.startService()
        self.addCleanup(lambda: self.successResultOf(manager.stopService()))
        clock.pump([0.5] * 4)
        agent = FakeAgent(network, "a1", max_kernels=2)
        agent.kernels = {"K" * 22: "python3"}
        for _ in range(10):
            agent.heartbeat()
            clock.pump([0.5] * 6)
        client = SornaClient(MANAGER, transport=network, clock=clock)
        self.addCleanup(client.close)
        kernel = self.successResultOf(client.get_or_create("u", "e", "python3"))
        self.assertEqual(kernel["kernel_id"], "K" * 22)
        self.assertEqual(agent.commands, [])  # nothing destroyed as an orphan
