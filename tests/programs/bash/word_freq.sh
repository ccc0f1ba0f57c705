#!/bin/bash
# Word frequency: count lowercase words from stdin, most frequent first,
# ties broken alphabetically.
export LC_ALL=C
tr -cs 'A-Za-z' '\n' |
    tr 'A-Z' 'a-z' |
    grep -v '^$' |
    sort |
    uniq -c |
    sort -k1,1nr -k2,2 |
    awk '{ print $1, $2 }'
