"""How Sorna's languages look to Jupyter and Piston clients: display names, Jupyter's
language_info, Piston's names and versions. A language an agent serves that is not
listed here gets a plain description made from its name.

`version` is the version of the Debian bookworm package the image installs
(repl/<lang>/packages); the images do not report their versions yet."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    display: str  # "Python 3"
    language: str  # Jupyter's language name (language_info.name, kernelspec language)
    mimetype: str
    extension: str  # ".py"
    codemirror: str  # JupyterLab's editor mode
    pygments: str
    piston: str = ""  # Piston's name for it, when not Sorna's
    version: str = "0.0.0"


LANGUAGES = {
    "python3": Language("Python 3", "python", "text/x-python", ".py", "python", "python3",
                       piston="python", version="3.11.2"),
    "nodejs": Language("Node.js", "javascript", "application/javascript", ".js",
                       "javascript", "javascript",
                       piston="javascript", version="18.20.4"),
    "ruby": Language("Ruby", "ruby", "text/x-ruby", ".rb", "ruby", "ruby",
                       piston="", version="3.1.2"),
    "r": Language("R", "R", "text/x-rsrc", ".r", "r", "r",
                       piston="rscript", version="4.2.2"),
    "php": Language("PHP", "php", "application/x-httpd-php", ".php", "php", "php",
                       piston="", version="8.2.32"),
    "perl": Language("Perl", "perl", "text/x-perl", ".pl", "perl", "perl",
                       piston="", version="5.36.0"),
    "lua": Language("Lua", "lua", "text/x-lua", ".lua", "lua", "lua",
                       piston="", version="5.4.4"),
    "bash": Language("Bash", "bash", "text/x-sh", ".sh", "shell", "bash",
                       piston="", version="5.2.15"),
    "c": Language("C", "c", "text/x-csrc", ".c", "text/x-csrc", "c",
                       piston="", version="12.2.0"),
    "cpp": Language("C++", "c++", "text/x-c++src", ".cpp", "text/x-c++src", "cpp",
                       piston="c++", version="12.2.0"),
    "go": Language("Go", "go", "text/x-go", ".go", "go", "go",
                       piston="", version="1.19.8"),
    "java": Language("Java", "java", "text/x-java", ".java", "text/x-java", "java",
                       piston="", version="17.0.19"),
    "rust": Language("Rust", "rust", "text/x-rustsrc", ".rs", "rust", "rust",
                       piston="", version="1.63.0"),
}


def describe(lang):
    known = LANGUAGES.get(lang)
    if known is not None:
        return known
    return Language(lang, lang, "text/plain", f".{lang}", "", lang)


def kernelspec(lang):
    """A Jupyter kernelspec model (GET /api/kernelspecs) for a Sorna language."""
    about = describe(lang)
    return {"name": lang, "resources": {}, "spec": {
        "argv": [], "env": {}, "display_name": f"{about.display} (Sorna)",
        "language": about.language, "interrupt_mode": "message",
        "metadata": {"sorna": {"lang": lang}}}}


def language_info(lang):
    """kernel_info_reply's language_info."""
    about = describe(lang)
    info = {"name": about.language, "version": "", "mimetype": about.mimetype,
            "file_extension": about.extension, "pygments_lexer": about.pygments}
    if about.codemirror:
        info["codemirror_mode"] = about.codemirror
    return info


def piston_name(lang):
    return describe(lang).piston or lang


def runtime(lang):
    """A Piston runtime (GET /api/v2/runtimes)."""
    about = describe(lang)
    name = piston_name(lang)
    aliases = sorted({lang, about.language.lower(), about.extension.lstrip(".")} - {name})
    return {"language": name, "version": about.version, "aliases": aliases,
            "runtime": "sorna"}
