// A WASI command for the command-module tests. By stdin:
//   "exit N"  writes "bye N" to stderr and exits with N
//   "big"     writes 1 MiB to stdout
//   "env"     prints EDGEFN_SUBJECT, EDGEFN_FUNCTION and GREETING to stdout
//   "spin"    loops forever
//   anything else: echoes stdin upper-cased to stdout, "got N bytes" to stderr
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
	static char in[65536];
	size_t n = fread(in, 1, sizeof in - 1, stdin);
	in[n] = 0;
	if (strncmp(in, "exit ", 5) == 0) {
		int code = atoi(in + 5);
		fprintf(stderr, "bye %d\n", code);
		return code;
	}
	if (strcmp(in, "big") == 0) {
		static char blk[4096];
		memset(blk, 'x', sizeof blk);
		for (int i = 0; i < 256; i++) fwrite(blk, 1, sizeof blk, stdout);
		return 0;
	}
	if (strcmp(in, "env") == 0) {
		printf("%s|%s|%s", getenv("EDGEFN_SUBJECT"), getenv("EDGEFN_FUNCTION"), getenv("GREETING"));
		return 0;
	}
	if (strcmp(in, "spin") == 0) {
		volatile unsigned x = 0;
		for (;;) x++;
	}
	for (size_t i = 0; i < n; i++) in[i] = toupper((unsigned char)in[i]);
	fwrite(in, 1, n, stdout);
	fprintf(stderr, "got %zu bytes\n", n);
	return 0;
}
