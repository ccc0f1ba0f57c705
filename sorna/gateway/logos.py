"""Each language's logo for Jupyter front-ends (a kernelspec's `logo-svg` resource): a
tile in the language's colour with its short name; the browser draws the text."""

from xml.sax.saxutils import escape

from sorna.gateway.languages import describe

def logo_svg(lang):
    """The SVG (text) of `lang`'s logo (its language.toml's [logo]: the colours GitHub's
    Linguist gives it); a language without a folder gets a grey tile with the first
    letters of its name."""
    about = describe(lang)
    label, tile, ink = about.logo.label, about.logo.tile, about.logo.ink
    size = 30 if len(label) <= 2 else 22 if len(label) == 3 else 18
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" '
            f'viewBox="0 0 64 64"><title>{escape(about.display)}</title>'
            f'<rect width="64" height="64" rx="10" fill="{tile}"/>'
            f'<text x="32" y="32" dy="0.35em" text-anchor="middle" '
            f'font-family="sans-serif" font-weight="bold" font-size="{size}" '
            f'fill="{ink}">{escape(label)}</text></svg>')
