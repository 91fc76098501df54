// c-file-stats: a file trigger's function. For each file dropped in its
// inbox it emits one JSON record, {"file":"NAME","bytes":N,"lines":L},
// where L counts '\n' plus a last line without one.
//
// Freestanding C (no libc): clang --target=wasm32 -nostdlib. The payload is
// copied after the module's data, growing memory as needed; the manifest's
// max_size and limits.memory bound it.
#define IMPORT(name) __attribute__((import_module("edgefn"), import_name(#name)))
IMPORT(input) int input(unsigned char *buf, int len);
IMPORT(meta) int meta(const char *key, int key_len, char *buf, int buf_len);
IMPORT(emit) int emit(const char *buf, int len);

extern unsigned char __heap_base;

static char name[256];
static char out[64 + 6 * sizeof name];
static int olen;

static void put(char c) {
	if (olen < (int)sizeof out) out[olen++] = c;
}

static void puts_(const char *s) {
	while (*s) put(*s++);
}

static void putnum(unsigned long long v) {
	char d[20];
	int n = 0;
	do d[n++] = (char)('0' + v % 10); while (v /= 10);
	while (n) put(d[--n]);
}

// putjson writes s as a JSON string: file names come from whoever can
// write the inbox, so quotes, backslashes and control bytes are escaped.
static void putjson(const char *s, int n) {
	static const char hex[] = "0123456789abcdef";
	put('"');
	for (int i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			put('\\');
			put((char)c);
		} else if (c < 0x20) {
			puts_("\\u00");
			put(hex[c >> 4]);
			put(hex[c & 15]);
		} else {
			put((char)c);
		}
	}
	put('"');
}

__attribute__((export_name("edgefn_handle"))) int edgefn_handle(int n) {
	unsigned char *buf = &__heap_base;
	unsigned long end = (unsigned long)buf + (unsigned long)n;
	unsigned long have = __builtin_wasm_memory_size(0) * 65536ul;
	if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535) / 65536) == (unsigned long)-1)
		return 2; // over limits.memory
	if (input(buf, n) != n)
		return 3;
	unsigned long long lines = 0;
	for (int i = 0; i < n; i++)
		if (buf[i] == '\n') lines++;
	if (n > 0 && buf[n - 1] != '\n')
		lines++;
	int nl = meta("file.name", 9, name, sizeof name);
	if (nl < 0)
		nl = 0; // not a file event (edgefn run --data): no name
	if (nl > (int)sizeof name)
		nl = sizeof name;
	olen = 0;
	puts_("{\"file\":");
	putjson(name, nl);
	puts_(",\"bytes\":");
	putnum((unsigned long long)n);
	puts_(",\"lines\":");
	putnum(lines);
	put('}');
	return emit(out, olen) == 0 ? 0 : 1;
}
