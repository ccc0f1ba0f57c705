"""Language names: front-ends may use an alias, the cluster knows canonical names only.

The aliases come from the images (label `io.sorna.aliases`), which agents report in
their heartbeats; the manager resolves a request's language with the aliases of the
live agents, case-insensitively.
"""

from sorna import language_spec

# The languages this version of Sorna has folders for (repl/<lang>/language.toml).
KNOWN = tuple(language_spec.folders())
MAX_ALIASES = 16  # per language, as an agent reports them


def parse_aliases(label):
    """The aliases a label lists (`a,b,c`), cleaned; at most MAX_ALIASES."""
    names = [a.strip() for a in (label or "").split(",")]
    return [a for a in names if a][:MAX_ALIASES]


def canonical(lang, aliases):
    """The canonical name of `lang`, given {alias or name (any case): canonical}."""
    return aliases.get(lang) or aliases.get(lang.lower()) or lang


def alias_table(agents):
    """{name or alias, and its lower case: canonical} of what live agents serve."""
    table = {}
    for agent in agents:
        for lang in agent.langs:
            table.setdefault(lang, lang)
            table.setdefault(lang.lower(), lang)
        for lang, names in (agent.aliases or {}).items():
            if lang not in agent.langs:
                continue
            for name in names:
                table.setdefault(name, lang)
                table.setdefault(name.lower(), lang)
    return table
