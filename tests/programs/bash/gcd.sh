#!/bin/bash
# Greatest common divisor (Euclid) and least common multiple.
gcd() {
    local a=$1 b=$2
    while ((b != 0)); do
        local t=$b
        b=$((a % b))
        a=$t
    done
    echo "$a"
}

for pair in "48 18" "1071 462" "17 5" "0 9" "270 192"; do
    set -- $pair
    g=$(gcd "$1" "$2")
    if ((g == 0)); then lcm=0; else lcm=$(($1 / g * $2)); fi
    echo "gcd($1, $2) = $g, lcm = $lcm"
done
