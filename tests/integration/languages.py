"""The programs of the conformance suite (test_languages.py), in every language, as each
language's folder gives them (repl/<lang>/language.toml, [samples]).

Each gives, per case, the code that does the same thing in that language. `N` in
`output` is filled in with a byte count. Interpreted languages keep state between runs;
compiled ones run each program on its own.
"""

from sorna import language_spec

LANGUAGES = language_spec.languages()
PROGRAMS = {name: {case: ([tuple(pair) for pair in code] if isinstance(code, list)
                          else code)
                   for case, code in lang.samples.items()
                   if case not in ("program", "jupyter")}
            for name, lang in LANGUAGES.items()}

# A whole program (an execute with `program`) in each language: it prints its arguments
# joined by "|", calls a function of a second file, writes "warn" on stderr and exits
# with status 3. Each gives (program, [(other file's name, content), ...]).
AS_PROGRAM = {name: (lang.samples["program"]["code"],
                     [tuple(f) for f in lang.samples["program"].get("files", [])])
              for name, lang in LANGUAGES.items()}
PROGRAM_ARGS = ["a", "b c"]
PROGRAM_STDOUT = "a|b c\nhelped\n"

COMPILED = {name for name, lang in LANGUAGES.items() if lang.compiled}
STATEFUL = {name for name, lang in LANGUAGES.items() if lang.stateful}
COMPILED_WITH_SNIPPETS = COMPILED & STATEFUL


# The sandbox's hostile programs (tests/integration/test_hostile.py does them in Python).
HOSTILE = {
    "c": {
        "fork_bomb": "#include <unistd.h>\nint main(void) { for (;;) fork(); }\n",
        "memory": "#include <stdlib.h>\n#include <string.h>\nint main(void) {\n"
                  "    for (;;) { char *p = malloc(1 << 20); if (!p) return 1; "
                  "memset(p, 1, 1 << 20); }\n}\n",
        "output": "#include <stdio.h>\nint main(void) { for (;;) "
                  'puts("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"); }\n',
        "disk": '#include <stdio.h>\nint main(void) {\n    FILE *f = fopen("fill", "w");\n'
                "    static char b[1 << 16];\n    for (;;) if (fwrite(b, 1, sizeof b, f) "
                "< sizeof b) return 1;\n}\n",
    },
    "nodejs": {
        "fork_bomb": 'const cp = require("child_process");\n'
                     'for (;;) { try { cp.spawnSync("sh", ["-c", "sleep 60 &"]); } '
                     "catch (e) {} }",
        "memory": "const kept = []; for (;;) kept.push(Buffer.alloc(1 << 20, 1));",
        "output": 'for (;;) console.log("x".repeat(100));',
        "disk": 'const fs = require("fs"); const fd = fs.openSync("fill", "w");\n'
                "const b = Buffer.alloc(1 << 20); for (;;) fs.writeSync(fd, b);",
    },
    "bash": {
        "fork_bomb": "bomb() { bomb | bomb; }; bomb",
        "memory": "x=xxxxxxxxxxxxxxxx; while :; do x=$x$x; done",
        "output": "yes",
        "disk": "cat /dev/zero > fill",
    },
}
