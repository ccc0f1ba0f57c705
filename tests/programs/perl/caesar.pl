#!/usr/bin/perl
use strict;
use warnings;

# Caesar cipher: shift letters by a key, keeping case and other characters.
sub caesar {
    my ($text, $key) = @_;
    $key %= 26;
    my $out = '';
    for my $ch (split //, $text) {
        if ($ch =~ /[a-z]/) {
            $ch = chr((ord($ch) - ord('a') + $key) % 26 + ord('a'));
        } elsif ($ch =~ /[A-Z]/) {
            $ch = chr((ord($ch) - ord('A') + $key) % 26 + ord('A'));
        }
        $out .= $ch;
    }
    return $out;
}

my $plain = "The quick brown fox Jumped over the lazy Dog, 42 times!";
for my $key (3, 13, -1) {
    my $enc = caesar($plain, $key);
    my $dec = caesar($enc, -$key);
    print "key $key: $enc\n";
    print "  back: $dec\n" if $dec ne $plain;
}
(my $rot13 = $plain) =~ tr/A-Za-z/N-ZA-Mn-za-m/;
print "tr rot13 matches: ", ($rot13 eq caesar($plain, 13) ? "yes" : "no"), "\n";
