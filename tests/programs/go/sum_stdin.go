package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
)

// Read whitespace-separated integers from standard input until EOF.
func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Split(bufio.ScanWords)
	count, sum := 0, 0
	for sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil {
			fmt.Println("bad number:", sc.Text())
			os.Exit(1)
		}
		sum += n
		count++
	}
	fmt.Printf("count: %d\n", count)
	fmt.Printf("sum: %d\n", sum)
}
