#!/bin/bash
# Read whitespace-separated integers from stdin until EOF; print count and sum.
count=0
sum=0
while read -r line; do
    for n in $line; do
        sum=$((sum + n))
        count=$((count + 1))
    done
done
echo "count: $count"
echo "sum: $sum"
