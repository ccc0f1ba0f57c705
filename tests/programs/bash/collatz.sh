#!/bin/bash
# Hailstone (Collatz) sequence: print the sequence for 27 summarised,
# then the number below 1000 with the longest sequence.
# Sets the global "len" rather than echoing, to avoid a subshell per call.
hailstone_length() {
    local n=$1
    len=1
    while ((n != 1)); do
        if ((n % 2 == 0)); then ((n /= 2)); else ((n = 3 * n + 1)); fi
        ((len++))
    done
}

seq27=()
n=27
while :; do
    seq27+=("$n")
    ((n == 1)) && break
    if ((n % 2 == 0)); then n=$((n / 2)); else n=$((3 * n + 1)); fi
done
echo "hailstone(27) has ${#seq27[@]} elements"
echo "starts: ${seq27[*]:0:4}"
echo "ends: ${seq27[*]: -4}"

best=1
bestlen=1
for ((i = 1; i < 1000; i++)); do
    hailstone_length "$i"
    if ((len > bestlen)); then best=$i; bestlen=$len; fi
done
echo "longest below 1000: $best ($bestlen elements)"
