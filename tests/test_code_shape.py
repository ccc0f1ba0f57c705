"""is_complete for the interpreted languages but Python (repl/runner/code_shape.py):
brackets, strings, comments and block words, by the rules of each language's folder."""

import sys

from twisted.trial.unittest import SynchronousTestCase

from sorna.testing.cluster import REPL_DIR

sys.path.insert(0, str(REPL_DIR / "runner"))
import code_shape  # noqa: E402  (the runner's folder is not a package)

from sorna import language_spec  # noqa: E402

SHAPES = {name: lang.shape for name, lang in language_spec.languages().items()
          if lang.shape}

COMPLETE, INVALID = ("complete", ""), ("invalid", "")
CASES = {
    "nodejs": [("console.log(1)", COMPLETE), ("function f() {", ("incomplete", "  ")),
               ("f(1,", ("incomplete", "  ")), ("x = `abc", ("incomplete", "")),
               ("/* note", ("incomplete", "")), ("let s = 'a(b'", COMPLETE),
               ("if (x) {\n  y()\n}", COMPLETE), ("f())", INVALID)],
    "ruby": [("puts 1", COMPLETE), ("def f", ("incomplete", "  ")),
             ("def f\n  1\nend", COMPLETE), ("x = 1 if y", COMPLETE),
             ("[1, 2].each do |x|", ("incomplete", "  ")),
             ("while x do\n  y\nend", COMPLETE), ("x.class", COMPLETE),
             ("class A\n  def b\n  end", ("incomplete", "  ")),
             ("x = if y\n  1\nelse\n  2\nend", COMPLETE), ("end", INVALID)],
    "lua": [("print(1)", COMPLETE), ("function f()", ("incomplete", "  ")),
            ("for i = 1, 3 do print(i) end", COMPLETE), ("if x then", ("incomplete", "  ")),
            ("repeat x = x + 1", ("incomplete", "  ")), ("--[[ a", ("incomplete", "")),
            ("end", INVALID)],
    "r": [("1 + 2", COMPLETE), ("f <- function(x) {", ("incomplete", "  ")),
          ("x <- 1 +", ("incomplete", "  ")), ("y %>%", ("incomplete", "  ")),
          ("'a", ("incomplete", "")), ("x)", INVALID)],
    "bash": [("echo hi", COMPLETE), ("if true; then", ("incomplete", "  ")),
             ("for i in 1 2; do echo $i; done", COMPLETE),
             ("case x in a) echo a;; esac", COMPLETE), ("echo a |", ("incomplete", "  ")),
             ("echo $# # comment", COMPLETE), ("echo 'a", ("incomplete", "")),
             ("fi", INVALID)],
    "php": [("echo 1;", COMPLETE), ("function f() {", ("incomplete", "    ")),
            ('$x = "a', ("incomplete", "")), ("# (\necho 1;", COMPLETE), ("}", INVALID)],
    "perl": [("print 1;", COMPLETE), ("sub f {", ("incomplete", "    ")),
             ("my @a = (1,", ("incomplete", "    ")), ("}", INVALID)],
}


class IsCompleteTests(SynchronousTestCase):
    def test_each_languages_cases(self):
        for language, cases in CASES.items():
            for code, expected in cases:
                self.assertEqual(code_shape.is_complete(SHAPES[language], code), expected,
                                 f"{language}: {code!r}")

    def test_without_rules_it_is_unknown(self):
        self.assertEqual(code_shape.is_complete({}, "x"), ("unknown", ""))
        self.assertEqual(code_shape.completion_token({}, "x"), "")

    def test_every_interpreter_driven_language_has_rules(self):
        for name, lang in language_spec.languages().items():
            if lang.run.driver == "interpreter":
                self.assertIn(name, SHAPES)

    def test_any_text_gets_an_answer(self):
        for language, rules in SHAPES.items():
            for code in ("", "é = 1", "\\", "'\\", "([{", ")]}", "\x00", "end end do"):
                status, indent = code_shape.is_complete(rules, code)
                self.assertIn(status, ("complete", "incomplete", "invalid"))
