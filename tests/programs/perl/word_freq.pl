#!/usr/bin/perl
use strict;
use warnings;

# Word frequency from standard input, most frequent first, ties alphabetical.
my %count;
while (<STDIN>) {
    $count{lc $1}++ while /([A-Za-z]+)/g;
}
for my $word (sort { $count{$b} <=> $count{$a} or $a cmp $b } keys %count) {
    print "$count{$word} $word\n";
}
