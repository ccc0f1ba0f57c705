"""The gateway's tokens file: made, listed, removed, kept hashed, reloaded."""

import io
import json
import os
import stat

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sorna.client import cli
from sorna.cluster_keys import KeyWatch
from sorna.gateway import tokens
from tests.support import temp_folder


def name(tenant):
    return tenant.name if tenant is not None else None


class TokensFileTests(SynchronousTestCase):
    def setUp(self):
        self.path = os.path.join(temp_folder(self), "tokens")

    def test_a_token_is_stored_hashed_for_its_owner_only(self):
        token = tokens.add(self.path, "web")
        with open(self.path) as f:
            document = f.read()
        self.assertNotIn(token, document)
        self.assertEqual(json.loads(document)["tokens"]["web"]["sha256"],
                         tokens.digest(token))
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(tokens.names(self.path), ["web"])

    def test_the_ring_knows_tokens_by_value_and_forgets_removed_ones(self):
        token = tokens.add(self.path, "web")
        ring = tokens.TokenRing(self.path)
        self.assertEqual(name(ring.tenant_of(token)), "web")
        for other in (None, "", token + "x", 7, "x" * 1000):
            self.assertIsNone(ring.tenant_of(other))
        tokens.remove(self.path, "web")
        self.assertEqual(ring.replace(ring.read()), (0, 1))
        self.assertIsNone(name(ring.tenant_of(token)))

    def test_the_watch_reloads_a_changed_file(self):
        first = tokens.add(self.path, "first")
        ring = tokens.TokenRing(self.path)
        clock = Clock()
        watch = KeyWatch.for_clock(ring, clock)
        watch.startService()
        self.addCleanup(watch.stopService)
        second = tokens.add(self.path, "second")
        tokens.remove(self.path, "first")
        clock.advance(watch.interval)
        self.assertEqual((name(ring.tenant_of(first)), name(ring.tenant_of(second))), (None, "second"))

    def test_a_change_before_the_watch_starts_is_not_missed(self):
        """The ring is read when the process starts, the watch looks later: what changed
        in between is loaded at the watch's first look, not at the next change."""
        ring = tokens.TokenRing(self.path)
        second = tokens.add(self.path, "second")
        watch = KeyWatch.for_clock(ring, Clock())
        watch.startService()
        self.addCleanup(watch.stopService)
        self.assertEqual(name(ring.tenant_of(second)), "second")

    def test_bad_names_duplicates_and_files_are_errors_that_say_what_to_do(self):
        tokens.add(self.path, "web")
        with self.assertRaisesRegex(tokens.TokensError, "already"):
            tokens.add(self.path, "web")
        with self.assertRaisesRegex(tokens.TokensError, "cannot name"):
            tokens.add(self.path, "a b")
        with self.assertRaisesRegex(tokens.TokensError, "has no token named 'x'"):
            tokens.remove(self.path, "x")
        with open(self.path, "w") as f:
            f.write("[1, 2]")
        with self.assertRaisesRegex(tokens.TokensError, "not a tokens file"):
            tokens.names(self.path)


class TokensCommandTests(SynchronousTestCase):
    def run_cli(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(list(argv), out, err)
        return code, out.getvalue(), err.getvalue()

    def test_add_prints_the_token_last_and_remove_revokes_it(self):
        path = os.path.join(temp_folder(self), "tokens")
        code, out, _ = self.run_cli("tokens", "add", "web", "--file", path)
        self.assertEqual(code, 0)
        token = out.splitlines()[-1]
        self.assertEqual(name(tokens.TokenRing(path).tenant_of(token)), "web")
        self.assertEqual(self.run_cli("tokens", "list", "--file", path)[1],
                         "web\tuser\tdefault quotas\n")
        self.assertEqual(self.run_cli("tokens", "remove", "web", "--file", path)[0], 0)
        code, _, err = self.run_cli("tokens", "remove", "web", "--file", path)
        self.assertEqual(code, cli.EXIT_ERROR)
        self.assertIn("no token named 'web'", err)

    def test_roles_and_quotas_are_set_listed_and_checked(self):
        path = os.path.join(temp_folder(self), "tokens")
        code, out, _ = self.run_cli("tokens", "add", "ops", "--admin", "--file", path)
        ops = out.splitlines()[-1]
        self.run_cli("tokens", "add", "web", "--max-kernels", "3", "--file", path)
        self.assertEqual(self.run_cli("tokens", "list", "--file", path)[1],
                         "ops\tadmin\tdefault quotas\nweb\tuser\tmax-kernels=3\n")
        self.assertEqual(self.run_cli("tokens", "set", "web", "--max-runs", "0",
                                      "--max-kernels", "-1", "--file", path)[0], 0)
        self.assertEqual(self.run_cli("tokens", "set", "ops", "--no-admin", "--file",
                                      path)[0], 0)
        self.assertEqual(self.run_cli("tokens", "list", "--file", path)[1],
                         "ops\tuser\tdefault quotas\nweb\tuser\tmax-runs=0\n")
        ring = tokens.TokenRing(path)
        self.assertEqual((ring.tenant_of(ops).admin, ring.tenant_of(ops).max_kernels),
                         (False, None))
        code, _, err = self.run_cli("tokens", "set", "web", "--max-kernels", "-5",
                                    "--file", path)
        self.assertEqual(code, cli.EXIT_ERROR)
        self.assertIn("--max-kernels must be 0-", err)


class TokenRingTests(SynchronousTestCase):
    def test_listeners_hear_of_changes_and_a_demoted_admin_is_not_held(self):
        path = os.path.join(temp_folder(self), "tokens")
        ops = tokens.add(path, "ops", admin=True)
        ring = tokens.TokenRing(path)
        heard = []
        ring.listeners.append(heard.append)
        tenant = ring.tenant_of(ops)
        tokens.update(path, "ops", max_kernels=2)
        ring.replace(ring.read())
        self.assertTrue(ring.holds(tenant), "a quota change keeps what the token opened")
        tokens.update(path, "ops", admin=False)
        ring.replace(ring.read())
        self.assertFalse(ring.holds(tenant))
        self.assertEqual(heard, [ring, ring])

    def test_a_file_with_a_bad_role_or_quota_is_refused(self):
        path = os.path.join(temp_folder(self), "tokens")
        for entry in ({"admin": "yes"}, {"max_kernels": -1}, {"max_runs": 1.5},
                      {"max_kernels": True}):
            with open(path, "w") as f:
                json.dump({"tokens": {"web": dict({"sha256": "0" * 64}, **entry)}}, f)
            with self.assertRaisesRegex(tokens.TokensError, "not a tokens file"):
                tokens.tenants(path)
