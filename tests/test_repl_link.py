"""One suite for the agent's REPL link over a real Unix socket and its in-memory twin
(sorna.testing.transport.FakeReplLinks), so the fake cannot drift; and what only the
real link can show: a link in place of the socket is never followed, frames per turn
are bounded, a frame too large ends the link before its body is read."""

import os
import shutil
import tempfile

from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.trial.unittest import TestCase

from sorna.agent.repl_link import HEADER, UnixReplLinks, frame
from sorna.testing.transport import FakeNetwork

MAX_FRAME = 1024


class Inbox:
    def __init__(self):
        self.items = []
        self._waiters = []

    def __call__(self, item):
        self.items.append(item)
        waiters, self._waiters = self._waiters, []
        for count, d in waiters:
            (d.callback(None) if len(self.items) >= count else self._waiters.append((count, d)))

    def until(self, count, timeout=5):
        if len(self.items) >= count:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiters.append((count, d))
        return d.addTimeout(timeout, reactor)


class _ServerSide(protocol.Protocol):
    """The daemon's end in these tests: frames in, `send` frames out."""

    def connectionMade(self):
        self.buffer = b""
        self.factory.connections.append(self)

    def dataReceived(self, data):
        self.buffer += data
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            if len(self.buffer) < HEADER.size + size:
                return
            payload = self.buffer[HEADER.size:HEADER.size + size]
            self.buffer = self.buffer[HEADER.size + size:]
            self.factory.on_frame(self, payload)

    def send(self, payload):
        self.transport.write(frame(payload))


class RealListener:
    def __init__(self, port):
        self.port = port
        self.closed = False

    def close(self):
        self.closed = True
        for connection in self.port.factory.connections:
            connection.transport.loseConnection()
        return self.port.stopListening()


class LinkContract:
    """`listen(path, on_frame)` binds the daemon's end; `links` opens the agent's."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sorna-link-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "repl")
        self.received, self.violations = Inbox(), Inbox()

    def open(self):
        link = self.links.open(self.path, self.received, self.violations, MAX_FRAME)
        self.addCleanup(link.close)
        return link

    def echo(self, connection, payload):
        connection.send(b"re:" + payload)

    @defer.inlineCallbacks
    def test_frames_both_ways_in_order(self):
        yield self.listen(self.path, self.echo)
        link = self.open()
        for n in range(5):
            link.send(b"m%d" % n)
        yield self.received.until(5)
        self.assertEqual(self.received.items, [b"re:m%d" % n for n in range(5)])

    @defer.inlineCallbacks
    def test_frames_sent_before_the_daemon_listens_wait_for_it(self):
        link = self.open()
        link.send(b"early")
        yield self.listen(self.path, self.echo)
        yield self.received.until(1)
        self.assertEqual(self.received.items, [b"re:early"])

    @defer.inlineCallbacks
    def test_a_restarted_daemon_is_reached_again(self):
        listener = yield self.listen(self.path, self.echo)
        link = self.open()
        link.send(b"one")
        yield self.received.until(1)
        yield listener.close()
        yield self.listen(self.path, self.echo)
        for _ in range(50):  # the first may go to the old socket while the link notices
            link.send(b"two")
            try:
                yield self.received.until(2, timeout=0.1)
                break
            except defer.TimeoutError:
                continue
        self.assertEqual(self.received.items[:2], [b"re:one", b"re:two"])

    @defer.inlineCallbacks
    def test_a_frame_larger_than_allowed_ends_the_link(self):
        yield self.listen(self.path, lambda c, p: c.send(b"x" * (MAX_FRAME + 1)))
        link = self.open()
        link.send(b"go")
        yield self.violations.until(1)
        self.assertIn(f"{MAX_FRAME + 1} bytes", self.violations.items[0])
        self.assertEqual(self.received.items, [])
        self.assertTrue(link.closed)


class RealLinkTests(LinkContract, TestCase):
    def setUp(self):
        super().setUp()
        self.links = UnixReplLinks(reactor)

    def listen(self, path, on_frame):
        if os.path.lexists(path):
            os.unlink(path)
        factory = protocol.Factory.forProtocol(_ServerSide)
        factory.connections, factory.on_frame = [], on_frame
        d = UNIXServerEndpoint(reactor, path).listen(factory)
        d.addCallback(RealListener)

        def cleanup(listener):
            self.addCleanup(lambda: None if listener.closed else listener.close())
            return listener
        return d.addCallback(cleanup)

    @defer.inlineCallbacks
    def test_a_link_in_place_of_the_socket_is_not_followed(self):
        elsewhere = os.path.join(self.dir, "host-socket")
        yield self.listen(elsewhere, self.echo)
        os.symlink(elsewhere, self.path)
        link = self.open()
        link.send(b"hello?")
        waited = defer.Deferred()
        reactor.callLater(0.3, waited.callback, None)
        yield waited
        self.assertEqual(self.received.items, [])
        self.assertFalse(link._protocol)

    def test_a_starting_daemon_is_looked_for_often_then_less_often(self):
        clock = task.Clock()
        link = UnixReplLinks(reactor, clock).open(self.path, self.received,
                                                  self.violations, MAX_FRAME)
        self.addCleanup(link.close)
        delays = []
        for _ in range(300):
            wait = link._retry.getTime() - clock.seconds()
            delays.append(round(wait, 6))
            clock.advance(wait)
        self.assertEqual(set(delays[:249]), {0.02}, "5 s of looking every 20 ms")
        self.assertEqual(delays[-1], 1.0)

    @defer.inlineCallbacks
    def test_a_burst_of_frames_is_handled_a_turn_at_a_time(self):
        probe = []

        def on_message(payload):
            if not self.received.items:  # runs once the reader gives the reactor back
                reactor.callLater(0, lambda: probe.append(len(self.received.items)))
            self.received(payload)

        burst = b"".join(frame(b"%d" % n) for n in range(1000))  # one read's worth
        yield self.listen(self.path, lambda c, p: c.transport.write(burst))
        link = self.links.open(self.path, on_message, self.violations, MAX_FRAME,
                               frames_per_turn=64)
        self.addCleanup(link.close)
        link.send(b"go")
        yield self.received.until(1000)
        self.assertEqual(self.received.items, [b"%d" % n for n in range(1000)])
        self.assertLessEqual(probe[0], 64, "the reactor waited for the whole burst")


class FakeLinkTests(LinkContract, TestCase):
    def setUp(self):
        super().setUp()
        self.network = FakeNetwork()
        self.links = self.network.repl_links

    def listen(self, path, on_frame):
        return defer.succeed(self.network.listen_repl(path, on_frame))
