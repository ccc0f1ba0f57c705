// Sorna's Java snippet driver: every run that is not a whole program (the runner sends
// those to javac and java) is a list of snippets evaluated by one JShell, so
// declarations stay for the next run (`int x = 41;` then `System.out.println(x + 1);`).
// Driven by the runner over fds 3 (runs in) and 4 (their ends out); see "Runner <->
// driver" in docs/PROTOCOL.md. The snippets run in this JVM (JShell's local engine):
// their System.in, out and err are the kernel's. As in jshell, an expression's value is
// shown. SIGINT stops the run; the session stays.

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.TreeSet;

import jdk.jshell.Diag;
import jdk.jshell.EvalException;
import jdk.jshell.JShell;
import jdk.jshell.JShellException;
import jdk.jshell.Snippet;
import jdk.jshell.SnippetEvent;
import jdk.jshell.SourceCodeAnalysis;
import jdk.jshell.UnresolvedReferenceException;

public class SornaJava {
    static final int MAX_MATCHES = 500;
    static DataInputStream in;
    static OutputStream out;
    static JShell shell;
    static volatile boolean interrupted;

    public static void main(String[] args) throws Exception {
        in = new DataInputStream(new BufferedInputStream(new FileInputStream("/dev/fd/3")));
        out = new BufferedOutputStream(new FileOutputStream("/dev/fd/4"));
        shell = JShell.builder().executionEngine("local")
                .out(System.out).err(System.err).in(System.in).build();
        shell.eval("import java.util.*; import java.io.*; import java.math.*; "
                   + "import java.util.function.*; import java.util.stream.*;");
        sun.misc.Signal.handle(new sun.misc.Signal("INT"), signal -> {
            interrupted = true;
            shell.stop();
        });
        while (true) {
            String header = readHeader();
            if (header == null) {
                System.exit(0);
            }
            int space = header.indexOf(' ');
            String kind = header.substring(0, space);
            byte[] data = in.readNBytes(Integer.parseInt(header.substring(space + 1)));
            String code = new String(data, StandardCharsets.UTF_8);
            switch (kind) {
                case "complete":
                    emit("matches", safely(() -> complete(code)));
                    break;
                case "inspect":
                    emit("found", safely(() -> inspect(code)));
                    break;
                default:
                    run(code);
                    System.out.flush();
                    System.err.flush();
                    emit("done");
            }
        }
    }

    interface Answer {
        String get() throws Exception;
    }

    static String safely(Answer answer) {
        try {
            return answer.get();
        } catch (Exception e) {
            return "";
        }
    }

    static String readHeader() throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        int b;
        while ((b = in.read()) != '\n') {
            if (b < 0) {
                return null;
            }
            line.write(b);
        }
        return line.toString(StandardCharsets.UTF_8);
    }

    static void emit(String kind, String... fields) throws IOException {
        StringBuilder header = new StringBuilder(kind);
        List<byte[]> data = new ArrayList<>();
        for (String field : fields) {
            byte[] bytes = field.getBytes(StandardCharsets.UTF_8);
            data.add(bytes);
            header.append(' ').append(bytes.length);
        }
        out.write((header + "\n").getBytes(StandardCharsets.UTF_8));
        for (byte[] bytes : data) {
            out.write(bytes);
        }
        out.flush();
    }

    static void report(String name, String message, String trace, boolean before)
            throws IOException {
        emit("error", name, message, trace, before ? "1" : "0");
    }

    static void run(String code) throws IOException {
        SourceCodeAnalysis analysis = shell.sourceCodeAnalysis();
        interrupted = false;
        String rest = code;
        String value = null;
        boolean first = true;
        while (!rest.isBlank()) {
            SourceCodeAnalysis.CompletionInfo info = analysis.analyzeCompletion(rest);
            if (info.completeness() == SourceCodeAnalysis.Completeness.EMPTY) {
                break;
            }
            if (!info.completeness().isComplete()) {
                String text = "the code ends in the middle of a statement: " + rest.strip();
                report("CompileError", text, text + "\n", first);
                return;
            }
            rest = info.remaining();
            for (SnippetEvent event : shell.eval(info.source())) {
                if (event.causeSnippet() != null) {
                    continue;  // a snippet that depends on this one, updated
                }
                if (event.status() == Snippet.Status.REJECTED) {
                    String text = diagnostics(event.snippet());
                    report("CompileError", text, text + "\n", first);
                    return;
                }
                JShellException exception = event.exception();
                if (exception != null) {
                    reportException(exception);
                    return;
                }
                if (event.value() != null && shows(event.snippet())) {
                    value = event.value();
                }
            }
            first = false;
        }
        if (value != null) {
            emit("result", value);
        }
    }

    static boolean shows(Snippet snippet) {
        return snippet.subKind() == Snippet.SubKind.TEMP_VAR_EXPRESSION_SUBKIND
                || snippet.kind() == Snippet.Kind.EXPRESSION;
    }

    static String diagnostics(Snippet snippet) {
        StringBuilder text = new StringBuilder();
        shell.diagnostics(snippet).forEach((Diag diag) -> {
            if (diag.isError()) {
                text.append(diag.getMessage(Locale.ROOT)).append('\n');
            }
        });
        return text.toString().strip();
    }

    static void reportException(JShellException exception) throws IOException {
        String name;
        if (interrupted) {
            name = "Interrupt";
        } else if (exception instanceof EvalException) {
            name = ((EvalException) exception).getExceptionClassName();
        } else if (exception instanceof UnresolvedReferenceException) {
            name = "UnresolvedReference";
        } else {
            name = exception.getClass().getName();
        }
        String message = exception.getMessage() == null ? "" : exception.getMessage();
        StringBuilder trace = new StringBuilder(name);
        if (!message.isEmpty()) {
            trace.append(": ").append(message);
        }
        trace.append('\n');
        for (StackTraceElement frame : exception.getStackTrace()) {
            if (frame.getClassName().startsWith("REPL.")) {
                trace.append("\tat ").append(frame).append('\n');
            }
        }
        report(name, message, trace.toString(), false);
    }

    // Completion (between runs): what JShell suggests for the token, whole.
    static String complete(String token) {
        int[] anchor = new int[1];
        TreeSet<String> found = new TreeSet<>();
        for (SourceCodeAnalysis.Suggestion suggestion :
                shell.sourceCodeAnalysis().completionSuggestions(token, token.length(), anchor)) {
            String name = suggestion.continuation().replaceAll("[(]\\)?$", "");
            found.add(token.substring(0, anchor[0]) + name);
        }
        List<String> first = new ArrayList<>(found).subList(0, Math.min(found.size(), MAX_MATCHES));
        return String.join("\n", first);
    }

    // Inspection (between runs): the signatures JShell knows for the name, and a
    // variable's type and value.
    static String inspect(String token) {
        StringBuilder text = new StringBuilder();
        shell.variables().filter(v -> v.name().equals(token)).forEach(v ->
                text.append(v.typeName()).append(' ').append(v.name()).append(" = ")
                        .append(shell.varValue(v)).append('\n'));
        for (String code : new String[] {token, token + "("}) {  // a name; a call of it
            if (text.length() == 0) {
                for (SourceCodeAnalysis.Documentation doc :
                        shell.sourceCodeAnalysis().documentation(code, code.length(), false)) {
                    text.append(doc.signature()).append('\n');
                }
            }
        }
        return text.toString().strip();
    }
}
