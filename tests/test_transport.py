"""One suite for the in-memory network and real ZMQ sockets, so the fake cannot drift."""

import os
import socket
import tempfile

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

import zmq

from sorna.curve import ClientCurve, ServerCurve
from sorna.testing.transport import FakeNetwork
from sorna.transport import ZmqTransport


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """Collects messages; `next()` is a Deferred of the next one (or of a timeout)."""

    def __init__(self):
        self.messages = []
        self._waiters = []

    def __call__(self, *message):
        if self._waiters:
            self._waiters.pop(0).callback(message)
        else:
            self.messages.append(message)

    def next(self, timeout=5):
        if self.messages:
            return defer.succeed(self.messages.pop(0))
        d = defer.Deferred()
        self._waiters.append(d)
        return d.addTimeout(timeout, reactor)


class TransportTests:
    def make_transport(self):
        raise NotImplementedError

    def setUp(self):
        self.transport = self.make_transport()
        self.addCleanup(self.transport.close)
        self.dir = tempfile.mkdtemp(prefix="sorna-t-")
        self.endpoint = f"ipc://{self.dir}/r"

    def tearDown(self):
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    @defer.inlineCallbacks
    def test_request_and_reply(self):
        inbox, replies = Inbox(), Inbox()
        router = self.transport.router(self.endpoint, inbox)
        dealer = self.transport.dealer(self.endpoint, replies, identity=b"agent-1")
        self.assertTrue(dealer.send([b"", b"hello"]))
        peer, frames = yield inbox.next()
        self.assertEqual((peer, frames), (b"agent-1", [b"", b"hello"]))
        router.send(peer, [b"", b"world"])
        (frames,) = yield replies.next()
        self.assertEqual(frames, [b"", b"world"])
        dealer.close()
        router.close()

    @defer.inlineCallbacks
    def test_anonymous_dealers_get_distinct_identities(self):
        inbox = Inbox()
        router = self.transport.router(self.endpoint, inbox)
        a = self.transport.dealer(self.endpoint, Inbox())
        b = self.transport.dealer(self.endpoint, Inbox())
        a.send([b"a"])
        b.send([b"b"])
        first = yield inbox.next()
        second = yield inbox.next()
        self.assertNotEqual(first[0], second[0])
        for sock in (a, b, router):
            sock.close()

    @defer.inlineCallbacks
    def test_messages_wait_for_a_late_router(self):
        replies, inbox = Inbox(), Inbox()
        dealer = self.transport.dealer(self.endpoint, replies)
        dealer.send([b"early"])
        router = self.transport.router(self.endpoint, inbox)
        if hasattr(dealer, "flush"):
            dealer.flush()
        peer, frames = yield inbox.next()
        self.assertEqual(frames, [b"early"])
        dealer.close()
        router.close()

    @defer.inlineCallbacks
    def test_unknown_peers_are_dropped_quietly(self):
        inbox = Inbox()
        router = self.transport.router(self.endpoint, inbox)
        router.send(b"nobody", [b"", b"x"])  # must not raise
        dealer = self.transport.dealer(self.endpoint, Inbox(), identity=b"me")
        dealer.send([b"ok"])
        peer, frames = yield inbox.next()
        self.assertEqual(frames, [b"ok"])
        dealer.close()
        router.close()

    @defer.inlineCallbacks
    def test_a_second_connection_cannot_take_a_connected_identity(self):
        inbox, first_replies, thief_replies = Inbox(), Inbox(), Inbox()
        router = self.transport.router(self.endpoint, inbox)
        first = self.transport.dealer(self.endpoint, first_replies, identity=b"agent")
        first.send([b"1"])
        yield inbox.next()
        thief = self.transport.dealer(self.endpoint, thief_replies, identity=b"agent")
        thief.send([b"stolen"])
        first.send([b"2"])
        peer, frames = yield inbox.next()
        self.assertEqual((peer, frames), (b"agent", [b"2"]))
        router.send(b"agent", [b"back"])
        (frames,) = yield first_replies.next()
        self.assertEqual(frames, [b"back"])
        self.assertEqual((inbox.messages, thief_replies.messages), ([], []))
        thief.close()
        first.close()
        router.close()

    # -- CurveZMQ
    def curve_pairs(self, allowed=True):
        server, client = zmq.curve_keypair(), zmq.curve_keypair()
        allow = {client[0]} if allowed else set()
        return (ServerCurve(server[0], server[1], "test", allow.__contains__),
                ClientCurve(client[0], client[1], server[0]))

    @defer.inlineCallbacks
    def test_a_curve_message_comes_with_the_key_it_was_sent_with(self):
        inbox, replies, handshakes = Inbox(), Inbox(), Inbox()
        server, client = self.curve_pairs()
        router = self.transport.router(self.endpoint, inbox, curve=server)
        dealer = self.transport.dealer(self.endpoint, replies, curve=client,
                                       on_handshake=handshakes)
        dealer.send([b"", b"secret"])
        peer, frames, key = yield inbox.next()
        self.assertEqual((frames, key), ([b"", b"secret"], client.public))
        self.assertEqual((yield handshakes.next()), ("ok",))
        router.send(peer, [b"", b"answer"])
        self.assertEqual((yield replies.next()), ([b"", b"answer"],))
        dealer.close()
        router.close()

    @defer.inlineCallbacks
    def check_handshake_fails(self, outcome, server, client):
        inbox, handshakes = Inbox(), Inbox()
        router = self.transport.router(self.endpoint, inbox, curve=server)
        dealer = self.transport.dealer(self.endpoint, Inbox(), curve=client,
                                       on_handshake=handshakes)
        dealer.send([b"", b"let me in"])
        self.assertEqual((yield handshakes.next()), (outcome,))
        self.assertEqual(inbox.messages, [])
        dealer.close()
        router.close()

    def test_a_key_the_server_does_not_allow_is_refused(self):
        return self.check_handshake_fails("refused", *self.curve_pairs(allowed=False))

    def test_a_client_that_expects_another_server_key_fails(self):
        server, client = self.curve_pairs()
        return self.check_handshake_fails("failed", server,
                                          client.towards(zmq.curve_keypair()[0]))

    def test_plaintext_and_curve_do_not_mix(self):
        server, client = self.curve_pairs()
        return self.check_handshake_fails("failed", server, None)

    def test_binding_a_taken_port_fails(self):
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        router = self.transport.router(endpoint, Inbox())
        self.assertRaises(Exception, self.transport.router, endpoint, Inbox())
        router.close()


class FakeNetworkTests(TransportTests, TestCase):
    def make_transport(self):
        return FakeNetwork()


class ZmqTransportTests(TransportTests, TestCase):
    def make_transport(self):
        return ZmqTransport()
