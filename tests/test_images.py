"""Tests of the image builder (apt parsing, when the base is rebuilt) and of the built
python3 kernel image."""

import io
import os

from twisted.trial.unittest import SynchronousTestCase, TestCase

from sorna import language_spec
from sorna.images import build, rootfs
from sorna.images.build import ImageBuildError, available_langs, build_images
from sorna.images.rootfs import (BASE_RECIPE_LABEL, ROOTFS_IMAGE, base_rebuild_reason,
                                 base_recipe_hash)
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
        for lang, spec in (("python3", True), ("nodejs", True), ("notes", False)):
            os.makedirs(os.path.join(repl, lang))
            if spec:
                open(os.path.join(repl, lang, "language.toml"), "w").close()
        self.assertEqual(available_langs(repl), ["nodejs", "python3"])

    def test_repo_has_python3(self):
        self.assertIn("python3", available_langs())

    def test_unknown_lang_is_refused_before_any_work(self):
        e = self.assertRaises(ImageBuildError, build_images, ["intercal"])
        self.assertIn("intercal", str(e))


class BaseRecipeTests(SynchronousTestCase):
    """The base is rebuilt when its recipe label differs, not only when it is missing."""

    def test_hash_is_stable_and_follows_the_package_list(self):
        self.assertEqual(base_recipe_hash(), base_recipe_hash())
        self.assertRegex(base_recipe_hash(), r"^[0-9a-f]{16}$")
        before = base_recipe_hash()
        self.patch(rootfs, "BASE_PACKAGES", rootfs.BASE_PACKAGES + ["python3-scipy"])
        self.assertNotEqual(base_recipe_hash(), before)

    def test_hash_follows_the_steps_version(self):
        before = base_recipe_hash()
        self.patch(rootfs, "BASE_STEPS_VERSION", rootfs.BASE_STEPS_VERSION + 1)
        self.assertNotEqual(base_recipe_hash(), before)

    def test_the_base_is_language_neutral_and_python3_plots(self):
        self.assertEqual(rootfs.BASE_PACKAGES, ["python3", "python3-msgpack",
                                                "ca-certificates"])
        python3 = language_spec.get("python3").packages
        for package in ("python3-matplotlib", "python3-numpy", "fonts-dejavu-core"):
            self.assertIn(package, python3)

    def test_layer_stacks_come_from_the_language_folders(self):
        stacks = {name: lang.stack for name, lang in language_spec.languages().items()}
        self.assertEqual(stacks["bash"], ())
        self.assertEqual(stacks["cpp"], ("gcc", "clang", "cpp"))
        self.assertEqual(stacks["rust"], ("gcc", "rust"))
        self.assertEqual(stacks["c"], ("gcc", "clang"))  # toolchain layers, shared

    def test_the_heaviest_language_starts_first(self):
        specs = language_spec.languages()
        order = build.heaviest_first(sorted(specs), specs)
        self.assertEqual(order[0], "python3")  # its scientific stack takes minutes
        self.assertEqual(sorted(order), sorted(specs))

    def test_reasons(self):
        current = base_recipe_hash()
        self.assertIn("missing", base_rebuild_reason(None))
        self.assertIn("no io.sorna.base-recipe label", base_rebuild_reason({}))
        reason = base_rebuild_reason({BASE_RECIPE_LABEL: "0123456789abcdef"})
        self.assertIn("0123456789abcdef", reason)
        self.assertIn(current, reason)
        self.assertIsNone(base_rebuild_reason({BASE_RECIPE_LABEL: current}))


class _Image:
    def __init__(self, id, labels):
        self.id, self.labels = id, labels


class _Images:
    def __init__(self, images):
        self.images = images

    def get(self, tag):
        import docker

        if tag not in self.images:
            raise docker.errors.ImageNotFound(tag)
        return self.images[tag]

    def remove(self, image_id):
        pass


class _Client:
    def __init__(self, images):
        self.images = _Images(images)


class BuildDecisionTests(SynchronousTestCase):
    """build_images with a stub engine: which steps it takes, and what it says."""

    def setUp(self):
        self.steps = []
        self.patch(build, "build_base_image",
                   lambda client, mirror, progress: self.steps.append("base"))
        self.labels = {}

        def build_image(client, tag, context, repl_dir, tars, progress, dockerfile=None,
                        labels=None):
            self.labels[tag] = labels
            self.steps.append(tag.split("/")[1].split(":")[0])
            return tag

        self.changes = {}

        def commit(client, base, tag, changes=(), tar=None):
            self.labels[tag] = [c for c in changes if c.startswith("LABEL io.sorna.ver")]
            self.changes[tag] = [c for c in changes if c.startswith("LABEL io.sorna.pac")]
            self.steps.append(tag.split("/")[1].split(":")[0])
            return tag

        self.patch(build, "build_docker_image", build_image)
        self.patch(build, "commit_image", commit)
        self.patch(build, "language_version", lambda client, image, lang, progress:
                   f"{lang.name}-1.0")
        self.patch(build.Layers, "image", lambda self, lang, progress=None, added=():
                   ROOTFS_IMAGE)

    def build(self, base_labels, **kwargs):
        images = {} if base_labels is None else {ROOTFS_IMAGE: _Image("sha256:b",
                                                                       base_labels)}
        out = io.StringIO()
        build_images(["python3"], out=out, client=_Client(images), **kwargs)
        return out.getvalue()

    def test_current_base_is_kept(self):
        out = self.build({BASE_RECIPE_LABEL: base_recipe_hash()})
        self.assertEqual(self.steps, ["kernel-base", "kernel-python3"])
        self.assertIn("is current", out)

    def test_the_language_image_is_labelled_with_its_version(self):
        self.build({BASE_RECIPE_LABEL: base_recipe_hash()})
        self.assertEqual(self.labels["sorna/kernel-python3:latest"],
                         ['LABEL io.sorna.version="python3-1.0"'])

    def test_a_failed_language_is_named_and_the_others_are_built(self):
        def version(client, image, lang, progress):
            if lang.name == "ruby":
                raise build.ImageBuildError("no version")
            return "1.0"

        self.patch(build, "language_version", version)
        images = {ROOTFS_IMAGE: _Image("sha256:b", {BASE_RECIPE_LABEL: base_recipe_hash()})}
        e = self.assertRaises(build.ImageBuildError, build_images, ["python3", "ruby", "lua"],
                              out=io.StringIO(), client=_Client(images), jobs=2)
        self.assertIn("ruby: no version", str(e))
        self.assertIn("1 of 3 language image(s) failed", str(e))
        self.assertEqual(sorted(self.steps), ["kernel-base", "kernel-lua", "kernel-python3"])

    def test_added_packages_are_a_layer_recorded_in_a_label_and_kept(self):
        layered = []
        self.patch(build.Layers, "image", lambda self, lang, progress=None, added=():
                   layered.append((lang.name, list(added))) or ROOTFS_IMAGE)
        kernel = _Image("sha256:k", {"io.sorna.packages": "lua-cjson"})
        images = {ROOTFS_IMAGE: _Image("sha256:b", {BASE_RECIPE_LABEL: base_recipe_hash()}),
                  "sorna/kernel-lua:latest": kernel}
        build_images(["lua"], out=io.StringIO(), client=_Client(images),
                     add=["lua-lpeg"])
        self.assertEqual(layered, [("lua", ["lua-cjson", "lua-lpeg"])])
        self.assertEqual(self.changes["sorna/kernel-lua:latest"],
                         ['LABEL io.sorna.packages="lua-cjson,lua-lpeg"'])
        build_images(["lua"], out=io.StringIO(), client=_Client(images),
                     remove=["lua-cjson"])
        self.assertEqual(layered[-1], ("lua", []))  # the image records no package now

    def test_packages_are_added_to_named_languages_only(self):
        e = self.assertRaises(build.ImageBuildError, build_images, None,
                              out=io.StringIO(), client=_Client({}), add=["htop"])
        self.assertIn("sorna images build LANG --with PACKAGE", str(e))

    def test_missing_base_is_built(self):
        out = self.build(None)
        self.assertEqual(self.steps, ["base", "kernel-base", "kernel-python3"])
        self.assertIn("is missing", out)

    def test_changed_recipe_rebuilds_the_base(self):
        out = self.build({BASE_RECIPE_LABEL: "0000000000000000"})
        self.assertEqual(self.steps, ["base", "kernel-base", "kernel-python3"])
        self.assertIn("was built from recipe 0000000000000000", out)

    def test_unlabelled_base_is_rebuilt(self):
        self.build({"io.sorna.base": "debian-bookworm"})
        self.assertEqual(self.steps, ["base", "kernel-base", "kernel-python3"])

    def test_rebuild_base_flag(self):
        out = self.build({BASE_RECIPE_LABEL: base_recipe_hash()}, rebuild_base=True)
        self.assertEqual(self.steps, ["base", "kernel-base", "kernel-python3"])
        self.assertIn("--rebuild-base was given", out)


class Python3ImageTests(TestCase):
    """Checks the image `sorna images build python3` produced, with the real engine."""

    def setUp(self):
        self.client = require_docker()
        self.image = require_image(self.client, "sorna/kernel-python3:latest")

    def test_labels(self):
        labels = self.image.labels
        self.assertEqual(labels["io.sorna.lang"], "python3")
        self.assertEqual(labels["io.sorna.aliases"].split(","), ["python", "py3", "py"])
        self.assertEqual(labels["io.sorna.memory"], "256m")
        self.assertEqual(labels["io.sorna.exec-timeout"], "60")
        out = self.client.containers.run("sorna/kernel-python3:latest", [
            "python3", "-c", "import platform; print(platform.python_version())"],
            **HARDENED)
        self.assertEqual(labels["io.sorna.version"], out.decode().strip())

    def test_runs_hardened_as_uid_1000(self):
        out = self.client.containers.run(
            "sorna/kernel-python3:latest",
            ["python3", "-c", "import msgpack, os; print(os.getuid())"],
            **HARDENED)
        self.assertEqual(out.decode().strip(), "1000")

    def test_daemon_is_the_default_command(self):
        config = self.image.attrs["Config"]
        self.assertEqual(config["Cmd"], ["python3", "-I", "/opt/sorna/runner.py"])
        self.assertEqual(config["WorkingDir"], "/home/work")
        self.assertEqual(config["User"], "1000:1000")

    def test_matplotlib_environment(self):
        env = dict(item.split("=", 1) for item in self.image.attrs["Config"]["Env"])
        self.assertEqual(env["MPLBACKEND"], "Agg")
        self.assertEqual(env["MPLCONFIGDIR"], "/tmp/matplotlib")

    def test_base_carries_the_current_recipe(self):
        base = self.client.images.get(ROOTFS_IMAGE)
        self.assertEqual(base.labels.get(BASE_RECIPE_LABEL), base_recipe_hash(),
                         "the base is outdated: run `sorna images build`")

    def test_matplotlib_draws_text_with_a_read_only_root(self):
        code = ("import io, matplotlib, matplotlib.pyplot as plt, numpy as np\n"
                "import matplotlib.font_manager as fm\n"
                "fig = plt.figure(figsize=(4, 3), dpi=100)\n"
                "plt.plot(np.linspace(0, 1, 5)); plt.title('Sorna')\n"
                "buf = io.BytesIO(); fig.savefig(buf, format='png')\n"
                "font = fm.findfont(fm.FontProperties(family='DejaVu Sans'), "
                "fallback_to_default=False)\n"
                "print(matplotlib.get_backend(), buf.getvalue()[:4], "
                "font.endswith('.ttf'))")
        out = self.client.containers.run(
            "sorna/kernel-python3:latest", ["python3", "-c", code],
            tmpfs={"/tmp": "size=64m", "/home/work": "size=64m,uid=1000,gid=1000"},
            **HARDENED)
        self.assertEqual(out.decode().strip(), "agg b'\\x89PNG' True")


class ImageSettingsTests(TestCase):
    """Every language image holds the settings its folder makes, character for
    character (the engine substitutes `$` in instructions unless escaped)."""

    def test_each_images_environment_is_its_folders(self):
        from sorna.images.config import environment

        client = require_docker()
        for name, lang in language_spec.languages().items():
            image = require_image(client, f"sorna/kernel-{name}:latest")
            env = dict(e.split("=", 1) for e in image.attrs["Config"]["Env"])
            for key, value in environment(lang):
                self.assertEqual(env.get(key), value, f"{name}: {key}")
