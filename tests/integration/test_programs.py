"""Real programs run unchanged (the corpus in tests/programs/, with its expected
output): through the gateway's Piston API as a Piston client sends them, and in a
kernel as `program` runs of the REPL protocol. Each language's cases run on one
cluster; every case is checked for its standard output and exit status."""

from pathlib import Path

from tests.integration.test_gateway import GatewayCase

CORPUS = Path(__file__).resolve().parent.parent / "programs"


def cases(lang):
    """(name, file name, program, stdin, args, stdout, exit status) of each case."""
    folder = CORPUS / lang
    for program in sorted(folder.iterdir()):
        if program.suffix in (".out", ".in", ".args", ".code"):
            continue
        stem = folder / program.stem

        def read(suffix, default=""):
            path = stem.with_suffix(suffix)
            return path.read_text() if path.exists() else default

        yield (program.stem, program.name, program.read_text(), read(".in"),
               read(".args").splitlines(), read(".out"), int(read(".code", "0")))


class ProgramCase:
    """Mixed into a GatewayCase per language (`lang`)."""

    lang = None

    def test_every_program_through_piston_and_in_a_kernel(self):
        corpus = list(cases(self.lang))
        self.assertGreaterEqual(len(corpus), 5, f"tests/programs/{self.lang}")
        front = self.client(self.manager)
        kernel_id = front.create(self.lang)["kernel_id"]
        self.destroy_later(front, kernel_id)
        for name, file_name, program, stdin, args, stdout, code in corpus:
            status, result, _ = self.http.post("/api/v2/execute", {
                "language": self.lang, "version": "*", "stdin": stdin, "args": args,
                "files": [{"name": file_name, "content": program}],
                "run_timeout": 20000, "compile_timeout": 30000})
            self.assertEqual(status, 200, result)
            self.assertEqual((result["run"]["stdout"], result["run"]["code"]),
                             (stdout, code), f"{self.lang}/{name} through Piston: {result}")
            self.assertEqual(self.in_kernel(front, kernel_id, name, file_name, program,
                                            stdin, args), (stdout, code),
                             f"{self.lang}/{name} in a kernel")

    def in_kernel(self, front, kernel_id, name, file_name, program, stdin, args):
        """(stdout, exit status) of a `program` run with its stdin, in a folder of its
        own (the earlier programs' sources stay in the kernel's work folder)."""
        reply = front.run_code(kernel_id, program, program={
            "name": f"{name}/{file_name}", "args": args, "stdin": stdin})
        self.assertEqual(reply["status"], "finished", reply)
        failures = reply["result"]["exceptions"]
        codes = [e[1][0] for e in failures if e[0] == "ExitStatus"]
        self.assertEqual(len(codes), len(failures), reply)
        return reply["result"]["stdout"], codes[0] if codes else 0


for _lang in sorted(p.name for p in CORPUS.iterdir() if p.is_dir()):
    _name = f"{_lang.capitalize()}ProgramTests"
    globals()[_name] = type(_name, (ProgramCase, GatewayCase),
                            {"lang": _lang, "__module__": __name__})
del _lang, _name
