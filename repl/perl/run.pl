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

# Completion (between runs): the names of package main (with the sigil asked for) and,
# without one, Perl's functions.
my @BUILTINS = qw(abs atan2 bless chdir chomp chop chr close cos defined delete die do
    each eof eval exists exit exp foreach grep hex index int join keys last lc lcfirst
    length local lock log lstat map mkdir my next no oct open ord our pack pop pos print
    printf push quotemeta rand read readline redo ref rename require return reverse
    rindex rmdir say scalar shift sin sort splice split sprintf sqrt srand stat sub
    substr time uc ucfirst undef unless unlink unpack unshift until use values wait
    wantarray warn while);
sub complete {
    my ($token) = @_;
    my ($sigil, $prefix) = $token =~ /\A([\$\@%&]?)(.*)\z/s;
    no strict "refs";
    my @names = grep { /\A\w+\z/ && !/\A(?:IN|OUT|BUILTINS)\z/ } keys %main::;
    push @names, @BUILTINS unless $sigil;
    my %seen;
    my @found = sort grep { !$seen{$_}++ && index($_, $prefix) == 0 } @names;
    return map { $sigil . $_ } @found[0 .. ($#found < 499 ? $#found : 499)];
}

# Inspection (between runs): a variable's kind and value, a sub's prototype, or that a
# name is one of Perl's functions.
sub describe {
    my ($token) = @_;
    my ($sigil, $name) = $token =~ /\A([\$\@%&]?)(\w+(?:::\w+)*)\z/ or return "";
    my $full = $name =~ /::/ ? $name : "main::$name";
    no strict "refs";
    my $text = "";
    if ($sigil eq '$') {
        $text = defined ${$full} ? "$token: scalar\n" . ${$full} : "";
    } elsif ($sigil eq '@') {
        $text = @{$full} ? "$token: array of " . scalar(@{$full}) . "\n@{$full}" : "";
    } elsif ($sigil eq '%') {
        $text = %{$full} ? "$token: hash of " . scalar(keys %{$full}) . " keys\n"
                           . join(", ", sort keys %{$full}) : "";
    } elsif (defined &{$full}) {
        my $prototype = prototype(\&{$full});
        $text = "sub $name" . (defined $prototype ? "($prototype)" : "");
    } elsif (grep { $_ eq $name } @BUILTINS) {
        $text = "$name: one of Perl's functions (perldoc -f $name)";
    }
    return substr($text, 0, 4000);
}

while (defined(my $header = <$IN>)) {
    my ($kind, $size) = split " ", $header;
    my $code = "";
    read($IN, $code, $size) if $size;
    if ($kind eq "complete") {
        my @matches = eval { complete($code) };
        emit("matches", join("\n", @matches));
        next;
    }
    if ($kind eq "inspect") {
        my $found = eval { describe($code) };
        emit("found", defined $found ? $found : "");
        next;
    }
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
