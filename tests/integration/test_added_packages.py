"""An operator adds packages to a language's image with one command (`sorna images build
LANG --with PACKAGE`): a Debian package, and one from PyPI where the folder says how;
the image records them, a later plain build keeps them, `--without` takes them out.
Against the real Docker engine, Debian's mirror and PyPI."""

import glob
import os
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from sorna.images.host import CACHE_DIR
from tests.support import require_docker, require_image

IMAGE = "sorna/kernel-python3:latest"
ADDED = ["python3-tabulate", "pip:tomli-w"]
IMPORTS = "import tabulate, tomli_w; print(tomli_w.dumps({'x': 1}).strip())"


class AddedPackagesTests(SynchronousTestCase):
    def setUp(self):
        self.docker = require_docker()
        require_image(self.docker, IMAGE)
        if self.docker.images.get(IMAGE).labels.get("io.sorna.packages"):
            self.fail(f"{IMAGE} has packages added already; this test adds its own")
        self.forget_added_layers()

    def forget_added_layers(self):
        """The cache keeps every layer it built, an earlier run's of these packages too;
        without them this test sees the layer built, not found current."""
        for path in glob.glob(os.path.join(CACHE_DIR, "layers", "python3-added-*")):
            subprocess.run(["rm", "-rf", "--one-file-system", path], check=True)
        for image in self.docker.images.list("sorna/kernel-layers"):
            for tag in image.tags:
                if tag.startswith("sorna/kernel-layers:python3-added-"):
                    self.docker.images.remove(tag)

    def sorna_images_build(self, *args):
        done = subprocess.run(["sorna", "images", "build", "python3", *args],
                              capture_output=True, text=True, timeout=900)
        self.assertEqual(done.returncode, 0, done.stdout[-3000:] + done.stderr[-2000:])
        return done.stdout

    def run_in_image(self, code):
        return subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--read-only", "--user",
             "1000:1000", IMAGE, "python3", "-c", code],
            capture_output=True, text=True, timeout=120)

    def test_added_packages_are_installed_kept_and_taken_out(self):
        self.addCleanup(subprocess.run, ["sorna", "images", "build", "python3",
                                         *[f"--without={p}" for p in ADDED]],
                        capture_output=True, timeout=900)
        out = self.sorna_images_build(*[f"--with={p}" for p in ADDED])
        self.assertIn("building the python3-added layer (python3-tabulate python3-pip; "
                      "python3 -m pip install", out)
        labels = self.docker.images.get(IMAGE).labels
        self.assertEqual(labels["io.sorna.packages"], "pip:tomli-w,python3-tabulate")
        done = self.run_in_image(IMPORTS)
        self.assertEqual((done.returncode, done.stdout), (0, "x = 1\n"), done.stderr)

        self.sorna_images_build()  # a plain build keeps them
        self.assertEqual(self.docker.images.get(IMAGE).labels["io.sorna.packages"],
                         "pip:tomli-w,python3-tabulate")

        self.sorna_images_build(*[f"--without={p}" for p in ADDED])
        self.assertNotIn("io.sorna.packages", self.docker.images.get(IMAGE).labels)
        done = self.run_in_image(IMPORTS)
        self.assertIn("No module named", done.stderr)

    def test_a_package_the_language_cannot_take_is_refused_before_any_work(self):
        done = subprocess.run(["sorna", "images", "build", "ruby", "--with", "pip:rails"],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 3, done.stdout)
        self.assertIn("ruby takes no pip: packages", done.stderr)
