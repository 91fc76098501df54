/* A wasm32-wasi C guest whose output must not change when wasmbin rewrites it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static unsigned fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static const char table[] = "lookup table stored in a data segment";

int main(int argc, char **argv) {
	int v[64];
	unsigned x = 12345;
	for (int i = 0; i < 64; i++) {
		x = x * 1103515245u + 12345u;
		v[i] = (int)(x >> 16) % 1000;
	}
	qsort(v, 64, sizeof v[0], cmp);
	for (int i = 0; i < 64; i += 8) printf("%d ", v[i]);
	printf("\nfib(24)=%u argc=%d %s\n", fib(24), argc, table);
	size_t total = 0;
	for (int i = 0; i < 100; i++) {
		char *p = malloc(100000);
		if (!p) { printf("malloc failed\n"); return 1; }
		memset(p, i, 100000);
		total += (unsigned char)p[99999];
		free(p);
	}
	printf("total=%zu\n", total);
	return 0;
}
