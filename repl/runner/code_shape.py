"""The shape of a cell of an interpreted language other than Python, as a console sees
it without running it, by rules its folder gives (`[shape]` in `language.toml`, which
the image passes as JSON in SORNA_SHAPE):

    quotes          the characters that open and close a string
    line, block     line comment marks; a block comment's opening and closing marks
    indent          one level of indentation for the next line
    opens, closes   block words (Ruby's `def ... end`, bash's `if ... fi`)
    opens_at_start  words that open a block only where a statement starts (Ruby's `if`)
    continues       a last token after which more must follow (`|`, `&&`, `<-`)
    terminator      what ends every statement (Erlang's and Prolog's `.`)
    keyword_colons  `word:` is a keyword argument, not a block word (Elixir's `do:`)
    comment_needs_space  a line comment mark counts only after a space (bash's `$#`)
    loop_do         `while ... do` and `for ... do` open one block, not two (Ruby)
    token           a pattern for the token a completion replaces, at the end of the
                    text before the cursor (`Math.fl`, `$GLOB`, `x$col`)

`is_complete` says whether the cell is complete: what Jupyter's `is_complete_request`
asks (a console runs the cell on Enter, or waits for another line). The code is
scanned, never run: strings and comments are skipped, brackets must pair, and block
words must close. A closing that opens nothing is `invalid`; something left open is
`incomplete`, with the next line's indent.
"""

import functools
import re

PAIRS = {")": "(", "]": "[", "}": "{"}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*[?!]?")
# Ruby's `while x do` and `for x in y do` have one block, not two.
_LOOP_DO = ("while", "until", "for")


NAME_REST = re.compile(r"\w*")  # the rest of a name after the cursor, for inspection


@functools.lru_cache(maxsize=None)
def _token_pattern(pattern):
    return re.compile(pattern)


def completion_token(rules, text):
    """The token at the end of `text` (what is before the cursor)."""
    pattern = (rules or {}).get("token")
    return _token_pattern(pattern).search(text[-1024:]).group() if pattern else ""


def is_complete(rules, code):
    """(status, indent): `complete`, `incomplete` (with the next line's indent),
    `invalid`, or `unknown` without rules."""
    if not rules or "quotes" not in rules:
        return "unknown", ""
    try:
        depth, last = _scan(rules, code)
    except _Invalid:
        return "invalid", ""
    if depth is None:  # inside a string or comment
        return "incomplete", ""
    if depth:
        return "incomplete", rules["indent"] * depth
    if last in rules.get("continues", ()):  # a binary operator, a pipe: more follows
        return "incomplete", rules["indent"]
    if rules.get("terminator") and code.strip() and last != rules["terminator"]:
        return "incomplete", rules["indent"]
    return "complete", ""


class _Invalid(Exception):
    pass


def _scan(rules, code):
    """(depth of open brackets and blocks, the last token), or (None, "") when the code
    ends inside a string or comment; _Invalid for a closing that opens nothing."""
    stack = []
    quotes, line_comments = rules["quotes"], rules.get("line", ())
    block = rules.get("block")
    at_start = True  # where a statement may start (for `opens_at_start`)
    loop_line = False  # a `while`/`for` began this statement (Ruby's `do` is its own)
    last = ""
    i, n = 0, len(code)
    while i < n:
        c = code[i]
        if block and code.startswith(block[0], i):
            end = code.find(block[1], i + len(block[0]))
            if end < 0:
                return None, ""
            i = end + len(block[1])
            continue
        if any(code.startswith(mark, i) for mark in line_comments) and \
                not (rules.get("comment_needs_space") and i and not code[i - 1].isspace()):
            end = code.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in quotes:
            i = _string_end(code, i, c)
            if i is None:
                return None, ""
            last, at_start = c, False
            continue
        if c in "([{":
            stack.append(c)
            last, at_start = c, True
        elif c == ")" and stack and stack[-1] == "case":
            last, at_start = c, True  # bash's `pattern)` in a case
        elif c in PAIRS:
            if not stack or stack[-1] != PAIRS[c]:
                raise _Invalid()
            stack.pop()
            last, at_start = c, False
        elif c == "\n" or c == ";":
            at_start, loop_line = True, False
            if c == ";":
                last = c
        elif c.isspace():
            pass
        elif _WORD.match(code, i):
            word = _WORD.match(code, i).group()
            i += len(word)
            member = i > len(word) and code[i - len(word) - 1] in ".:$@"  # x.class, :end
            opens = not member and (word in rules.get("opens", ()) or (
                at_start and word in rules.get("opens_at_start", ())))
            if word == "do" and loop_line and rules.get("loop_do"):
                opens = False
            if at_start and word in _LOOP_DO:
                loop_line = True
            if opens and rules.get("keyword_colons") and code.startswith(":", i):
                opens = False  # Elixir's `do:` is a keyword, not a block
            if opens:
                stack.append(word)
            elif word in rules.get("closes", ()) and not member:
                if not stack or stack[-1] in "([{":
                    raise _Invalid()
                stack.pop()
            last, at_start = word, word in ("then", "else", "do", "in", "return")
            continue
        else:
            token = _operator(code, i)
            i += len(token)
            last, at_start = token, token in ("=", "|", "||", "&&", "&", "!")
            continue
        i += 1
    return len(stack), last


def _string_end(code, start, quote):
    """The index after the string that starts at `start`, or None if it never ends."""
    i = start + 1
    while i < len(code):
        if code[i] == "\\" and quote != "'" or code[i] == "\\" and code[i + 1:i + 2] in (
                "'", "\\"):
            i += 2
            continue
        if code[i] == quote:
            return i + 1
        i += 1
    return None


def _operator(code, i):
    for size in (3, 2):
        token = code[i:i + size]
        if token in ("<<-", "<-", "&&", "||", "|>", "->", "=>"):
            return token
    return code[i]
