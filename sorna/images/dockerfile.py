"""A language image's Dockerfile, made from its language.toml: the labels the agent and the manager read, the runner's environment, the driver script,
and the runner last (so that an edited runner rebuilds thin layers only)."""

import json

from sorna.images.rootfs import KERNEL_UID

BUILD_DIR = "/build"  # compiled languages build here: the one exec-allowed tmpfs
RUNNER = '["python3", "-I", "/opt/sorna/runner.py"]'


def _quoted(value):
    return json.dumps(str(value))


def _instruction(word, pairs):
    body = " \\\n      ".join(f"{key}={_quoted(value)}" for key, value in pairs)
    return f"{word} {body}"


def labels(lang):
    """The image's io.sorna.* labels."""
    pairs = [("io.sorna.lang", lang.name),
             ("io.sorna.aliases", ",".join(lang.aliases)),
             ("io.sorna.memory", lang.memory),
             ("io.sorna.exec-timeout", lang.exec_timeout),
             ("io.sorna.kind", lang.kind)]
    if lang.compiled:
        pairs += [("io.sorna.exec-folder", BUILD_DIR),
                  ("io.sorna.filename", lang.run.source)]
    return pairs


def script_path(lang):
    return f"/opt/sorna/{lang.name}/{lang.run.script}"


def environment(lang):
    """The runner's SORNA_* variables and the language's own."""
    run = lang.run
    pairs = [("HOME", "/home/work"), ("SORNA_LANG", lang.name),
             ("SORNA_DRIVER", run.driver)]
    if run.driver == "python":
        pairs += [("PYTHONDONTWRITEBYTECODE", 1), ("PYTHONUNBUFFERED", 1)]
    if run.command:
        pairs.append(("SORNA_COMMAND", run.command.replace("{driver}", script_path(lang))))
    for key, value in (("SORNA_PROGRAM", run.program), ("SORNA_SOURCE", run.source),
                       ("SORNA_BUILD", run.build), ("SORNA_RUN", run.run),
                       ("SORNA_SOURCES", " ".join(run.sources))):
        if value:
            pairs.append((key, value))
    if lang.compiled:
        pairs.append(("SORNA_BUILD_DIR", BUILD_DIR))
    return pairs + sorted(run.env.items())


def dockerfile(lang, base):
    """The Dockerfile of `lang` (a language_spec.Language) on `base`, the image of its
    package layers."""
    lines = [f"# Made from repl/{lang.name}/language.toml by `sorna images build`.",
             f"FROM {base}",
             _instruction("LABEL", labels(lang)),
              "WORKDIR /home/work",
              f"USER {KERNEL_UID}:{KERNEL_UID}",
              _instruction("ENV", environment(lang)),
              f"CMD {RUNNER}"]
    if lang.run.script:
        lines.append(f"COPY {lang.run.script} {script_path(lang)}")
    lines.append("COPY runner/ /opt/sorna/")
    return "\n".join(lines) + "\n"
