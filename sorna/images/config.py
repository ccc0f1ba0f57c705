"""What a language image is, made from its language.toml: the labels the agent and the
manager read, the runner's environment and the image's other settings (as Dockerfile
instructions, applied when the image is committed), and the files on top of its package
layers (the runner, and the language's driver)."""

import json
from pathlib import Path

from sorna.images.rootfs import KERNEL_UID

BUILD_DIR = "/build"  # compiled languages build here: the one exec-allowed tmpfs
RUNNER_DIR = "/opt/sorna"
COMMAND = ["python3", "-I", f"{RUNNER_DIR}/runner.py"]


def labels(lang):
    """The image's io.sorna.* labels."""
    pairs = {"io.sorna.lang": lang.name, "io.sorna.aliases": ",".join(lang.aliases),
             "io.sorna.memory": lang.memory, "io.sorna.exec-timeout": str(lang.exec_timeout),
             "io.sorna.kind": lang.kind}
    if lang.compiled:
        pairs.update({"io.sorna.exec-folder": BUILD_DIR,
                      "io.sorna.filename": lang.run.source})
    return pairs


def script_path(lang):
    """Where the driver goes in the image (a driver another language's folder holds
    too, such as Node's for TypeScript, under this language's name)."""
    return f"{RUNNER_DIR}/{lang.name}/{Path(lang.run.script).name}"


def environment(lang):
    """The runner's SORNA_* variables and the language's own."""
    run = lang.run
    pairs = [("HOME", "/home/work"), ("SORNA_LANG", lang.name),
             ("SORNA_DRIVER", run.driver)]
    if run.driver == "python":
        pairs += [("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONUNBUFFERED", "1")]
    if run.command:
        pairs.append(("SORNA_COMMAND", run.command.replace("{driver}", script_path(lang))))
    program = run.program.replace("{driver}", script_path(lang)) if run.script else ""
    for key, value in (("SORNA_PROGRAM", program or run.program), ("SORNA_SOURCE", run.source),
                       ("SORNA_BUILD", run.build), ("SORNA_RUN", run.run),
                       ("SORNA_SOURCES", " ".join(run.sources))):
        if value:
            pairs.append((key, value))
    if run.main_last:
        pairs.append(("SORNA_MAIN_LAST", "1"))
    if lang.shape:
        pairs.append(("SORNA_SHAPE", json.dumps(lang.shape, sort_keys=True)))
    if run.interrupt_signal:
        pairs.append(("SORNA_INTERRUPT_SIGNAL", run.interrupt_signal))
    if run.whole_program:
        pairs.append(("SORNA_WHOLE_PROGRAM", run.whole_program))
    if lang.compiled:
        pairs.append(("SORNA_BUILD_DIR", BUILD_DIR))
    return pairs + sorted(run.env.items())


def _quoted(value):
    """A value as a Dockerfile instruction takes it: quoted, with `$` escaped, or the
    engine would put variables in for `$@` and `$?` (a completion token's pattern)."""
    return json.dumps(str(value), ensure_ascii=False).replace("$", "\\$")


def changes(lang, extra_labels=None):
    """The image's settings as Dockerfile instructions (for `docker commit`)."""
    every = dict(labels(lang), **(extra_labels or {}))
    return ([f"LABEL {key}={_quoted(value)}" for key, value in every.items()]
            + [f"ENV {key}={_quoted(value)}" for key, value in environment(lang)]
            + ["WORKDIR /home/work", f"USER {KERNEL_UID}:{KERNEL_UID}",
               f"CMD {json.dumps(COMMAND)}"])


def files(lang, repl_dir):
    """[(path in the image, file here)]: the runner, and the language's driver."""
    runner = Path(repl_dir) / "runner"
    placed = [(f"{RUNNER_DIR}/{path.name}", path) for path in sorted(runner.iterdir())
              if path.is_file() and path.suffix != ".pyc"]
    if lang.run.script:
        placed.append((script_path(lang), lang.folder / lang.run.script))
    return placed
