package main

import (
	"fmt"
	"math/big"
)

// Arbitrary-precision integers: 5^4^3^2, the 100th Fibonacci number and 30!.
func main() {
	e := new(big.Int).Exp(big.NewInt(4), new(big.Int).Exp(big.NewInt(3), big.NewInt(2), nil), nil)
	x := new(big.Int).Exp(big.NewInt(5), e, nil)
	s := x.String()
	fmt.Printf("5^4^3^2 = %s...%s (%d digits)\n", s[:20], s[len(s)-20:], len(s))

	a, b := big.NewInt(0), big.NewInt(1)
	for i := 0; i < 100; i++ {
		a.Add(a, b)
		a, b = b, a
	}
	fmt.Println("F(100) =", a)

	f := new(big.Int).MulRange(1, 30)
	fmt.Println("30! =", f)
}
