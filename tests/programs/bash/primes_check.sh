#!/bin/bash
# Check that every argument is a prime number. Exits with status 3
# if any of them is not.
is_prime() {
    local n=$1 d
    ((n < 2)) && return 1
    for ((d = 2; d * d <= n; d++)); do
        ((n % d == 0)) && return 1
    done
    return 0
}

status=0
for n in "$@"; do
    if is_prime "$n"; then
        echo "$n is prime"
    else
        echo "$n is not prime"
        status=3
    fi
done
exit $status
