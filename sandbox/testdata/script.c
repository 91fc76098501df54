// A reactor driven by its payload, one command per line, used by the host
// API tests. Each command's return code is logged as "<cmd>=<rc>" (logs
// survive a failed invocation, so tests can read them either way).
//
//   emit TEXT | publish TOPIC TEXT [QOS] | pubflood N TOPIC
//   set KEY VALUE | get KEY | del KEY | gpiow PIN 0|1 | gpior PIN
//   meta KEY | log LEVEL TEXT | fail | trap
//
// Built freestanding (no libc): clang --target=wasm32 -nostdlib.
#define IMPORT(name) __attribute__((import_module("edgefn"), import_name(#name)))
IMPORT(input) int input(char *buf, int len);
IMPORT(meta) int meta(const char *key, int key_len, char *buf, int buf_len);
IMPORT(emit) int emit(const char *buf, int len);
IMPORT(publish) int publish(const char *topic, int topic_len, const char *buf, int len, int qos);
IMPORT(log) void hlog(int level, const char *buf, int len);
IMPORT(gpio_write) int gpio_write(const char *pin, int pin_len, int level);
IMPORT(gpio_read) int gpio_read(const char *pin, int pin_len);
IMPORT(kv_get) int kv_get(const char *key, int key_len, char *buf, int buf_len);
IMPORT(kv_set) int kv_set(const char *key, int key_len, const char *buf, int len);
IMPORT(kv_delete) int kv_delete(const char *key, int key_len);

// The compiler may call these even without libc.
void *memcpy(void *d, const void *s, unsigned long n) {
	char *dd = d; const char *ss = s;
	while (n--) *dd++ = *ss++;
	return d;
}
void *memset(void *d, int c, unsigned long n) {
	char *dd = d;
	while (n--) *dd++ = (char)c;
	return d;
}

static char payload[65536];
static char out[1024];
static char val[1024];
static int olen;

static void put(const char *s, int n) {
	for (int i = 0; i < n && olen < (int)sizeof out; i++) out[olen++] = s[i];
}
static void puts_(const char *s) { while (*s && olen < (int)sizeof out) out[olen++] = *s++; }
static void putint(int v) {
	char b[12]; int n = 0; unsigned u = v < 0 ? -(unsigned)v : (unsigned)v;
	if (v < 0) put("-", 1);
	do { b[n++] = '0' + u % 10; u /= 10; } while (u);
	while (n) put(&b[--n], 1);
}
static int eq(const char *a, int n, const char *b) {
	int i = 0;
	for (; i < n; i++) if (b[i] != a[i]) return 0;
	return b[i] == 0;
}
static int atoi_(const char *s, int n) { int v = 0; for (int i = 0; i < n; i++) v = v * 10 + (s[i] - '0'); return v; }

// word splits the next space-separated word off [*p, end).
static int word(const char **p, const char *end, const char **w) {
	while (*p < end && **p == ' ') (*p)++;
	*w = *p;
	while (*p < end && **p != ' ') (*p)++;
	return *p - *w;
}

__attribute__((export_name("edgefn_handle"))) int handle(int n) {
	if (n > (int)sizeof payload) n = sizeof payload;
	input(payload, n);
	const char *p = payload, *end = payload + n;
	while (p < end) {
		const char *eol = p;
		while (eol < end && *eol != '\n') eol++;
		const char *c, *a, *b, *q;
		int cn = word(&p, eol, &c), an = word(&p, eol, &a), bn;
		int rc = 0;
		olen = 0;
		put(c, cn);
		if (eq(c, cn, "emit")) {
			rc = emit(a, eol - a);
		} else if (eq(c, cn, "publish")) {
			bn = word(&p, eol, &b);
			int qn = word(&p, eol, &q);
			rc = publish(a, an, b, bn, qn ? atoi_(q, qn) : 0);
		} else if (eq(c, cn, "pubflood")) {
			bn = word(&p, eol, &b);
			int k = atoi_(a, an);
			for (int i = 0; i < k; i++) {
				rc = publish(b, bn, "x", 1, 0);
				if (rc != 0) break;
			}
		} else if (eq(c, cn, "set")) {
			bn = word(&p, eol, &b);
			rc = kv_set(a, an, b, bn);
		} else if (eq(c, cn, "get")) {
			rc = kv_get(a, an, val, sizeof val);
		} else if (eq(c, cn, "del")) {
			rc = kv_delete(a, an);
		} else if (eq(c, cn, "gpiow")) {
			bn = word(&p, eol, &b);
			rc = gpio_write(a, an, atoi_(b, bn));
		} else if (eq(c, cn, "gpior")) {
			rc = gpio_read(a, an);
		} else if (eq(c, cn, "meta")) {
			rc = meta(a, an, val, sizeof val);
		} else if (eq(c, cn, "log")) {
			word(&p, eol, &b);
			hlog(atoi_(a, an), b, eol - b);
			p = eol;
		} else if (eq(c, cn, "fail")) {
			return 1;
		} else if (eq(c, cn, "trap")) {
			__builtin_trap();
		}
		puts_("=");
		putint(rc);
		if ((eq(c, cn, "get") || eq(c, cn, "meta")) && rc >= 0) {
			puts_(":");
			put(val, rc < (int)sizeof val ? rc : (int)sizeof val);
		}
		hlog(1, out, olen);
		p = eol < end ? eol + 1 : end;
	}
	return 0;
}
