"""How Sorna's languages look to Jupyter and Piston clients: kernelspecs, Jupyter's
language_info and Piston's runtimes, from each language's folder (language.toml). A
language an agent serves that has no folder here gets a plain description made from its
name.

Versions come from the images (label io.sorna.version, which `sorna images build` sets
from what the language's version command prints), as the agents report them."""

from pathlib import Path

from sorna import language_spec
from sorna.language_spec import Jupyter, Language, Logo, Run


def describe(lang):
    """The Language of `lang`: its folder's, or a plain one."""
    known = language_spec.get(lang)
    if known is not None:
        return known
    return Language(
        name=lang, display=lang, aliases=(), kind="interpreted", layers=(), packages=(),
        version="", memory="", exec_timeout=0, run=Run(driver="interpreter"),
        jupyter=Jupyter(language=lang, mimetype="text/plain", extension=f".{lang}",
                        pygments=lang),
        piston=lang, logo=Logo(label=lang[:3], tile="#6e7781", ink="#fff"), samples={},
        folder=Path())


def kernelspec(lang, packages=()):
    """A Jupyter kernelspec model (GET /api/kernelspecs) for a Sorna language; its
    metadata lists the packages an operator added to the images."""
    about = describe(lang)
    sorna = {"lang": lang}
    if packages:
        sorna["packages"] = list(packages)
    return {"name": lang, "resources": {"logo-svg": f"/kernelspecs/{lang}/logo-svg.svg"},
            "spec": {
        "argv": [], "env": {}, "display_name": f"{about.display} (Sorna)",
        "language": about.jupyter.language, "interrupt_mode": "message",
        "metadata": {"sorna": sorna}}}


def language_info(lang, version=""):
    """kernel_info_reply's language_info."""
    about = describe(lang).jupyter
    info = {"name": about.language, "version": version, "mimetype": about.mimetype,
            "file_extension": about.extension, "pygments_lexer": about.pygments}
    if about.codemirror:
        info["codemirror_mode"] = about.codemirror
    if about.nbconvert:
        info["nbconvert_exporter"] = about.nbconvert
    return info


def piston_name(lang):
    return describe(lang).piston


def runtime(lang, version, packages=()):
    """A Piston runtime (GET /api/v2/runtimes); `version`: what the image says ("0.0.0"
    when it does not); `packages`, what an operator added (a field Piston has not)."""
    about = describe(lang)
    name = about.piston
    aliases = sorted({lang, about.jupyter.language.lower(),
                      about.jupyter.extension.lstrip(".")} - {name})
    answer = {"language": name, "version": version or "0.0.0", "aliases": aliases,
              "runtime": "sorna"}
    if packages:
        answer["packages"] = list(packages)
    return answer
