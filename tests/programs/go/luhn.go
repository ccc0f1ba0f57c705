package main

import (
	"fmt"
	"os"
	"strings"
)

// luhn reports whether the digits of s (spaces ignored) pass the Luhn test.
func luhn(s string) bool {
	s = strings.ReplaceAll(s, " ", "")
	sum := 0
	double := false
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

func main() {
	invalid := 0
	for _, n := range os.Args[1:] {
		if luhn(n) {
			fmt.Printf("%-20s valid\n", n)
		} else {
			fmt.Printf("%-20s invalid\n", n)
			invalid++
		}
	}
	if invalid > 0 {
		fmt.Printf("%d invalid number(s)\n", invalid)
		os.Exit(3)
	}
}
