// Sorna's Node.js driver: one vm context for the whole session, driven by the runner
// over fds 3 (runs in) and 4 (their ends out); see "Runner <-> driver" in PROTOCOL.md.
// With SORNA_TRANSPILE (typescript, coffeescript) it drives those languages too: each
// run is compiled to JavaScript first. `run.js --program FILE ARGS...` runs a program
// file of such a language, with the modules it requires compiled as they load.
"use strict";
const fs = require("fs");
const Module = require("module");
const path = require("path");
const util = require("util");
const vm = require("vm");

const IN = 3, OUT = 4;
const TRANSPILERS = {
  typescript: { extensions: [".ts"], compile(code, filename) {
    const ts = require("typescript");
    const out = ts.transpileModule(code, { fileName: filename, reportDiagnostics: true,
      compilerOptions: { target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.CommonJS,
                         esModuleInterop: true } });
    if (out.diagnostics.length) {
      const error = new SyntaxError(out.diagnostics.map((d) =>
        ts.flattenDiagnosticMessageText(d.messageText, "\n")).join("\n"));
      error.stack = `SyntaxError: ${error.message}`;
      throw error;
    }
    return out.outputText;
  } },
  coffeescript: { extensions: [".coffee", ".litcoffee"], compile(code, filename) {
    try {
      return require("coffeescript").compile(code, { bare: true, filename });
    } catch (e) {
      const error = new SyntaxError(e.message);
      error.stack = `SyntaxError: ${e.toString()}`;
      throw error;
    }
  } },
};
const transpiler = TRANSPILERS[process.env.SORNA_TRANSPILE];
const toJavaScript = transpiler ? transpiler.compile : (code) => code;

if (process.argv[2] === "--program") {
  const file = path.resolve(process.argv[3]);
  for (const extension of transpiler ? transpiler.extensions : []) {
    require.extensions[extension] = (module, filename) =>
      module._compile(toJavaScript(fs.readFileSync(filename, "utf8"), filename), filename);
  }
  process.argv.splice(1, 3, file);
  Module._load(file, null, true);
  return;
}

const sandbox = { require, console, process, Buffer, URL, TextEncoder, TextDecoder,
                  setTimeout, clearTimeout, setInterval, clearInterval, setImmediate,
                  clearImmediate, queueMicrotask };
sandbox.global = sandbox;
if (transpiler) {  // a cell that imports becomes a CommonJS module's body
  sandbox.module = { exports: {} };
  sandbox.exports = sandbox.module.exports;
}
const context = vm.createContext(sandbox);
process.on("SIGINT", () => {});  // between runs an interrupt means nothing
// Writes to the output pipes are complete when they return: a run's end must not come
// before its output (libuv would finish a large write later, asynchronously).
for (const stream of [process.stdout, process.stderr]) {
  if (stream._handle && stream._handle.setBlocking) stream._handle.setBlocking(true);
}

function readExactly(n) {
  const buffer = Buffer.alloc(n);
  for (let done = 0; done < n;) {
    const got = fs.readSync(IN, buffer, done, n - done, null);
    if (got === 0) process.exit(0);
    done += got;
  }
  return buffer;
}

function readHeader() {
  const bytes = [];
  for (;;) {
    const byte = readExactly(1)[0];
    if (byte === 10) return Buffer.from(bytes).toString("ascii").split(" ");
    bytes.push(byte);
  }
}

function emit(kind, ...fields) {
  const data = fields.map((f) => Buffer.from(String(f), "utf8"));
  const header = [kind, ...data.map((d) => d.length)].join(" ") + "\n";
  const message = Buffer.concat([Buffer.from(header), ...data]);
  for (let done = 0; done < message.length;) done += fs.writeSync(OUT, message, done);
}

function userStack(stack) {
  // The user's frames only: from the first of the driver's own (or Node's vm), cut.
  const lines = String(stack).split("\n");
  const cut = lines.findIndex((l) => /node:vm|run\.js|sigintHandlersWrap/.test(l));
  return (cut < 0 ? lines : lines.slice(0, cut)).join("\n");
}

function report(error, before) {
  if (error instanceof Error || (error && error.stack)) {
    const interrupted = error.code === "ERR_SCRIPT_EXECUTION_INTERRUPTED";
    emit("error", interrupted ? "Interrupt" : error.name || "Error",
         interrupted ? "" : error.message, userStack(error.stack || error), before ? "1" : "0");
  } else {
    emit("error", "Thrown", util.inspect(error), util.inspect(error), before ? "1" : "0");
  }
}

// Completion (between runs): names of the context's global and of the objects a dotted
// path leads to, found through property descriptors, so that no getter of the user's
// runs; and the keywords.
const KEYWORDS = ["await", "break", "case", "catch", "class", "const", "continue",
  "debugger", "default", "delete", "do", "else", "extends", "false", "finally", "for",
  "function", "if", "in", "instanceof", "let", "new", "null", "return", "super", "switch",
  "this", "throw", "true", "try", "typeof", "undefined", "var", "void", "while", "yield"];
const inner = vm.runInContext("globalThis", context);

function namesOf(object) {
  const names = new Set();
  for (let o = object; o !== null && o !== undefined; o = Object.getPrototypeOf(o)) {
    for (const name of Object.getOwnPropertyNames(o)) names.add(name);
  }
  return names;
}

function valueOf(object, name) {
  for (let o = object; o !== null && o !== undefined; o = Object.getPrototypeOf(o)) {
    const described = Object.getOwnPropertyDescriptor(o, name);
    if (described) return "value" in described ? described.value : undefined;
  }
  return undefined;
}

function complete(token) {
  const path = token.split(".");
  const prefix = path.pop();
  let names;
  if (path.length === 0) {
    names = new Set([...namesOf(inner), ...KEYWORDS]);
  } else {
    let object = inner;
    for (const name of path) {
      object = valueOf(object, name);
      if (object === undefined || object === null) return [];
    }
    names = namesOf(Object(object));
  }
  const head = path.length ? path.join(".") + "." : "";
  return [...names].filter((n) => n.startsWith(prefix) && /^[A-Za-z_$][\w$]*$/.test(n))
    .sort().slice(0, 500).map((n) => head + n);
}

// Inspection (between runs): the value a dotted path leads to, its type, a function's
// first line of source and arity; shown without getters, custom inspectors or proxies'
// traps.
function describe(token) {
  let value = inner;
  for (const name of token.split(".")) {
    if (value === undefined || value === null || !name) return "";
    value = valueOf(Object(value), name);
  }
  if (value === undefined) return "";
  const type = value === null ? "null" : typeof value;
  if (type === "function") {
    const head = Function.prototype.toString.call(value).split("\n")[0].slice(0, 300);
    return `${token}: function of ${valueOf(value, "length")} arguments\n${head}`;
  }
  return `${token}: ${type}\n` + util.inspect(value, { depth: 1, getters: false,
    customInspect: false, showProxy: true, maxArrayLength: 20, maxStringLength: 2000 });
}

async function main() {
  for (;;) {
    const [kind, size] = readHeader();
    const code = readExactly(Number(size)).toString("utf8");
    if (kind === "complete" || kind === "inspect") {
      let answer = kind === "complete" ? [] : "";
      try { answer = kind === "complete" ? complete(code) : describe(code); } catch (e) {}
      if (kind === "complete") emit("matches", answer.join("\n"));
      else emit("found", answer);
      continue;
    }
    let script;
    try {
      script = new vm.Script(toJavaScript(code, "input"), { filename: "<input>" });
    } catch (error) {
      report(error, true);
      emit("done");
      continue;
    }
    try {
      let value = script.runInContext(context, { breakOnSigint: true });
      if (value && typeof value.then === "function") value = await value;
      if (value !== undefined) emit("result", util.inspect(value));
    } catch (error) {
      report(error, false);
    }
    emit("done");
  }
}

main();
