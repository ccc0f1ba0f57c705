package main

import (
	"fmt"
	"os"
)

func main() {
	args := os.Args[1:]
	fmt.Println("argc:", len(args))
	for i, a := range args {
		fmt.Printf("%d: %s\n", i+1, a)
	}
}
