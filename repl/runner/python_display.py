"""Python objects as Jupyter shows them: a MIME bundle per object from IPython's display
protocol (`_repr_mimebundle_`, `_repr_html_`, `_repr_png_`, ...) and its `repr` as
text/plain, for the value of a run's last expression and for `display(obj)`."""

import base64
import json

# The display protocol's methods, in IPython's order.
REPR_METHODS = (
    ("text/html", "_repr_html_"), ("text/markdown", "_repr_markdown_"),
    ("text/latex", "_repr_latex_"), ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"), ("image/jpeg", "_repr_jpeg_"),
    ("application/json", "_repr_json_"), ("application/javascript", "_repr_javascript_"),
)
MAX_TYPES = 16  # the most representations the agent takes for one object


def mime_bundle(obj):
    """`[[mime, content], ...]` for `obj`: text/plain always; binary content as base64,
    JSON as its text. A representation method that fails is left out (the repr still
    shows)."""
    bundle = {}
    method = _method(obj, "_repr_mimebundle_")
    if method is not None:
        data = _call(method, include=None, exclude=None)
        if isinstance(data, tuple) and data:  # (data, metadata)
            data = data[0]
        if isinstance(data, dict):
            for mime, content in list(data.items())[:MAX_TYPES]:
                _put(bundle, mime, content)
    for mime, name in REPR_METHODS:
        method = None if mime in bundle else _method(obj, name)
        if method is not None:
            content = _call(method)
            _put(bundle, mime, content[0] if isinstance(content, tuple) and content
                 else content)
    if "text/plain" not in bundle:
        bundle["text/plain"] = repr(obj)  # its errors are the user's, as in a REPL
    return [[mime, content] for mime, content in bundle.items()]


def _method(obj, name):
    # Looked up on the type, as IPython does: a class is not shown by the methods of
    # its instances.
    if isinstance(obj, type):
        return None
    method = getattr(type(obj), name, None)
    return (lambda *args, **kw: method(obj, *args, **kw)) if callable(method) else None


def _call(method, **kw):
    try:
        return method(**kw)
    except TypeError:
        if kw:
            return _call(method)
        return None
    except Exception:
        return None


def _put(bundle, mime, content):
    if not isinstance(mime, str) or not mime or len(mime) > 255 or content is None:
        return
    if mime not in bundle and len(bundle) >= MAX_TYPES - 1:  # room for text/plain
        return
    if isinstance(content, (bytes, bytearray, memoryview)):
        content = base64.b64encode(bytes(content)).decode("ascii")
    elif mime == "application/json" or mime.endswith("+json"):
        try:
            content = json.dumps(content) if not isinstance(content, str) else content
        except (TypeError, ValueError):
            return
    elif not isinstance(content, str):
        content = str(content)
    bundle[mime] = content

