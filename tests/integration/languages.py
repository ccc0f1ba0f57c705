"""The programs of the conformance suite (test_languages.py), in every language.

Each entry gives, per case, the code that does the same thing in that language. `N` in
`output` is filled in with a byte count. Interpreted languages keep state between runs;
compiled ones run each program on its own.
"""

C_HEAD = "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <unistd.h>\n"
CPP_HEAD = "#include <iostream>\n#include <fstream>\n#include <string>\n#include <unistd.h>\n"


def c_main(body):
    return C_HEAD + "int main(void) {\n" + body + "\n    return 0;\n}\n"


def cpp_main(body):
    return CPP_HEAD + "int main() {\n" + body + "\n    return 0;\n}\n"


def rust_main(body):
    return "use std::io::{self, Read, Write};\nfn main() {\n" + body + "\n}\n"


def go_main(body, imports=("fmt",)):
    return ("package main\nimport (\n" + "".join(f'    "{i}"\n' for i in imports)
            + ")\nfunc main() {\n" + body + "\n}\n")


def java_main(body, imports=("java.util.*", "java.io.*", "java.nio.file.*")):
    return ("".join(f"import {i};\n" for i in imports)
            + "public class Main {\n    public static void main(String[] args) throws "
            "Exception {\n" + body + "\n    }\n}\n")


SECCOMP_C = """FILE *f = fopen("/proc/self/status", "r"); char line[256];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Seccomp_filters:", 16)) printf("%d\\n", atoi(line + 16));"""

PROGRAMS = {
    "python3": {
        "hello": 'print("hello, world")',
        "set": "kept = 40", "get": "print(kept + 2)",
        "inspect": [('kept', 'int')],
        "complete": [('kep', 'kept'), ('kept.bit_l', 'kept.bit_length')],
        "streams": 'import sys\nprint("out1")\nprint("err1", file=sys.stderr)\nprint("out2")',
        "slow": 'import time\nprint("first", flush=True)\ntime.sleep(1.5)\nprint("second")',
        "error": 'raise ValueError("boom")', "error_name": "ValueError",
        "syntax": "def (:",
        "utf8": 'print("안녕 😀")',
        "output": 'import sys\n_ = sys.stdout.write("x" * N)',
        "ask": 'name = input("Name? ")\nprint("hello", name)',
        "count": 'import sys\nprint(len(sys.stdin.read().splitlines()))',
        "loop": "while True:\n    pass",
        "exit": "import sys\nsys.exit(3)",
        "file": 'open("out.txt", "w").write("x")',
        "seccomp": 'print([l for l in open("/proc/self/status") '
                   'if l.startswith("Seccomp_filters")][0].split()[1])',
        "value": "6 * 7", "value_shown": "42",
    },
    "nodejs": {
        "hello": 'console.log("hello, world")',
        "set": "var kept = 40", "get": "console.log(kept + 2)",
        "inspect": [('kept', 'number'), ('Math.max', 'function')],
        "complete": [('kep', 'kept'), ('Math.fl', 'Math.floor')],
        "streams": 'console.log("out1"); console.error("err1"); console.log("out2")',
        "slow": 'console.log("first");\n'
                "Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);\n"
                'console.log("second")',
        "error": 'throw new RangeError("boom")', "error_name": "RangeError",
        "syntax": "let = = 1;",
        "utf8": 'console.log("안녕 😀")',
        "output": 'void process.stdout.write("x".repeat(N))',
        "ask": 'process.stdout.write("Name? ");\nconst b = Buffer.alloc(100);\n'
               'const n = require("fs").readSync(0, b);\n'
               'console.log("hello " + b.toString("utf8", 0, n).trim())',
        "count": ('const fs = require("fs"); const b = Buffer.alloc(65536); let t = "", n;\n'
                  'while ((n = fs.readSync(0, b)) > 0) t += b.toString("utf8", 0, n);\n'
                  'console.log(t.split("\\n").filter(l => l).length)'),
        "loop": "while (true) {}",
        "exit": "process.exit(3)",
        "file": 'require("fs").writeFileSync("out.txt", "x")',
        "seccomp": 'console.log(require("fs").readFileSync("/proc/self/status", "utf8")'
                   '.match(/Seccomp_filters:\\s+(\\d+)/)[1])',
        "value": "6 * 7", "value_shown": "42",
    },
    "ruby": {
        "hello": 'puts "hello, world"',
        "set": "kept = 40", "get": "puts kept + 2",
        "inspect": [('kept', 'Integer'), ('puts', 'Kernel')],
        "complete": [('kep', 'kept'), ('kept.to_', 'kept.to_s')],
        "streams": 'puts "out1"; $stderr.puts "err1"; puts "out2"',
        "slow": 'puts "first"; sleep 1.5; puts "second"',
        "error": 'raise ArgumentError, "boom"', "error_name": "ArgumentError",
        "syntax": "def (",
        "utf8": 'puts "안녕 😀"',
        "output": 'print "x" * N',
        "ask": 'print "Name? "; name = gets.chomp; puts "hello #{name}"',
        "count": 'puts STDIN.read.lines.count',
        "loop": "loop { }",
        "exit": "exit 3",
        "file": 'File.write("out.txt", "x")',
        "seccomp": 'puts File.read("/proc/self/status")[/Seccomp_filters:\\s+(\\d+)/, 1]',
        "value": "6 * 7", "value_shown": "42",
    },
    "r": {
        "hello": 'cat("hello, world\\n")',
        "set": "kept <- 40", "get": 'cat(kept + 2, "\\n", sep = "")',
        "inspect": [('kept', 'num 40'), ('print', 'print(x, ...)')],
        "complete": [('kep', 'kept'), ('pri', 'print')],
        "streams": 'cat("out1\\n"); message("err1"); cat("out2\\n")',
        "slow": 'cat("first\\n"); Sys.sleep(1.5); cat("second\\n")',
        "error": 'stop("boom")', "error_name": "simpleError",
        "syntax": "x <- (",
        "utf8": 'cat("안녕 😀\\n")',
        "output": 'cat(strrep("x", N))',
        "ask": 'cat("Name? "); name <- readLines(file("stdin"), n = 1); '
               'cat("hello", name, "\\n")',
        "count": 'cat(length(readLines(file("stdin"))), "\\n", sep = "")',
        "loop": "repeat {}",
        "exit": "quit(status = 3)",
        "file": 'writeLines("x", "out.txt")',
        "seccomp": 'cat(sub("Seccomp_filters:\\\\s*", "", grep("^Seccomp_filters", '
                   'readLines("/proc/self/status"), value = TRUE)), "\\n", sep = "")',
        "value": "6 * 7", "value_shown": "[1] 42",
    },
    "php": {
        "hello": 'echo "hello, world\\n";',
        "set": "$kept = 40;", "get": 'echo $kept + 2, "\\n";',
        "inspect": [('$kept', 'int'), ('str_replace', 'function str_replace(')],
        "complete": [('$kep', '$kept'), ('str_rep', 'str_replace')],
        "streams": 'echo "out1\\n"; fwrite(STDERR, "err1\\n"); echo "out2\\n";',
        "slow": 'echo "first\\n"; usleep(1500000); echo "second\\n";',
        "error": 'throw new RuntimeException("boom");', "error_name": "RuntimeException",
        "syntax": "echo (;",
        "utf8": 'echo "안녕 😀\\n";',
        "output": 'echo str_repeat("x", N);',
        "ask": 'echo "Name? "; $name = trim(fgets(STDIN)); echo "hello $name\\n";',
        "count": 'echo count(file("php://stdin")), "\\n";',
        "loop": "while (true) {}",
        "exit": "exit(3);",
        "file": 'file_put_contents("out.txt", "x");',
        "seccomp": "preg_match('/Seccomp_filters:\\s+(\\d+)/', "
                   'file_get_contents("/proc/self/status"), $m); echo $m[1], "\\n";',
    },
    "perl": {
        "hello": 'print "hello, world\\n";',
        "set": "$kept = 40;", "get": 'print $kept + 2, "\\n";',
        "inspect": [('$kept', 'scalar'), ('print', "Perl's functions")],
        "complete": [('$kep', '$kept'), ('pri', 'print')],
        "streams": 'print "out1\\n"; print STDERR "err1\\n"; print "out2\\n";',
        "slow": 'print "first\\n"; select(undef, undef, undef, 1.5); print "second\\n";',
        "error": 'die "boom\\n";', "error_name": "Error",
        "syntax": "print (;",
        "utf8": 'print "안녕 😀\\n";',
        "output": 'print "x" x N;',
        "ask": 'print "Name? "; my $name = <STDIN>; chomp $name; print "hello $name\\n";',
        "count": 'my @lines = <STDIN>; print scalar(@lines), "\\n";',
        "loop": "1 while 1;",
        "exit": "exit 3;",
        "file": 'open(my $f, ">", "out.txt"); print $f "x"; close $f;',
        "seccomp": 'open(my $s, "<", "/proc/self/status"); '
                   'while (<$s>) { print "$1\\n" if /Seccomp_filters:\\s+(\\d+)/ }',
    },
    "lua": {
        "hello": 'print("hello, world")',
        "set": "kept = 40", "get": "print(kept + 2)",
        "inspect": [('kept', 'number'), ('string.upper', 'function')],
        "complete": [('kep', 'kept'), ('string.up', 'string.upper')],
        "streams": 'print("out1"); io.stderr:write("err1\\n"); print("out2")',
        "slow": 'print("first"); os.execute("sleep 1.5"); print("second")',
        "error": 'error("boom")', "error_name": "Error",
        "syntax": "x = = 1",
        "utf8": 'print("안녕 😀")',
        "output": 'do io.write(string.rep("x", N)) end',
        "ask": 'io.write("Name? "); local name = io.read("l"); print("hello " .. name)',
        "count": 'local n = 0; for _ in io.lines() do n = n + 1 end; print(n)',
        "loop": "while true do end",
        "exit": "os.exit(3)",
        "file": 'local f = io.open("out.txt", "w"); f:write("x"); f:close()',
        "seccomp": 'for l in io.lines("/proc/self/status") do '
                   'local n = l:match("Seccomp_filters:%s+(%d+)") if n then print(n) end end',
        "value": "6 * 7", "value_shown": "42",
    },
    "bash": {
        "hello": 'echo "hello, world"',
        "set": "kept=40", "get": "echo $((kept + 2))",
        "inspect": [('$kept', 'kept="40"'), ('echo', 'builtin')],
        "complete": [('$kep', '$kept'), ('ech', 'echo')],
        "streams": "echo out1; echo err1 >&2; echo out2",
        "slow": "echo first; sleep 1.5; echo second",
        "error": "echo boom >&2; false", "error_name": "ExitStatus",
        "syntax": "if then fi",
        "utf8": 'echo "안녕 😀"',
        "output": "head -c N /dev/zero | tr '\\0' x",
        "ask": 'printf "Name? "; read name; echo "hello $name"',
        "count": 'n=0; while read -r line; do n=$((n + 1)); done; echo $n',
        "loop": "while :; do :; done",
        "exit": "exit 3",
        "file": "echo x > out.txt",
        "seccomp": "while read k v; do [[ $k == Seccomp_filters: ]] && echo $v; "
                   "done < /proc/self/status; true",
    },
    "c": {
        "hello": c_main('    printf("hello, world\\n");'),
        "streams": c_main('    printf("out1\\n"); fflush(stdout);\n'
                          '    fprintf(stderr, "err1\\n");\n    printf("out2\\n");'),
        "slow": c_main('    printf("first\\n");\n    usleep(1500000);\n'
                       '    printf("second\\n");'),
        "error": c_main('    fprintf(stderr, "boom\\n");\n    abort();'),
        "error_name": "Signal",
        "syntax": "int main( {",
        "utf8": c_main('    printf("안녕 😀\\n");'),
        "output": c_main("    for (long i = 0; i < N; i++) putchar('x');"),
        "ask": c_main('    char name[100];\n    printf("Name? ");\n'
                      '    if (!fgets(name, sizeof name, stdin)) return 1;\n'
                      '    name[strcspn(name, "\\n")] = 0;\n    printf("hello %s\\n", name);'),
        "count": c_main('    int n = 0, ch;\n    while ((ch = getchar()) != EOF) if (ch == \'\\n\') n++;\n'
                        '    printf("%d\\n", n);'),
        "loop": c_main("    for (;;) ;"),
        "exit": c_main("    exit(3);"),
        "file": c_main('    FILE *f = fopen("out.txt", "w"); fputs("x", f); fclose(f);'),
        "counter": C_HEAD + "static int runs;\nint main(void) {\n    runs++;\n"
                            '    printf("%d\\n", runs);\n    return 0;\n}\n',
        "seccomp": c_main("    " + SECCOMP_C),
    },
    "cpp": {
        "hello": cpp_main('    std::cout << "hello, world" << std::endl;'),
        "streams": cpp_main('    std::cout << "out1" << std::endl;\n'
                            '    std::cerr << "err1" << std::endl;\n'
                            '    std::cout << "out2" << std::endl;'),
        "slow": cpp_main('    std::cout << "first" << std::endl;\n    usleep(1500000);\n'
                         '    std::cout << "second" << std::endl;'),
        "error": cpp_main('    throw std::runtime_error("boom");'), "error_name": "Signal",
        "syntax": "int main( {",
        "utf8": cpp_main('    std::cout << "안녕 😀" << std::endl;'),
        "output": cpp_main("    std::cout << std::string(N, 'x');"),
        "ask": cpp_main('    std::string name;\n    std::cout << "Name? ";\n'
                        "    std::getline(std::cin, name);\n"
                        '    std::cout << "hello " << name << std::endl;'),
        "count": cpp_main('    std::string line; int n = 0;\n    while (std::getline(std::cin, line)) n++;\n'
                          '    std::cout << n << std::endl;'),
        "loop": cpp_main("    for (;;) ;"),
        "exit": cpp_main("    std::exit(3);"),
        "file": cpp_main('    std::ofstream("out.txt") << "x";'),
        "counter": CPP_HEAD + "static int runs;\nint main() {\n    runs++;\n"
                              "    std::cout << runs << std::endl;\n    return 0;\n}\n",
        "seccomp": cpp_main('    std::ifstream f("/proc/self/status"); std::string l;\n'
                            '    while (std::getline(f, l))\n'
                            '        if (l.rfind("Seccomp_filters:", 0) == 0)\n'
                            "            std::cout << std::stoi(l.substr(16)) << std::endl;"),
    },
    "rust": {
        "hello": rust_main('    println!("hello, world");'),
        "streams": rust_main('    println!("out1");\n    eprintln!("err1");\n'
                             '    println!("out2");'),
        "slow": rust_main('    println!("first");\n'
                          "    std::thread::sleep(std::time::Duration::from_millis(1500));\n"
                          '    println!("second");'),
        "error": rust_main('    panic!("boom");'), "error_name": "ExitStatus",
        "syntax": "fn main( {",
        "utf8": rust_main('    println!("안녕 😀");'),
        "output": rust_main('    print!("{}", "x".repeat(N));'),
        "ask": rust_main('    print!("Name? ");\n    io::stdout().flush().unwrap();\n'
                         "    let mut name = String::new();\n"
                         "    io::stdin().read_line(&mut name).unwrap();\n"
                         '    println!("hello {}", name.trim());'),
        "count": rust_main('    let mut s = String::new();\n    io::stdin().read_to_string(&mut s).unwrap();\n'
                           '    println!("{}", s.lines().count());'),
        "loop": rust_main("    loop {}"),
        "exit": rust_main("    std::process::exit(3);"),
        "file": rust_main('    std::fs::write("out.txt", "x").unwrap();'),
        "counter": "static mut RUNS: i32 = 0;\nfn main() {\n"
                   '    unsafe { RUNS += 1; println!("{}", RUNS); }\n}\n',
        "seccomp": rust_main('    let s = std::fs::read_to_string("/proc/self/status").unwrap();\n'
                             '    for l in s.lines() { if let Some(v) = '
                             'l.strip_prefix("Seccomp_filters:") { println!("{}", v.trim()); } }'),
    },
    "go": {
        "hello": go_main('    fmt.Println("hello, world")'),
        "streams": go_main('    fmt.Println("out1")\n    fmt.Fprintln(os.Stderr, "err1")\n'
                           '    fmt.Println("out2")', ("fmt", "os")),
        "slow": go_main('    fmt.Println("first")\n    time.Sleep(1500 * time.Millisecond)\n'
                        '    fmt.Println("second")', ("fmt", "time")),
        "error": go_main('    panic("boom")', ()), "error_name": "ExitStatus",
        "syntax": "package main\nfunc main( {",
        "utf8": go_main('    fmt.Println("안녕 😀")'),
        "output": go_main('    fmt.Print(strings.Repeat("x", N))', ("fmt", "strings")),
        "ask": go_main('    fmt.Print("Name? ")\n'
                       "    name, _ := bufio.NewReader(os.Stdin).ReadString('\\n')\n"
                       '    fmt.Println("hello " + strings.TrimSpace(name))',
                       ("bufio", "fmt", "os", "strings")),
        "count": go_main('    s := bufio.NewScanner(os.Stdin)\n    n := 0\n    for s.Scan() {\n        n++\n    }\n'
                         '    fmt.Println(n)', ("bufio", "fmt", "os")),
        "loop": go_main("    for {\n    }", ()),
        "exit": go_main("    os.Exit(3)", ("os",)),
        "file": go_main('    os.WriteFile("out.txt", []byte("x"), 0644)', ("os",)),
        "counter": 'package main\nimport "fmt"\nvar runs int\n'
                   "func main() {\n    runs++\n    fmt.Println(runs)\n}\n",
        "seccomp": go_main('    s, _ := os.ReadFile("/proc/self/status")\n'
                           '    for _, l := range strings.Split(string(s), "\\n") {\n'
                           '        if strings.HasPrefix(l, "Seccomp_filters:") {\n'
                           '            fmt.Println(strings.TrimSpace(l[16:]))\n'
                           "        }\n    }", ("fmt", "os", "strings")),
    },
    "java": {
        "hello": java_main('        System.out.println("hello, world");'),
        "streams": java_main('        System.out.println("out1");\n'
                             '        System.err.println("err1");\n'
                             '        System.out.println("out2");'),
        "slow": java_main('        System.out.println("first");\n'
                          "        Thread.sleep(1500);\n"
                          '        System.out.println("second");'),
        "error": java_main('        throw new IllegalStateException("boom");'),
        "error_name": "ExitStatus",
        "syntax": "public class Main { void (",
        "utf8": java_main('        System.out.println("안녕 😀");'),
        "output": java_main('        System.out.print("x".repeat(N));'),
        "ask": java_main('        System.out.println("Name? ");\n'
                         "        String name = new Scanner(System.in).nextLine();\n"
                         '        System.out.println("hello " + name);'),
        "count": java_main('        BufferedReader r = new BufferedReader(new InputStreamReader(System.in));\n'
                           '        int n = 0;\n        while (r.readLine() != null) n++;\n'
                           '        System.out.println(n);'),
        "loop": java_main("        for (;;) { }"),
        "exit": java_main("        System.exit(3);"),
        "file": java_main('        Files.writeString(Path.of("out.txt"), "x");'),
        "counter": "public class Main {\n    static int runs;\n"
                   "    public static void main(String[] args) {\n"
                   "        runs++;\n        System.out.println(runs);\n    }\n}\n",
        "seccomp": java_main('        for (String l : Files.readAllLines(Path.of("/proc/self/status")))\n'
                             '            if (l.startsWith("Seccomp_filters:"))\n'
                             "                System.out.println(l.substring(16).trim());"),
    },
}

# A whole program (an execute with `program`) in each language: it prints its arguments
# joined by "|", calls a function of a second file, writes "warn" on stderr and exits
# with status 3. Each gives (program, [(other file's name, content), ...]).
AS_PROGRAM = {
    "python3": ("import sys, helper\nprint('|'.join(sys.argv[1:]))\nhelper.help()\n"
                "print('warn', file=sys.stderr)\nsys.exit(3)\n'not echoed'\n",
                [("helper.py", "def help():\n    print('helped')\n")]),
    "nodejs": ("const helper = require('./helper');\n"
               "console.log(process.argv.slice(2).join('|'));\nhelper.help();\n"
               "console.error('warn');\nprocess.exit(3);\n",
               [("helper.js", "exports.help = () => console.log('helped');\n")]),
    "ruby": ("require_relative 'helper'\nputs ARGV.join('|')\nHelper.help\nwarn 'warn'\n"
             "exit 3\n",
             [("helper.rb", "module Helper\n  def self.help\n    puts 'helped'\n  end\nend\n")]),
    "r": ("source('helper.R')\n"
          "cat(paste(commandArgs(trailingOnly = TRUE), collapse = '|'), '\\n', sep = '')\n"
          "help_me()\nmessage('warn')\nquit(status = 3)\n",
          [("helper.R", "help_me <- function() cat('helped\\n')\n")]),
    "php": ("<?php\nrequire __DIR__ . '/helper.php';\n"
            "echo implode('|', array_slice($argv, 1)), \"\\n\";\nhelp_me();\n"
            "fwrite(STDERR, \"warn\\n\");\nexit(3);\n",
            [("helper.php", "<?php\nfunction help_me() { echo \"helped\\n\"; }\n")]),
    "perl": ("use FindBin;\nuse lib $FindBin::Bin;\nrequire 'helper.pl';\n"
             "print join('|', @ARGV), \"\\n\";\nhelp_me();\nprint STDERR \"warn\\n\";\n"
             "exit 3;\n",
             [("helper.pl", "sub help_me { print \"helped\\n\" }\n1;\n")]),
    "lua": ("local helper = require('helper')\nprint(table.concat(arg, '|'))\n"
            "helper.help()\nio.stderr:write('warn\\n')\nos.exit(3)\n",
            [("helper.lua", "local M = {}\nfunction M.help() print('helped') end\n"
                            "return M\n")]),
    "bash": ('source ./helper.sh\n(IFS="|"; echo "$*")\nhelp_me\necho warn >&2\nexit 3\n',
             [("helper.sh", "help_me() { echo helped; }\n")]),
    "c": ('#include <stdio.h>\n#include "helper.h"\n'
          "int main(int argc, char **argv) {\n"
          '    for (int i = 1; i < argc; i++) printf(i > 1 ? "|%s" : "%s", argv[i]);\n'
          '    printf("\\n");\n    help_me();\n    fprintf(stderr, "warn\\n");\n'
          "    return 3;\n}\n",
          [("helper.h", "void help_me(void);\n"),
           ("helper.c", '#include <stdio.h>\n#include "helper.h"\n'
                        'void help_me(void) { printf("helped\\n"); }\n')]),
    "cpp": ('#include <iostream>\n#include "helper.hpp"\n'
            "int main(int argc, char **argv) {\n"
            "    for (int i = 1; i < argc; i++) std::cout << (i > 1 ? \"|\" : \"\") << argv[i];\n"
            "    std::cout << std::endl;\n    help_me();\n"
            '    std::cerr << "warn" << std::endl;\n    return 3;\n}\n',
            [("helper.hpp", "void help_me();\n"),
             ("helper.cpp", '#include <iostream>\n#include "helper.hpp"\n'
                            'void help_me() { std::cout << "helped" << std::endl; }\n')]),
    "rust": ("mod helper;\nfn main() {\n"
             "    let args: Vec<String> = std::env::args().skip(1).collect();\n"
             '    println!("{}", args.join("|"));\n    helper::help();\n'
             '    eprintln!("warn");\n    std::process::exit(3);\n}\n',
             [("helper.rs", 'pub fn help() { println!("helped"); }\n')]),
    "go": ('package main\nimport (\n\t"fmt"\n\t"os"\n\t"strings"\n)\nfunc main() {\n'
           '\tfmt.Println(strings.Join(os.Args[1:], "|"))\n\thelp()\n'
           '\tfmt.Fprintln(os.Stderr, "warn")\n\tos.Exit(3)\n}\n',
           [("helper.go", 'package main\nimport "fmt"\nfunc help() { fmt.Println("helped") }\n')]),
    "java": ("public class Greeter {\n    public static void main(String[] args) {\n"
             '        System.out.println(String.join("|", args));\n        Helper.help();\n'
             '        System.err.println("warn");\n        System.exit(3);\n    }\n}\n',
             [("Helper.java", "public class Helper {\n"
                              '    static void help() { System.out.println("helped"); }\n}\n')]),
}
PROGRAM_ARGS = ["a", "b c"]
PROGRAM_STDOUT = "a|b c\nhelped\n"

COMPILED = {"c", "cpp", "rust", "go", "java"}
INTERPRETED = set(PROGRAMS) - COMPILED


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
