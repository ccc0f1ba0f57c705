#!/usr/bin/perl
use strict;
use warnings;
use List::Util qw(reduce);

sub gcd {
    my ($x, $y) = @_;
    return $y == 0 ? $x : gcd($y, $x % $y);
}

sub lcm {
    my ($x, $y) = @_;
    return $x / gcd($x, $y) * $y;
}

for my $pair ([48, 18], [1071, 462], [17, 5], [270, 192]) {
    printf "gcd(%d, %d) = %d\n", @$pair, gcd(@$pair);
}
my @nums = (1 .. 20);
my $l = reduce { lcm($a, $b) } @nums;
print "lcm(1..20) = $l\n";
my $g = reduce { gcd($a, $b) } (462, 1071, 2310);
print "gcd(462, 1071, 2310) = $g\n";
