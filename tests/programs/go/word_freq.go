package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strings"
	"unicode"
)

// Word frequency from standard input, most frequent first, ties alphabetical.
func main() {
	counts := map[string]int{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		words := strings.FieldsFunc(strings.ToLower(sc.Text()), func(r rune) bool {
			return !unicode.IsLetter(r)
		})
		for _, w := range words {
			counts[w]++
		}
	}

	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool {
		if counts[words[i]] != counts[words[j]] {
			return counts[words[i]] > counts[words[j]]
		}
		return words[i] < words[j]
	})
	for _, w := range words {
		fmt.Println(counts[w], w)
	}
}
