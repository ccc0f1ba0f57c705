"""`pip install .` into a fresh virtual environment gives a Sorna that works away from
the checkout: the runner and the language folders come with it (sorna/repl), so
`sorna images build` and FakeCluster need no clone."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.support import require_docker, require_image

ROOT = Path(__file__).resolve().parent.parent.parent

# Run by the installed Sorna, from a folder outside the checkout.
FAKE_CLUSTER = textwrap.dedent("""
    import json
    from twisted.internet import task
    from sorna import language_spec
    from sorna.testing.cluster import FakeCluster, REPL_DIR

    clock = task.Clock()
    cluster = FakeCluster(clock)
    cluster.start()
    client = cluster.client()
    results = []
    client.create("python3").addCallback(
        lambda kernel: client.execute(kernel["kernel_id"], "6 * 7")).addBoth(results.append)
    client.close()
    print(json.dumps({"repl": str(language_spec.repl_dir()), "runner": str(REPL_DIR),
                      "langs": language_spec.folders(), "stdout": results[0]["stdout"]}))
""")


def _install():
    """A virtual environment with Sorna pip-installed from the checkout (once per run);
    (its folder, its python, the installed package's folder)."""
    folder = tempfile.mkdtemp(prefix="sorna-venv-")
    atexit.register(shutil.rmtree, folder, True)
    venv = Path(folder, "venv")
    # The dependencies come from the machine's own packages; Sorna from the checkout.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv],
                   check=True)
    python = str(venv / "bin" / "python")
    # From a copy: a build leaves build/ behind, which must not outlive the checkout's
    # files (a module deleted since would be packaged again).
    source = Path(folder, "source")
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "_trial_temp*", "__pycache__", "bench-results.json"))
    done = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(source)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"pip install . failed:\n{done.stdout}{done.stderr}")
    site = subprocess.run(
        [python, "-c", "import sorna, os; print(os.path.dirname(sorna.__file__))"],
        capture_output=True, text=True, check=True, cwd=folder).stdout.strip()
    return folder, python, Path(site)


class InstalledPackageTests(SynchronousTestCase):
    installed = None

    def setUp(self):
        if InstalledPackageTests.installed is None:
            InstalledPackageTests.installed = _install()
        self.folder, self.python, self.site = self.installed

    def run_installed(self, args, **kwargs):
        env = dict(os.environ, PATH=f"{Path(self.python).parent}:{os.environ['PATH']}")
        env.pop("PYTHONPATH", None)
        return subprocess.run(args, capture_output=True, text=True, cwd=self.folder,
                              env=env, timeout=600, **kwargs)

    def test_the_installed_package_is_not_the_checkout(self):
        self.assertTrue(str(self.site).startswith(self.folder), self.site)
        for path in ("repl/runner/runner.py", "repl/python3/language.toml",
                     "repl/ruby/run.rb", "repl/base/Dockerfile",
                     "repl/layers/gcc/packages"):
            self.assertTrue((self.site / path).is_file(), path)

    def test_fake_cluster_runs_python_from_the_installed_runner(self):
        import json

        done = self.run_installed([self.python, "-c", FAKE_CLUSTER])
        self.assertEqual(done.returncode, 0, done.stderr)
        report = json.loads(done.stdout.strip().splitlines()[-1])
        self.assertEqual(report["stdout"], "42\n")
        self.assertEqual(report["repl"], str(self.site / "repl"))
        self.assertEqual(report["runner"], str(self.site / "repl"))
        self.assertEqual(report["langs"], sorted(p.parent.name for p in
                                                 (ROOT / "repl").glob("*/language.toml")))

    def test_sorna_images_build_works_from_the_installed_package(self):
        # bash: no package layer of its own, so the build is a matter of seconds.
        require_image(require_docker(), "sorna/kernel-rootfs:latest")
        done = self.run_installed([str(Path(self.python).parent / "sorna"), "images",
                                   "build", "bash"])
        self.assertEqual(done.returncode, 0, done.stdout[-2000:] + done.stderr[-2000:])
        self.assertIn(f"docker build {self.site / 'repl' / 'base'}", done.stdout)
        self.assertIn("made sorna/kernel-bash:latest", done.stdout)
