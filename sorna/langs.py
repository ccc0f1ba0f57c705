"""Language names: front-ends may use an alias, the cluster knows canonical names only."""

ALIASES = {
    "python": "python3",
    "py3": "python3",
    "python3": "python3",
    "node": "nodejs",
    "javascript": "nodejs",
    "js": "nodejs",
    "R": "r",
    "julia": "julia",
    "lua": "lua5",
    "php": "php7",
    "haskell": "haskell",
    "git": "git",
}


def canonical(lang):
    if lang in ALIASES:
        return ALIASES[lang]
    return ALIASES.get(lang.lower(), lang.lower())
