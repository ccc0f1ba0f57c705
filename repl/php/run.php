<?php
// Sorna's PHP driver: every run is eval'ed at file scope, so its variables stay for the
// next; driven by the runner over fds 3 (runs in) and 4 (their ends out); see "Runner
// <-> driver" in docs/PROTOCOL.md. pcntl turns an interrupt into an exception.
final class SornaInterrupt extends Exception {}
pcntl_async_signals(true);
pcntl_signal(SIGINT, function () { throw new SornaInterrupt("interrupted"); });
$__sorna_in = fopen("php://fd/3", "rb");
$__sorna_out = fopen("php://fd/4", "wb");
function __sorna_emit($kind, ...$fields) {
    global $__sorna_out;
    $header = implode(" ", array_merge([$kind], array_map("strlen", $fields)));
    fwrite($__sorna_out, $header . "\n" . implode("", $fields));
    fflush($__sorna_out);
}
function __sorna_report($e, $before) {
    $name = $e instanceof SornaInterrupt ? "Interrupt" : get_class($e);
    __sorna_emit("error", $name, $e->getMessage(), $name . ": " . $e->getMessage() . "\n"
                 . $e->getTraceAsString(), $before ? "1" : "0");
}
const __SORNA_KEYWORDS = ["abstract", "array", "as", "break", "case", "catch", "class",
    "clone", "const", "continue", "declare", "default", "do", "echo", "else", "elseif",
    "empty", "enum", "extends", "final", "finally", "fn", "for", "foreach", "function",
    "global", "if", "implements", "include", "include_once", "instanceof", "interface",
    "isset", "list", "match", "namespace", "new", "print", "private", "protected",
    "public", "readonly", "require", "require_once", "return", "static", "switch",
    "throw", "trait", "try", "unset", "use", "while", "yield"];
// Completion (between runs): variables of the session, functions, classes, constants,
// keywords; none of the driver's own.
function __sorna_complete($token) {
    if (str_starts_with($token, '$')) {
        $names = array_map(fn($n) => '$' . $n, array_keys($GLOBALS));
    } else {
        $functions = get_defined_functions();
        $names = array_merge($functions["internal"], $functions["user"],
                             get_declared_classes(), array_keys(get_defined_constants()),
                             __SORNA_KEYWORDS);
    }
    $names = array_filter(array_unique($names), fn($n) => str_starts_with($n, $token)
        && stripos($n, "__sorna") === false && stripos($n, "sornainterrupt") === false);
    sort($names);
    return array_slice($names, 0, 500);
}
// Inspection (between runs): a variable's type and value, a function's signature and
// doc comment, a class's methods.
function __sorna_inspect($token) {
    if (str_starts_with($token, '$')) {
        $name = substr($token, 1);
        if (!array_key_exists($name, $GLOBALS)) return "";
        $value = $GLOBALS[$name];
        return "$token: " . get_debug_type($value) . "\n" . substr(print_r($value, true), 0, 4000);
    }
    if (function_exists($token)) {
        $function = new ReflectionFunction($token);
        $parameters = array_map(fn($p) => ($p->hasType() ? $p->getType() . " " : "")
            . ($p->isVariadic() ? "..." : "") . '$' . $p->getName()
            . ($p->isOptional() && !$p->isVariadic() ? " = ..." : ""), $function->getParameters());
        return "function $token(" . implode(", ", $parameters) . ")"
            . ($function->hasReturnType() ? ": " . $function->getReturnType() : "")
            . "\n" . ($function->getDocComment() ?: "");
    }
    if (class_exists($token)) {
        $class = new ReflectionClass($token);
        return "class " . $class->getName() . "\nmethods: "
            . implode(", ", array_map(fn($m) => $m->getName(), $class->getMethods()));
    }
    return "";
}
while (($__sorna_header = fgets($__sorna_in)) !== false) {
    [$__sorna_kind, $__sorna_size] = explode(" ", trim($__sorna_header)) + ["", "0"];
    $__sorna_size = (int) $__sorna_size;
    $__sorna_code = $__sorna_size > 0 ? stream_get_contents($__sorna_in, $__sorna_size) : "";
    if ($__sorna_kind === "complete") {
        __sorna_emit("matches", implode("\n", __sorna_complete($__sorna_code)));
        continue;
    }
    if ($__sorna_kind === "inspect") {
        try {
            $__sorna_found = __sorna_inspect($__sorna_code);
        } catch (Throwable $__sorna_e) {
            $__sorna_found = "";
        }
        __sorna_emit("found", $__sorna_found);
        continue;
    }
    if (preg_match('/^\s*<\?php/', $__sorna_code)) {
        $__sorna_code = "?>" . $__sorna_code;  // a whole file, not bare statements
    }
    try {
        eval($__sorna_code);
    } catch (ParseError $__sorna_e) {
        __sorna_report($__sorna_e, true);
    } catch (Throwable $__sorna_e) {
        __sorna_report($__sorna_e, false);
    }
    flush();
    __sorna_emit("done");
}
