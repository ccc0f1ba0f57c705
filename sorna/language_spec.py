"""A language is one folder: `repl/<lang>/language.toml` says everything about it, and
the image builder, the manager, the gateway, the README's table and the conformance
suite read it from here. docs/LANGUAGES.md describes the file.

A file that is incomplete, or names something that is not there, is refused with a
sentence that names the file and the field.
"""

import re
import shlex
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

import sorna

SPEC_FILE = "language.toml"
KINDS = ("interpreted", "compiled")
# What one run leaves to the next, unless the folder says (`[run] state`).
DEFAULT_STATE = {"interpreted": "kept: definitions, variables, imports",
                 "compiled": "none: each run is a program of its own (files stay)",
                 "snippets": "snippets keep theirs (declarations, variables, imports); a "
                             "whole program runs on its own"}
DRIVERS = ("python", "interpreter", "compiled")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}$")  # the protocol's `lang`
MEMORY = re.compile(r"^[0-9]+[kmg]$")
COLOUR = re.compile(r"^#[0-9A-Fa-f]{3}([0-9A-Fa-f]{3})?$")
# The conformance suite's cases every language has (tests/integration/test_languages.py).
SAMPLES = ("hello", "streams", "slow", "error", "error_name", "syntax", "utf8", "output",
           "ask", "count", "loop", "exit", "file", "seccomp")
# ...and those of one kind: state kept from run to run, or a fresh program each run.
KIND_SAMPLES = {"interpreted": ("set", "get"), "compiled": ("counter",)}
# jupyter_kernel_test's samples every language has; the others are per feature.
JUPYTER_SAMPLES = ("code_hello_world", "code_stderr", "code_generate_error")


class LanguageError(ValueError):
    """A language folder is incomplete or wrong; the message says where and what."""


@dataclass(frozen=True)
class Run:
    """How the runner drives the language (the image's SORNA_* environment)."""
    driver: str  # python | interpreter | compiled
    script: str = ""  # the interpreter driver's file in the folder
    command: str = ""  # starts the interpreter driver; {driver} is the script's path
    program: str = ""  # runs a whole program; {source} is its file
    source: str = ""  # a program's file name ({main}: Java's public class)
    sources: tuple = ()  # the files a compiled program is built from (globs)
    build: str = ""
    run: str = ""
    main_last: bool = False  # {sources}: the program's file after the others
    shape: str = ""  # the cell shape (code_shape.py) it shares with another language
    interrupt_signal: str = ""  # SIGUSR1 for an interpreter that cannot take SIGINT
    env: dict = field(default_factory=dict)
    state: str = ""  # what one run leaves to the next (the README says it)
    # A compiled language with a snippet driver (`script`, `command`): a run this
    # pattern finds is a whole program (it defines main), compiled and run on its own.
    whole_program: str = ""


@dataclass(frozen=True)
class Jupyter:
    language: str  # language_info.name, the kernelspec's language
    mimetype: str
    extension: str
    pygments: str
    codemirror: object = ""  # a mode name, or a table
    nbconvert: str = ""


@dataclass(frozen=True)
class Logo:
    label: str
    tile: str
    ink: str


@dataclass(frozen=True)
class Extra:
    """How packages of one source (PyPI, ...) are installed in a language's image."""
    needs: tuple  # Debian packages the installer needs
    install: str  # the command; {packages} stands for the names, one argument each


@dataclass(frozen=True)
class Language:
    name: str
    display: str
    aliases: tuple
    kind: str
    layers: tuple  # shared package layers below the language's own (repl/layers/<name>)
    packages: tuple  # the Debian packages of the language's own layer
    version: str  # a shell command that prints the version in the image
    memory: str
    exec_timeout: int
    run: Run
    jupyter: Jupyter
    piston: str
    logo: Logo
    samples: dict
    folder: Path
    # Packages from elsewhere than Debian an operator may add (`sorna images build LANG
    # --with SOURCE:NAME`): {source: Extra}.
    extra: dict = field(default_factory=dict)
    # How a console sees a cell (repl/runner/code_shape.py): the folder's [shape], or
    # that of the language `[run] shape` names.
    shape: dict = field(default_factory=dict)

    @property
    def compiled(self):
        return self.kind == "compiled"

    @property
    def stateful(self):
        """Whether a run's definitions live on for the next: interpreted languages, and
        compiled ones with a snippet driver."""
        return not self.compiled or bool(self.run.script)

    @property
    def stack(self):
        """The package layers of the image, bottom first (the language's own last)."""
        return self.layers + ((self.name,) if self.packages else ())


def read_packages(path):
    """The Debian packages listed in a shared layer's `packages` file (words; `#`
    starts a comment)."""
    words = []
    for line in Path(path).read_text().splitlines():
        words += line.split("#", 1)[0].split()
    return words


def layer_packages(lang, layer):
    """The Debian packages of layer `layer` of `lang`: its own, or a shared one's."""
    if layer == lang.name:
        return list(lang.packages)
    return read_packages(lang.folder.parent / "layers" / layer / "packages")


def all_packages(lang):
    """Every Debian package the language's image adds: its shared layers', its own."""
    return [p for layer in lang.stack for p in layer_packages(lang, layer)]


def repl_dir():
    """`repl/`: packaged with sorna (a wheel), or beside it (a checkout)."""
    here = Path(sorna.__file__).resolve().parent
    packaged = here / "repl"
    return packaged if packaged.is_dir() else here.parent / "repl"


def folders(root=None):
    """The language folders under `root` (those with a language.toml), sorted."""
    root = Path(root or repl_dir())
    return sorted(p.parent.name for p in root.glob(f"*/{SPEC_FILE}"))


@lru_cache(maxsize=None)
def _load_all(root):
    languages = {name: load(Path(root) / name) for name in folders(root)}
    for name, lang in languages.items():
        if lang.run.shape:  # the cells of another language's shape
            other = languages.get(lang.run.shape)
            if other is None or not other.shape or other.run.shape or lang.shape:
                raise LanguageError(
                    f"{lang.folder / SPEC_FILE}: `shape` names {lang.run.shape!r}, which "
                    f"must be a language with a [shape] of its own (and this one has none)")
            languages[name] = replace(lang, shape=other.shape)
    owner = {}
    for lang in languages.values():
        for name in (lang.name,) + lang.aliases:
            other = owner.setdefault(name.lower(), lang.name)
            if other != lang.name:
                raise LanguageError(f"the name {name!r} is claimed by both {other} and "
                                    f"{lang.name}; an alias names one language")
    return languages


def languages(root=None):
    """{name: Language} of every folder under `root` (repl/ by default)."""
    return _load_all(str(Path(root or repl_dir()).resolve()))


def get(name, root=None):
    return languages(root).get(name)


class _Table:
    """A TOML table being read: each field's value checked, unknown fields refused."""

    def __init__(self, data, where):
        if not isinstance(data, dict):
            raise LanguageError(f"{where} must be a table")
        self.data, self.where, self.read = data, where, set()

    def get(self, key, kind, default=None, check=None, what=""):
        self.read.add(key)
        if key not in self.data:
            if default is None:
                raise LanguageError(f"{self.where}: `{key}` is missing")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (check and not check(value)):
            raise LanguageError(f"{self.where}: `{key}` must be {what}, not {value!r}")
        return value

    def text(self, key, default=None, pattern=None, what="a string"):
        """A string; required (and not empty) unless a default is given."""
        return self.get(key, str, default, what=what, check=lambda v: (
            (v or default is not None) and (not v or pattern is None or pattern.match(v))))

    def words(self, key, pattern=None):
        value = self.get(key, list, [], check=lambda v: all(
            isinstance(w, str) and w and (pattern is None or pattern.match(w)) for w in v),
            what="a list of names")
        return tuple(value)

    def table(self, key, optional=False):
        self.read.add(key)
        if key not in self.data and optional:
            return _Table({}, f"{self.where} [{key}]")
        if key not in self.data:
            raise LanguageError(f"{self.where}: the [{key}] table is missing")
        return _Table(self.data[key], f"{self.where} [{key}]")

    def done(self):
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            raise LanguageError(f"{self.where}: unknown field(s) {', '.join(unknown)}")


def load(folder):
    """The Language of one folder, checked."""
    folder = Path(folder)
    path = folder / SPEC_FILE
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise LanguageError(f"{path}: {e}") from e
    top = _Table(data, str(path))
    name = top.text("name", pattern=NAME, what="a language name")
    if name != folder.name:
        raise LanguageError(f"{path}: `name` is {name!r} but the folder is {folder.name!r}")
    kind = top.get("kind", str, check=lambda v: v in KINDS, what=" or ".join(KINDS))
    layers = top.words("layers", pattern=NAME)
    for layer in layers:
        if not (folder.parent / "layers" / layer / "packages").is_file():
            raise LanguageError(f"{path}: layer {layer!r} has no "
                                f"repl/layers/{layer}/packages")
    run = _run(top.table("run"), folder, kind)
    language = Language(
        name=name, display=top.text("display"), kind=kind, layers=layers,
        aliases=top.words("aliases", pattern=NAME),
        packages=top.words("packages"), version=top.text("version"),
        memory=top.text("memory", pattern=MEMORY, what="a size such as 256m"),
        exec_timeout=top.get("exec_timeout", int, check=lambda v: v > 0,
                             what="a positive number of seconds"),
        run=run,
        jupyter=_jupyter(top.table("jupyter")),
        piston=_piston(top.table("piston", optional=True), name),
        logo=_logo(top.table("logo"), name),
        samples=_samples(top.table("samples"), kind,
                         stateful=kind != "compiled" or bool(run.script)),
        folder=folder, extra=_extra(top.table("extra", optional=True)),
        shape=_shape(top.table("shape", optional=True)))
    top.done()
    return language


def _run(table, folder, kind):
    driver = table.get("driver", str, check=lambda v: v in DRIVERS, what=" or ".join(DRIVERS))
    env = table.table("env", optional=True)
    run = Run(driver=driver, script=table.text("script", ""),
              command=table.text("command", ""), program=table.text("program", ""),
              source=table.text("source", ""), sources=table.words("sources"),
              build=table.text("build", ""), run=table.text("run", ""),
              main_last=table.get("main_last", bool, False, what="true or false"),
              shape=table.text("shape", ""),
              interrupt_signal=table.text("interrupt_signal", "",
                                          pattern=re.compile(r"^SIG(INT|USR1|USR2)$"),
                                          what="SIGINT, SIGUSR1 or SIGUSR2"),
              env={key: env.get(key, str) for key in list(env.data)},
              state=table.text("state", DEFAULT_STATE[
                  "snippets" if kind == "compiled" and "script" in table.data else kind]),
              whole_program=table.text("whole_program", ""))
    env.done()
    table.done()
    where = table.where
    if (driver == "compiled") != (kind == "compiled"):
        raise LanguageError(f"{where}: the {driver} driver does not go with kind {kind}")
    needs = {"python": ("source",), "interpreter": ("script", "command", "program", "source"),
             "compiled": ("source", "build", "run")}[driver]
    for key in needs:
        if not getattr(run, key):
            raise LanguageError(f"{where}: the {driver} driver needs `{key}`")
    if run.script and not ((folder / run.script).is_file() and (folder / run.script)
                           .resolve().is_relative_to(folder.parent.resolve())):
        raise LanguageError(f"{where}: `script` names {run.script}, which is not in "
                            f"{folder} (or another language's folder beside it)")
    if driver == "compiled" and (run.script or run.command or run.whole_program):
        for key in ("script", "command", "whole_program"):
            if not getattr(run, key):
                raise LanguageError(f"{where}: a compiled language's snippet driver needs "
                                    f"`script`, `command` and `whole_program`")
        try:
            re.compile(run.whole_program)
        except re.error as e:
            raise LanguageError(f"{where}: `whole_program` is no pattern: {e}") from e
    if run.script and "{driver}" not in run.command:
        raise LanguageError(f"{where}: `command` must run the script, named {{driver}}")
    if run.program and "{source}" not in run.program:
        raise LanguageError(f"{where}: `program` must name the file as {{source}}")
    return run


def _shape(table):
    """The [shape] table's rules (code_shape.py says what each means), checked."""
    lists = ("line", "block", "opens", "closes", "opens_at_start", "continues")
    flags = ("keyword_colons", "comment_needs_space", "loop_do")
    rules = {}
    if not table.data:
        table.done()
        return rules
    rules["quotes"] = table.text("quotes")
    rules["indent"] = table.get("indent", str, what="spaces", check=lambda v: not v.strip())
    for key in lists:
        if key in table.data:
            rules[key] = list(table.words(key))
    if len(rules.get("block", [0, 0])) != 2:
        raise LanguageError(f"{table.where}: `block` must be [opening, closing]")
    for key in flags:
        if table.get(key, bool, False, what="true or false"):
            rules[key] = True
    for key in ("terminator", "token"):
        if key in table.data:
            rules[key] = table.text(key)
    if "token" in rules:
        try:
            re.compile(rules["token"])
        except re.error as e:
            raise LanguageError(f"{table.where}: `token` is no pattern: {e}") from e
    table.done()
    return rules


def _jupyter(table):
    jupyter = Jupyter(
        language=table.text("language"), mimetype=table.text("mimetype"),
        extension=table.text("extension", pattern=re.compile(r"^\.\w"),
                             what="a file extension such as .py"),
        pygments=table.text("pygments"),
        codemirror=table.get("codemirror", (str, dict), ""),
        nbconvert=table.text("nbconvert", ""))
    table.done()
    return jupyter


def _piston(table, name):
    piston = table.text("name", name)
    table.done()
    return piston


def _logo(table, name):
    colour = dict(pattern=COLOUR, what="a colour such as #3572A5")
    logo = Logo(label=table.text("label"), tile=table.text("tile", **colour),
                ink=table.text("ink", **colour))
    table.done()
    return logo


def _extra(table):
    extra = {}
    for source in list(table.data):
        entry = table.table(source)
        install = entry.text("install")
        if "{packages}" not in shlex.split(install):
            raise LanguageError(f"{entry.where}: `install` must name the packages as "
                                f"{{packages}}")
        extra[source] = Extra(needs=entry.words("needs"), install=install)
        entry.done()
    table.done()
    return extra


# An added package: a Debian package, or SOURCE:NAME (a source the folder's [extra]
# names), with a version (`==1.2`, `=1.2-3`) where its installer takes one.
PACKAGE = re.compile(r"^(?:([a-z][a-z0-9]*):)?([A-Za-z0-9][A-Za-z0-9.+_-]{0,99}"
                     r"(?:={1,2}[A-Za-z0-9.+:~_-]{1,64})?)$")


def added_packages(lang, names):
    """(Debian packages, [install argv]) for the packages an operator adds to `lang`;
    LanguageError saying what is wrong with a name or a source."""
    debian, by_source = [], {}
    for name in names:
        found = PACKAGE.match(name)
        if not found:
            raise LanguageError(f"{name!r} is not a package name (a Debian package, or "
                                f"SOURCE:NAME)")
        source, package = found.groups()
        if source is None:
            debian.append(package)
        elif source in lang.extra:
            by_source.setdefault(source, []).append(package)
        else:
            told = ", ".join(f"{s}:NAME" for s in lang.extra) or "Debian packages only"
            raise LanguageError(f"{lang.name} takes no {source}: packages; it takes "
                                f"{told}")
    commands = []
    for source, packages in sorted(by_source.items()):
        debian += [n for n in lang.extra[source].needs if n not in debian]
        argv = []
        for word in shlex.split(lang.extra[source].install):
            argv += packages if word == "{packages}" else [word]
        commands.append(argv)
    return debian, commands


def _samples(table, kind, stateful):
    for key in SAMPLES + KIND_SAMPLES[kind] + (KIND_SAMPLES["interpreted"] if stateful else ()):
        table.text(key)
    # The exception an empty program ends with: none where a session runs it (it does
    # nothing); a compiled language's compiler finds no main program.
    empty_error = table.get("empty_error", str,
                            "CompileError" if kind == "compiled" and not stateful else "")
    program = table.table("program")
    program.text("code")
    program.get("files", list, [], check=lambda v: all(
        isinstance(f, list) and len(f) == 2 and all(isinstance(x, str) for x in f)
        for f in v), what="a list of [name, content] pairs")
    program.done()
    jupyter = table.table("jupyter")
    for key in JUPYTER_SAMPLES:
        jupyter.text(key)
    jupyter.read.update(jupyter.data)  # the suite's own optional samples
    table.read.update(table.data)  # cases some languages have (set, get, value, ...)
    return dict(table.data, empty_error=empty_error)


TABLE_START = ("<!-- languages: made by `python3 -m sorna.language_spec --readme README.md`;"
               " do not edit -->")
TABLE_END = "<!-- end of languages -->"


def markdown_table(root=None):
    """The README's table of languages, between its markers."""
    rows = [TABLE_START,
            "| name | language | aliases | kind | state between runs | Debian packages "
            "| Piston |",
            "|---|---|---|---|---|---|---|"]
    for lang in languages(root).values():
        packages = all_packages(lang)
        rows.append(f"| `{lang.name}` | {lang.display} | "
                    f"{', '.join(f'`{a}`' for a in lang.aliases)} | {lang.kind} | "
                    f"{lang.run.state} | "
                    f"{' '.join(packages) or '—'} | `{lang.piston}` |")
    return "\n".join(rows + [TABLE_END]) + "\n"


def update_readme(path):
    """Put the table the folders make into the README at `path`."""
    text = Path(path).read_text()
    start = text.index(TABLE_START)
    end = text.index(TABLE_END) + len(TABLE_END) + 1
    Path(path).write_text(text[:start] + markdown_table() + text[end:])


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--readme"]:  # python3 -m sorna.language_spec --readme README.md
        update_readme(sys.argv[2])
    else:
        print(markdown_table(), end="")
