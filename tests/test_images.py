"""Tests of the image builder's apt parsing and of the built python3 kernel image."""

import os

from twisted.trial.unittest import SynchronousTestCase, TestCase

from sorna.images.build import ImageBuildError, available_langs, build_images
from sorna.images.mirror import MirrorNotFound, find_debian_mirror, parse_apt_proxy
from tests.support import require_docker, require_image

HARDENED = dict(network_mode="none", read_only=True, cap_drop=["ALL"],
                security_opt=["no-new-privileges"], remove=True)

DEB822 = """\
Types: deb
URIs: http://security.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

# a disabled stanza comes before the real one
Types: deb
URIs: http://disabled.example.org/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb-src deb
URIs: http://mirror.example.org/debian/
 http://second.example.org/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

THIRD_PARTY = """\
Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
"""


class MirrorTests(SynchronousTestCase):
    def etc_apt(self, files):
        root = self.mktemp()
        os.makedirs(os.path.join(root, "sources.list.d"))
        for name, text in files.items():
            with open(os.path.join(root, name), "w") as fh:
                fh.write(text)
        return root

    def test_deb822_skips_other_suites_and_disabled_stanzas(self):
        root = self.etc_apt({"sources.list.d/a-nodesource.sources": THIRD_PARTY,
                             "sources.list.d/debian.sources": DEB822})
        self.assertEqual(find_debian_mirror("bookworm", root),
                         "http://mirror.example.org/debian")

    def test_one_line_format_with_options(self):
        root = self.etc_apt({
            "sources.list": (
                "# deb http://commented.example.org/debian bookworm main\n"
                "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
                "deb-src http://src.example.org/debian bookworm main\n"
                "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] "
                "http://one.example.org/debian bookworm contrib main non-free\n")})
        self.assertEqual(find_debian_mirror("bookworm", root),
                         "http://one.example.org/debian")

    def test_sources_list_d_list_files(self):
        root = self.etc_apt({
            "sources.list": "deb http://old.example.org/debian bullseye main\n",
            "sources.list.d/mirror.list":
                "deb http://two.example.org/debian bookworm main # comment\n",
            "sources.list.d/ignored.list.disabled":
                "deb http://disabled.example.org/debian bookworm main\n"})
        self.assertEqual(find_debian_mirror("bookworm", root),
                         "http://two.example.org/debian")

    def test_component_main_required(self):
        root = self.etc_apt({"sources.list":
                             "deb http://x.example.org/debian bookworm contrib\n"})
        self.assertRaises(MirrorNotFound, find_debian_mirror, "bookworm", root)

    def test_none_found(self):
        root = self.etc_apt({"sources.list.d/node.sources": THIRD_PARTY})
        e = self.assertRaises(MirrorNotFound, find_debian_mirror, "bookworm", root)
        self.assertIn("--mirror URL", str(e))

    def test_missing_folder(self):
        e = self.assertRaises(MirrorNotFound, find_debian_mirror, "bookworm",
                              self.mktemp())
        self.assertIn("--mirror URL", str(e))


class ProxyTests(SynchronousTestCase):
    def test_both_proxies(self):
        dump = ('APT "";\n'
                'Acquire "";\n'
                'Acquire::http "";\n'
                'Acquire::http::Proxy "http://proxy.example.org:3128/";\n'
                'Acquire::http::Proxy::deb.example.org "DIRECT";\n'
                'Acquire::https::Proxy "http://proxy.example.org:3129/";\n')
        self.assertEqual(parse_apt_proxy(dump),
                         {"http_proxy": "http://proxy.example.org:3128/",
                          "https_proxy": "http://proxy.example.org:3129/"})

    def test_no_proxy(self):
        self.assertEqual(parse_apt_proxy('APT::Architecture "amd64";\n'), {})

    def test_direct_and_empty_are_no_proxy(self):
        dump = 'Acquire::http::Proxy "DIRECT";\nAcquire::https::Proxy "";\n'
        self.assertEqual(parse_apt_proxy(dump), {})


class LangTests(SynchronousTestCase):
    def test_available_langs(self):
        repl = self.mktemp()
        for lang, dockerfile in (("python3", True), ("nodejs", True), ("notes", False)):
            os.makedirs(os.path.join(repl, lang))
            if dockerfile:
                open(os.path.join(repl, lang, "Dockerfile"), "w").close()
        self.assertEqual(available_langs(repl), ["nodejs", "python3"])

    def test_repo_has_python3(self):
        self.assertIn("python3", available_langs())

    def test_unknown_lang_is_refused_before_any_work(self):
        e = self.assertRaises(ImageBuildError, build_images, ["cobol"])
        self.assertIn("cobol", str(e))


class Python3ImageTests(TestCase):
    """Checks the image `sorna images build python3` produced, with the real engine."""

    def setUp(self):
        self.client = require_docker()
        self.image = require_image(self.client, "sorna/kernel-python3:latest")

    def test_labels(self):
        labels = self.image.labels
        self.assertEqual(labels["io.sorna.lang"], "python3")
        self.assertEqual(labels["io.sorna.aliases"].split(","),
                         ["python", "python3", "py3"])
        self.assertEqual(labels["io.sorna.memory"], "256m")
        self.assertEqual(labels["io.sorna.exec-timeout"], "60")

    def test_runs_hardened_as_uid_1000(self):
        out = self.client.containers.run(
            "sorna/kernel-python3:latest",
            ["python3", "-c", "import zmq, msgpack, os; print(os.getuid())"],
            **HARDENED)
        self.assertEqual(out.decode().strip(), "1000")

    def test_daemon_is_the_default_command(self):
        config = self.image.attrs["Config"]
        self.assertEqual(config["Cmd"], ["python3", "-I", "/opt/sorna/run.py"])
        self.assertEqual(config["WorkingDir"], "/home/work")
        self.assertEqual(config["User"], "1000:1000")
