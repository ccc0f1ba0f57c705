package main

import (
	"fmt"
	"strings"
)

// sieve returns the primes up to and including limit.
func sieve(limit int) []int {
	composite := make([]bool, limit+1)
	var primes []int
	for i := 2; i <= limit; i++ {
		if composite[i] {
			continue
		}
		primes = append(primes, i)
		for j := i * i; j <= limit; j += i {
			composite[j] = true
		}
	}
	return primes
}

func main() {
	small := sieve(100)
	parts := make([]string, len(small))
	for i, p := range small {
		parts[i] = fmt.Sprint(p)
	}
	fmt.Println(strings.Join(parts, " "))
	for _, n := range []int{1000, 10000, 100000} {
		fmt.Printf("primes up to %d: %d\n", n, len(sieve(n)))
	}
}
