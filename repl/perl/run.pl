# Sorna's Perl driver: every run is a string eval in package main, so package
# variables and subs stay for the next (`my` variables live for one run, as in any
# eval); driven by the runner over fds 3 (runs in) and 4 (their ends out); see "Runner
# <-> driver" in docs/PROTOCOL.md.
use strict;
use warnings;

open(my $IN, "<&=", 3) or die "fd 3: $!";
open(my $OUT, ">&=", 4) or die "fd 4: $!";
binmode($_) for ($IN, $OUT, *STDOUT, *STDERR);
select((select($OUT), $| = 1)[0]);
$| = 1;
select((select(STDERR), $| = 1)[0]);

sub emit {
    my ($kind, @fields) = @_;
    utf8::encode($_) for grep { utf8::is_utf8($_) } @fields;
    print $OUT join(" ", $kind, map { length } @fields), "\n", @fields;
}

sub report {
    my ($error, $before) = @_;
    my $text = "$error";
    my $name = ref $error ? ref $error : $text eq "Interrupt\n" ? "Interrupt"
             : $before ? "SyntaxError" : "Error";
    (my $message = $text) =~ s/ at <input> line \d+\.?\n?\z//;
    chomp $message;
    emit("error", $name, $message, $text, $before ? "1" : "0");
}

while (defined(my $header = <$IN>)) {
    my (undef, $size) = split " ", $header;
    my $code = "";
    read($IN, $code, $size) if $size;
    local $SIG{INT} = sub { die "Interrupt\n" };
    # Compiled first (a sub, so that nothing runs yet): a syntax error never started.
    my $run = eval "package main; no strict; no warnings; sub {\n#line 1 \"<input>\"\n$code\n}";
    if (!$run) {
        report($@, 1);
    } elsif (!eval { $run->(); 1 }) {
        report($@, 0);
    }
    emit("done");
}
