#!/usr/bin/perl
use strict;
use warnings;

# Validate dotted-quad IPv4 addresses; exit status 3 if any is invalid.
sub valid_ipv4 {
    my ($s) = @_;
    my @octets = $s =~ /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/ or return 0;
    for my $o (@octets) {
        return 0 if $o > 255 or ($o =~ /^0\d/);
    }
    return 1;
}

my @addresses = qw(127.0.0.1 192.168.1.255 256.1.1.1 10.0.0 8.8.8.8 01.2.3.4);
my $bad = 0;
for my $addr (@addresses) {
    if (valid_ipv4($addr)) {
        printf "%-15s ok\n", $addr;
    } else {
        printf "%-15s INVALID\n", $addr;
        $bad++;
    }
}
print "$bad invalid address(es)\n";
exit($bad ? 3 : 0);
