#!/usr/bin/perl
use strict;
use warnings;

for my $i (1 .. 100) {
    my $s = '';
    $s .= 'Fizz' unless $i % 3;
    $s .= 'Buzz' unless $i % 5;
    print $s || $i, "\n";
}
