#!/usr/bin/perl
use strict;
use warnings;

print "argc: ", scalar(@ARGV), "\n";
my $i = 0;
for my $arg (@ARGV) {
    $i++;
    print "$i: $arg\n";
}
