// Command goprog is a GOOS=wasip1 guest whose output must not change when wasmbin rewrites it:
// maps, sorting, goroutines and channels, fmt, allocation and recursion.
package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"sort"
	"strings"
)

func fib(n int) int {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

func main() {
	words := strings.Fields("the quick brown fox jumps over the lazy dog the end")
	counts := map[string]int{}
	for _, w := range words {
		counts[w]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("%s=%d ", k, counts[k])
	}
	fmt.Println()

	ch := make(chan int)
	done := make(chan struct{})
	sum := 0
	go func() {
		for v := range ch {
			sum += v
		}
		close(done)
	}()
	for i := 0; i < 1000; i++ {
		ch <- i
	}
	close(ch)
	<-done
	fmt.Println("sum", sum, "fib(20)", fib(20))

	var big [][]byte
	for i := 0; i < 200; i++ {
		big = append(big, make([]byte, 64<<10))
	}
	fmt.Println("allocated", len(big)*64, "KiB")
	fmt.Printf("sha256 %x\n", sha256.Sum256([]byte(strings.Repeat("edgefn", 1000))))
	fmt.Fprintln(os.Stderr, "done")
}
