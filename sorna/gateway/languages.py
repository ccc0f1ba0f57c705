"""How Sorna's languages look to Jupyter and Piston clients: display names, Jupyter's
language_info, Piston's names and versions. A language an agent serves that is not
listed here gets a plain description made from its name.

Versions come from the images (label io.sorna.version, which `sorna images build` sets
from `repl/<lang>/version`), as the agents report them."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    display: str  # "Python 3"
    language: str  # Jupyter's language name (language_info.name, kernelspec language)
    mimetype: str
    extension: str  # ".py"
    codemirror: str | dict  # JupyterLab's editor mode
    pygments: str
    piston: str = ""  # Piston's name for it, when not Sorna's
    nbconvert: str = ""  # nbconvert's exporter, where the language has its own


LANGUAGES = {
    # As ipykernel describes Python: nbconvert, JupyterLab and GitHub key on these.
    "python3": Language("Python 3", "python", "text/x-python", ".py",
                        {"name": "ipython", "version": 3}, "ipython3", piston="python",
                        nbconvert="python"),
    "nodejs": Language("Node.js", "javascript", "application/javascript", ".js",
                       "javascript", "javascript",
                       piston="javascript"),
    "ruby": Language("Ruby", "ruby", "text/x-ruby", ".rb", "ruby", "ruby",
                       piston=""),
    "r": Language("R", "R", "text/x-rsrc", ".r", "r", "r",
                       piston="rscript"),
    "php": Language("PHP", "php", "application/x-httpd-php", ".php", "php", "php",
                       piston=""),
    "perl": Language("Perl", "perl", "text/x-perl", ".pl", "perl", "perl",
                       piston=""),
    "lua": Language("Lua", "lua", "text/x-lua", ".lua", "lua", "lua",
                       piston=""),
    "bash": Language("Bash", "bash", "text/x-sh", ".sh", "shell", "bash",
                       piston=""),
    "c": Language("C", "c", "text/x-csrc", ".c", "text/x-csrc", "c",
                       piston=""),
    "cpp": Language("C++", "c++", "text/x-c++src", ".cpp", "text/x-c++src", "cpp",
                       piston="c++"),
    "go": Language("Go", "go", "text/x-go", ".go", "go", "go",
                       piston=""),
    "java": Language("Java", "java", "text/x-java", ".java", "text/x-java", "java",
                       piston=""),
    "rust": Language("Rust", "rust", "text/x-rustsrc", ".rs", "rust", "rust",
                       piston=""),
}


def describe(lang):
    known = LANGUAGES.get(lang)
    if known is not None:
        return known
    return Language(lang, lang, "text/plain", f".{lang}", "", lang)


def kernelspec(lang):
    """A Jupyter kernelspec model (GET /api/kernelspecs) for a Sorna language."""
    about = describe(lang)
    return {"name": lang, "resources": {"logo-svg": f"/kernelspecs/{lang}/logo-svg.svg"},
            "spec": {
        "argv": [], "env": {}, "display_name": f"{about.display} (Sorna)",
        "language": about.language, "interrupt_mode": "message",
        "metadata": {"sorna": {"lang": lang}}}}


def language_info(lang, version=""):
    """kernel_info_reply's language_info."""
    about = describe(lang)
    info = {"name": about.language, "version": version, "mimetype": about.mimetype,
            "file_extension": about.extension, "pygments_lexer": about.pygments}
    if about.codemirror:
        info["codemirror_mode"] = about.codemirror
    if about.nbconvert:
        info["nbconvert_exporter"] = about.nbconvert
    return info


def piston_name(lang):
    return describe(lang).piston or lang


def runtime(lang, version):
    """A Piston runtime (GET /api/v2/runtimes); `version`: what the image says ("0.0.0"
    when it does not)."""
    about = describe(lang)
    name = piston_name(lang)
    aliases = sorted({lang, about.language.lower(), about.extension.lstrip(".")} - {name})
    return {"language": name, "version": version or "0.0.0", "aliases": aliases,
            "runtime": "sorna"}
