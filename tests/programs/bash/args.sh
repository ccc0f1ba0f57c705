#!/bin/bash
# Print the number of arguments, then each one with its position.
echo "argc: $#"
i=1
for arg in "$@"; do
    echo "$i: $arg"
    i=$((i + 1))
done
