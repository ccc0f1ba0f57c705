"""The language folders (repl/<lang>/language.toml): each complete, the one place for
its facts, and what is made from them (Dockerfiles, the README's table)."""

import ast
import fnmatch
import shutil
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sorna import langs, language_spec
from sorna.images import config
from sorna.language_spec import LanguageError

ROOT = Path(__file__).resolve().parent.parent
# Where a language's name may stand in Sorna's code, and why: none of these says what a
# language is, only which one a default or a word of another protocol happens to be.
ALLOWED = {
    "python3": {"sorna/images/rootfs.py": "the Debian package the runner itself runs on",
                "sorna/images/config.py": "the interpreter the runner itself runs on",
                "sorna/gateway/jupyter.py": "Jupyter's default kernel, when it is served",
                "sorna/testing/*": "the test doubles' default language"},
    "python": {"sorna/language_spec.py": "the runner's python driver (SORNA_DRIVER)",
               "sorna/images/config.py": "the runner's python driver (SORNA_DRIVER)",
               "sorna/client/cli.py": "`sorna shell` reads a Python cell up to the end of "
                                      "its statement"},
    "shell": {"sorna/gateway/channels.py": "Jupyter's shell channel",
              "sorna/testing/gateway.py": "Jupyter's shell channel",
              "sorna/client/cli.py": "the `sorna shell` command"},
}


class FolderTests(SynchronousTestCase):
    def setUp(self):
        self.repl = Path(self.mktemp())
        shutil.copytree(language_spec.repl_dir() / "ruby", self.repl / "ruby")
        shutil.copytree(language_spec.repl_dir() / "layers", self.repl / "layers")
        self.spec = self.repl / "ruby" / "language.toml"

    def edit(self, old, new):
        text = self.spec.read_text()
        self.assertIn(old, text)
        self.spec.write_text(text.replace(old, new, 1))

    def refused(self, *words):
        e = self.assertRaises(LanguageError, language_spec.load, self.repl / "ruby")
        for word in (str(self.spec),) + words:
            self.assertIn(word, str(e))
        return str(e)

    def test_every_folder_is_complete(self):
        languages = language_spec.languages()
        self.assertEqual(sorted(languages), language_spec.folders())
        self.assertGreaterEqual(len(languages), 13)
        self.assertEqual(langs.KNOWN, tuple(sorted(languages)))

    def test_a_copy_loads_as_the_original(self):
        copy = language_spec.load(self.repl / "ruby")
        self.assertEqual(copy.aliases, language_spec.get("ruby").aliases)
        self.assertEqual(copy.samples, language_spec.get("ruby").samples)

    def test_a_missing_field_is_named(self):
        self.edit("version = ", "# version = ")
        self.refused("`version` is missing")

    def test_a_wrong_type_is_named(self):
        self.edit("exec_timeout = 60", 'exec_timeout = "soon"')
        self.refused("`exec_timeout` must be a positive number of seconds")

    def test_an_unknown_field_is_named(self):
        self.edit("kind = ", "knid = 1\nkind = ")
        self.refused("unknown field(s) knid")

    def test_a_missing_driver_file_is_named(self):
        (self.repl / "ruby" / "run.rb").unlink()
        self.refused("run.rb, which is not in")

    def test_a_missing_shared_layer_is_named(self):
        self.edit("layers = []", 'layers = ["fortran"]')
        self.refused("repl/layers/fortran/packages")

    def test_a_missing_sample_is_named(self):
        self.edit("seccomp = ", "# seccomp = ")
        self.refused("[samples]", "`seccomp` is missing")

    def test_the_folder_names_the_language(self):
        self.edit('name = "ruby"', 'name = "ruby2"')
        self.refused("the folder is 'ruby'")

    def test_a_driver_that_does_not_fit_the_kind(self):
        self.edit('kind = "interpreted"', 'kind = "compiled"')
        self.refused("the interpreter driver does not go with kind compiled")

    def test_an_alias_is_one_languages(self):
        shutil.copytree(self.repl / "ruby", self.repl / "ruby2")
        text = (self.repl / "ruby2" / "language.toml").read_text()
        (self.repl / "ruby2" / "language.toml").write_text(
            text.replace('name = "ruby"', 'name = "ruby2"'))
        e = self.assertRaises(LanguageError, language_spec.languages, self.repl)
        self.assertIn("'rb' is claimed by both ruby and ruby2", str(e))


class ImageConfigTests(SynchronousTestCase):
    def test_an_interpreted_language(self):
        ruby = language_spec.get("ruby")
        made = config.changes(ruby)
        self.assertIn('LABEL io.sorna.kind="interpreted"', made)
        self.assertIn('ENV SORNA_COMMAND="ruby /opt/sorna/ruby/run.rb"', made)
        self.assertNotIn("io.sorna.exec-folder", " ".join(made))
        self.assertIn(("/opt/sorna/ruby/run.rb", ruby.folder / "run.rb"),
                      config.files(ruby, language_spec.repl_dir()))

    def test_a_compiled_language(self):
        made = config.changes(language_spec.get("go"))
        for change in ('LABEL io.sorna.exec-folder="/build"',
                       'LABEL io.sorna.filename="main.go"', 'ENV SORNA_DRIVER="compiled"',
                       'ENV SORNA_SOURCES="*.go"', 'ENV SORNA_BUILD_DIR="/build"',
                       'ENV GOCACHE="/build/go-cache"', "USER 1000:1000",
                       'CMD ["python3", "-I", "/opt/sorna/runner.py"]'):
            self.assertIn(change, made)

    def test_python3_runs_the_runners_own_driver(self):
        python3 = language_spec.get("python3")
        made = config.changes(python3, {"io.sorna.version": "3.11.2"})
        self.assertIn('ENV SORNA_DRIVER="python"', made)
        self.assertIn('LABEL io.sorna.aliases="python,py3,py"', made)
        self.assertIn('LABEL io.sorna.version="3.11.2"', made)
        self.assertIn('ENV MPLBACKEND="Agg"', made)
        self.assertNotIn("SORNA_COMMAND", " ".join(made))
        placed = dict(config.files(python3, language_spec.repl_dir()))
        self.assertIn("/opt/sorna/runner.py", placed)
        self.assertIn("/opt/sorna/repl_wire.py", placed)
        self.assertFalse([p for p in placed if p.endswith(".pyc")])


class OnePlaceTests(SynchronousTestCase):
    """A language's facts are in its folder and nowhere else."""

    def test_the_readme_table_is_the_one_the_folders_make(self):
        readme = (ROOT / "README.md").read_text()
        start = readme.index(language_spec.TABLE_START)
        end = readme.index(language_spec.TABLE_END) + len(language_spec.TABLE_END) + 1
        self.assertEqual(readme[start:end], language_spec.markdown_table(),
                         "run `python3 -m sorna.language_spec --readme README.md`")

    def test_no_language_is_listed_in_the_code(self):
        names = {}
        for lang in language_spec.languages().values():
            for name in (lang.name, lang.piston) + lang.aliases:
                names[name] = lang.name
        found = []
        for path in sorted(list((ROOT / "sorna").rglob("*.py"))
                           + list((ROOT / "twisted").rglob("*.py"))):
            where = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
                    items = node.keys if isinstance(node, ast.Dict) else node.elts
                    listed = [i.value for i in items if isinstance(i, ast.Constant)
                              and isinstance(i.value, str) and i.value in names]
                    if len(listed) > 1:
                        found.append(f"{where}:{node.lineno} lists {listed}")
                elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                        and len(node.value) > 2 and node.value in names
                        and not any(fnmatch.fnmatch(where, pattern)
                                    for pattern in ALLOWED.get(node.value, {}))):
                    found.append(f"{where}:{node.lineno} names {node.value!r}")
        self.assertEqual(found, [], "a language's facts belong in its folder "
                                    "(repl/<lang>/language.toml)")

    def test_the_allowed_uses_are_still_there(self):
        """An allowance nothing needs any more is taken out of the list."""
        for value, places in ALLOWED.items():
            for pattern in places:
                files = [p for p in ROOT.glob(pattern if pattern.endswith(".py")
                                              else pattern + ".py")]
                self.assertTrue(any(repr(value) in p.read_text()
                                    or f'"{value}"' in p.read_text() for p in files),
                                f"{pattern} no longer names {value!r}")


class AddedPackagesTests(SynchronousTestCase):
    """`sorna images build LANG --with PACKAGE`: what each name becomes."""

    def test_debian_packages_and_pypi_ones(self):
        python3 = language_spec.get("python3")
        debian, commands = language_spec.added_packages(
            python3, ["python3-requests", "pip:tomli-w==1.0.0", "pip:attrs"])
        self.assertEqual(debian, ["python3-requests", "python3-pip"])
        [argv] = commands
        self.assertEqual(argv[:3], ["python3", "-m", "pip"])
        self.assertEqual(argv[-2:], ["tomli-w==1.0.0", "attrs"])

    def test_a_source_the_folder_does_not_name_is_refused(self):
        e = self.assertRaises(LanguageError, language_spec.added_packages,
                              language_spec.get("ruby"), ["pip:requests"])
        self.assertIn("ruby takes no pip: packages; it takes Debian packages only", str(e))
        e = self.assertRaises(LanguageError, language_spec.added_packages,
                              language_spec.get("python3"), ["gem:rails"])
        self.assertIn("it takes pip:NAME", str(e))

    def test_names_that_are_not_package_names_are_refused(self):
        for name in ("a;rm -rf /", "-y", "pip:", "x" * 200, "pip:a b"):
            e = self.assertRaises(LanguageError, language_spec.added_packages,
                                  language_spec.get("python3"), [name])
            self.assertIn("is not a package name", str(e))
