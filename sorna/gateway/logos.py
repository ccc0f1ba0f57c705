"""Each language's logo for Jupyter front-ends (a kernelspec's `logo-svg` resource): a
tile in the language's colour with its short name; the browser draws the text."""

from xml.sax.saxutils import escape

from sorna.gateway.languages import describe

# (short name, tile colour, text colour): the colours GitHub's Linguist gives them.
BADGES = {
    "python3": ("Py", "#3572A5", "#fff"), "nodejs": ("JS", "#f1e05a", "#000"),
    "ruby": ("Rb", "#701516", "#fff"), "r": ("R", "#198CE7", "#fff"),
    "php": ("PHP", "#4F5D95", "#fff"), "perl": ("Pl", "#0298c3", "#fff"),
    "lua": ("Lua", "#000080", "#fff"), "bash": ("sh", "#89e051", "#000"),
    "c": ("C", "#555555", "#fff"), "cpp": ("C++", "#f34b7d", "#fff"),
    "go": ("Go", "#00ADD8", "#fff"), "java": ("Java", "#b07219", "#fff"),
    "rust": ("Rs", "#dea584", "#000"),
}


def logo_svg(lang):
    """The SVG (text) of `lang`'s logo; a language without a badge gets a grey tile with
    the first letters of its name."""
    label, tile, ink = BADGES.get(lang, (describe(lang).display[:3], "#6e7781", "#fff"))
    size = 30 if len(label) <= 2 else 22 if len(label) == 3 else 18
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" '
            f'viewBox="0 0 64 64"><title>{escape(describe(lang).display)}</title>'
            f'<rect width="64" height="64" rx="10" fill="{tile}"/>'
            f'<text x="32" y="32" dy="0.35em" text-anchor="middle" '
            f'font-family="sans-serif" font-weight="bold" font-size="{size}" '
            f'fill="{ink}">{escape(label)}</text></svg>')
