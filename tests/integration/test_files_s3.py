"""Files of a kernel's work folder, end to end: upload, list and download through the agent,
paths that would leave the folder refused, and the export of what an execution writes to
S3 (a real moto server on 127.0.0.1; AWS is never contacted)."""

import time
import uuid

from twisted.python import log

from sorna.testing.s3 import MotoServer, moto_server_path
from tests.integration import ClusterTestCase

MAX_FILE_SIZE = 16 << 20
BINARY = bytes(range(256)) * 64


class FilesTestCase(ClusterTestCase):
    def create(self):
        kernel_id = self.client.create("python3")["kernel_id"]
        self.destroy_later(self.client, kernel_id)
        return kernel_id

    def run_ok(self, kernel_id, code, **fields):
        result = self.client.execute(kernel_id, code, **fields)
        self.assertEqual(result["exceptions"], [], result["exceptions"])
        return result


class FileTests(FilesTestCase):
    def setUp(self):
        super().setUp()
        self.manager, self.agent = self.start_cluster()
        self.client = self.client(self.manager)
        self.kernel_id = self.create()

    def assertStateKept(self):
        self.assertEqual(self.run_ok(self.kernel_id, "x")["stdout"], "5\n",
                         "a refused request disturbed the kernel")

    def test_upload_list_download_and_use_from_code(self):
        kid = self.kernel_id
        reply = self.client.upload(kid, "in.txt", b"hello from the front-end\n")
        self.assertEqual((reply["path"], reply["size"]), ("in.txt", 25))
        self.client.upload(kid, "data/deep/blob.bin", BINARY)

        entries = {e["name"]: e for e in self.client.list_files(kid)}
        self.assertEqual((entries["in.txt"]["type"], entries["in.txt"]["size"]), ("file", 25))
        self.assertEqual(entries["data"]["type"], "dir")
        [blob] = self.client.list_files(kid, "data/deep")
        self.assertEqual((blob["name"], blob["type"], blob["size"]),
                         ("blob.bin", "file", len(BINARY)))

        self.assertEqual(self.client.download(kid, "in.txt"), b"hello from the front-end\n")
        self.assertEqual(self.client.download(kid, "data/deep/blob.bin"), BINARY)
        self.assertEqual(self.run_ok(kid, "open('in.txt').read()")["stdout"],
                         "'hello from the front-end\\n'\n")
        self.assertEqual(self.run_ok(kid, "len(open('data/deep/blob.bin', 'rb').read())")
                         ["stdout"], f"{len(BINARY)}\n")

    def test_files_the_code_writes_can_be_downloaded(self):
        kid = self.kernel_id
        result = self.run_ok(kid, "with open('out.txt', 'w') as f:\n    f.write('written\\n')\n"
                                  "import os\nos.makedirs('res', exist_ok=True)\n"
                                  "open('res/b.bin', 'wb').write(bytes(range(256)) * 64)")
        self.assertEqual(sorted(result["files"]), ["out.txt", "res/b.bin"])
        self.assertEqual(self.client.download(kid, "out.txt"), b"written\n")
        self.assertEqual(self.client.download(kid, "res/b.bin"), BINARY)
        self.assertError(self.error_of(self.client.download, kid, "missing.txt"),
                         404, "no-such-file")

    def test_paths_leaving_the_work_folder_are_refused(self):
        kid = self.kernel_id
        self.run_ok(kid, "x = 5")
        for path in ("../x", "a/../../x", "/etc/passwd", "a\x00b"):
            with self.subTest(path=path):
                self.assertError(self.error_of(self.client.download, kid, path),
                                 400, "bad-path")
                self.assertError(self.error_of(self.client.upload, kid, path, b"evil"),
                                 400, "bad-path")
                self.assertStateKept()

    def test_a_symlink_out_of_the_work_folder_is_not_followed(self):
        kid = self.kernel_id
        self.run_ok(kid, "x = 5\nimport os\nos.symlink('/etc/passwd', 'link')\n"
                         "os.symlink('/etc', 'etc')")
        attempts = [
            ("download link", self.client.download, (kid, "link")),
            ("download etc/passwd", self.client.download, (kid, "etc/passwd")),
            ("upload link", self.client.upload, (kid, "link", b"evil")),
            ("upload etc/evil", self.client.upload, (kid, "etc/evil", b"evil")),
            ("list etc", self.client.list_files, (kid, "etc")),
        ]
        for what, fn, args in attempts:
            with self.subTest(what):
                self.assertError(self.error_of(fn, *args), 400, "bad-path")
                self.assertStateKept()
        # The links themselves are listed as links, not followed.
        entries = {e["name"]: e["type"] for e in self.client.list_files(kid)}
        self.assertEqual((entries["link"], entries["etc"]), ("link", "link"))

    def test_an_upload_over_16_mib_is_too_large(self):
        kid = self.kernel_id
        self.run_ok(kid, "x = 5")
        error = self.error_of(self.client.upload, kid, "big.bin", b"\0" * (MAX_FILE_SIZE + 1))
        self.assertEqual(error.code, 413, error.cause)
        self.assertStateKept()
        self.assertNotIn("big.bin", [e["name"] for e in self.client.list_files(kid)])
        # Exactly the limit still goes through.
        reply = self.client.upload(kid, "big.bin", b"\0" * MAX_FILE_SIZE)
        self.assertEqual(reply["size"], MAX_FILE_SIZE)


class S3ExportTests(FilesTestCase):
    def setUp(self):
        super().setUp()
        if moto_server_path() is None:
            self.skipTest("moto_server is not installed (pip install -e '.[test]')")
        self.s3 = MotoServer()
        self.addCleanup(self.s3.remove)
        self.s3.start()
        self.bucket = f"sorna-it-{uuid.uuid4().hex[:12]}"
        self.s3.client().create_bucket(Bucket=self.bucket)
        self.manager, self.agent = self.start_cluster(agent_kw={
            "env": self.s3.env(),
            "extra_args": ["--s3-bucket", self.bucket, "--s3-endpoint", self.s3.url]})
        self.client = self.client(self.manager)

    def s3_object(self, key):
        return self.s3.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def s3_keys(self):
        listing = self.s3.client().list_objects_v2(Bucket=self.bucket)
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def test_written_files_go_to_s3_and_a_dead_s3_only_costs_the_export(self):
        kid = self.create()
        result = self.run_ok(kid, "import os\nopen('out.txt', 'w').write('result\\n')\n"
                                  "os.makedirs('plots', exist_ok=True)\n"
                                  "open('plots/fig.png', 'wb').write(bytes(range(256)) * 64)\n"
                                  "open('.secret', 'w').write('hidden')", entry_id="e1")
        self.assertEqual(sorted(result["files"]),
                         [f"s3://{self.bucket}/e1/out.txt",
                          f"s3://{self.bucket}/e1/plots/fig.png"])
        self.assertEqual(self.s3_keys(), ["e1/out.txt", "e1/plots/fig.png"])
        self.assertEqual(self.s3_object("e1/out.txt"), b"result\n")
        self.assertEqual(self.s3_object("e1/plots/fig.png"), BINARY)

        # Without an entry id, the kernel id is the prefix; unchanged files stay put.
        result = self.run_ok(kid, "open('again.txt', 'w').write('again')")
        self.assertEqual(result["files"], [f"s3://{self.bucket}/{kid}/again.txt"])
        self.assertEqual(self.s3_object(f"{kid}/again.txt"), b"again")

        self.s3.stop()
        started = time.monotonic()
        result = self.run_ok(kid, "open('lost.txt', 'w').write('lost')\nprint('still here')",
                             entry_id="e2")
        log.msg(f"measured: an execution whose export finds S3 down: "
                f"{time.monotonic() - started:.3f} s")
        self.assertEqual(result["stdout"], "still here\n")
        self.assertNotIn(f"s3://{self.bucket}/e2/lost.txt", result["files"])
        self.assertEqual(result["files"], [])
        self.agent.wait_for_log("could not export lost.txt", 10)
        self.assertEqual(self.run_ok(kid, "print(6 * 7)")["stdout"], "42\n")
        # The cleanup checks that the agent logged no traceback.
