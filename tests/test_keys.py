"""`sorna keys`: the folder of a cluster's CurveZMQ keys (sorna/keys.py and the CLI)."""

import io
import os
import stat

import zmq
import zmq.auth
from twisted.trial.unittest import SynchronousTestCase

from sorna import keys
from sorna.client.cli import main
from tests.support import temp_folder


class KeysFolderTests(SynchronousTestCase):
    def setUp(self):
        self.folder = os.path.join(temp_folder(self), "keys")
        self.made = keys.init(self.folder)

    def test_init_makes_every_pair_a_cluster_needs(self):
        names = sorted(os.path.relpath(p, self.folder) for p in self.made)
        self.assertEqual(names, ["agents/agent.key", "agents/agent.key_secret",
                                 "clients/client.key", "clients/client.key_secret",
                                 "manager.key", "manager.key_secret"])
        for path in self.made:
            public, secret = zmq.auth.load_certificate(path)
            self.assertEqual(len(public), 40)
            if path.endswith("_secret"):
                self.assertEqual(zmq.curve_public(secret), public)
                self.assertEqual(zmq.auth.load_certificate(path[:-len("_secret")])[0],
                                 public)

    def test_secrets_are_for_the_owner_only(self):
        for path in self.made:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            self.assertEqual(mode, 0o600 if path.endswith("_secret") else 0o644, path)
        for folder in (self.folder, os.path.join(self.folder, "agents")):
            self.assertEqual(stat.S_IMODE(os.stat(folder).st_mode), 0o700)

    def test_the_pairs_complete_a_curve_handshake(self):
        manager_public, manager_secret = zmq.auth.load_certificate(
            os.path.join(self.folder, "manager.key_secret"))
        client_public, client_secret = zmq.auth.load_certificate(
            os.path.join(self.folder, "clients", "client.key_secret"))
        context = zmq.Context()
        self.addCleanup(context.term)
        server = context.socket(zmq.REP)
        server.curve_server, server.curve_secretkey = True, manager_secret
        port = server.bind_to_random_port("tcp://127.0.0.1")
        client = context.socket(zmq.REQ)
        client.curve_serverkey = manager_public
        client.curve_publickey, client.curve_secretkey = client_public, client_secret
        client.connect(f"tcp://127.0.0.1:{port}")
        for sock in (server, client):
            sock.linger = 0
            self.addCleanup(sock.close)
        client.send(b"ping")
        self.assertTrue(server.poll(5000))
        self.assertEqual(server.recv(), b"ping")

    def test_allowed_keys_are_the_public_files_and_deleting_one_revokes_it(self):
        [first] = keys.allowed(self.folder, "agents")
        keys.add(self.folder, "agents", "host-2")
        second = zmq.auth.load_certificate(
            os.path.join(self.folder, "agents", "host-2.key"))[0]
        self.assertEqual(keys.allowed(self.folder, "agents"), {first, second})
        os.unlink(os.path.join(self.folder, "agents", "agent.key"))
        self.assertEqual(keys.allowed(self.folder, "agents"), {second})
        self.assertNotIn(second, keys.allowed(self.folder, "clients"))

    def test_init_never_replaces_a_clusters_keys(self):
        before = open(os.path.join(self.folder, "manager.key_secret")).read()
        e = self.assertRaises(keys.KeysError, keys.init, self.folder)
        self.assertIn("holds a cluster's keys already", str(e))
        self.assertEqual(open(os.path.join(self.folder, "manager.key_secret")).read(),
                         before)

    def test_bad_names_and_folders_are_refused_with_what_to_do(self):
        for name in ("", "../x", "a/b", ".hidden", "x" * 65, "two words"):
            e = self.assertRaises(keys.KeysError, keys.add, self.folder, "agents", name)
            self.assertIn("cannot name a key", str(e))
        e = self.assertRaises(keys.KeysError, keys.add, self.folder, "agents", "agent")
        self.assertIn("exists already", str(e))
        empty = temp_folder(self)
        e = self.assertRaises(keys.KeysError, keys.add, empty, "clients", "c")
        self.assertIn(f"sorna keys init {empty}", str(e))
        self.assertEqual(os.listdir(empty), [])


class KeysCommandTests(SynchronousTestCase):
    def run_cli(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        return main(list(argv), stdout=out, stderr=err), out.getvalue(), err.getvalue()

    def test_init_and_add_list_what_they_made(self):
        folder = os.path.join(temp_folder(self), "k")
        code, out, err = self.run_cli("keys", "init", folder)
        self.assertEqual((code, err), (0, ""))
        self.assertIn(f"secret  {folder}/manager.key_secret", out)
        code, out, err = self.run_cli("keys", "add-client", folder, "web-ide")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out.splitlines(), [f"public  {folder}/clients/web-ide.key",
                                            f"secret  {folder}/clients/web-ide.key_secret"])

    def test_errors_go_to_stderr_with_a_nonzero_exit(self):
        folder = temp_folder(self)
        code, out, err = self.run_cli("keys", "add-agent", folder, "a")
        self.assertNotEqual(code, 0)
        self.assertEqual(out, "")
        self.assertIn("holds no cluster keys", err)
