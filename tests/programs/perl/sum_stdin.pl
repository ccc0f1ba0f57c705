#!/usr/bin/perl
use strict;
use warnings;

# Read integers from standard input until EOF.
my ($count, $sum) = (0, 0);
while (my $line = <STDIN>) {
    for my $n (split ' ', $line) {
        $sum += $n;
        $count++;
    }
}
print "count: $count\n";
print "sum: $sum\n";
