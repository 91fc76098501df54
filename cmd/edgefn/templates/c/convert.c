/*
 * c-command: an edgefn command module in C (WASI preview 1, wasi-libc).
 *
 * The payload on stdin is a temperature in degrees Celsius as text ("21.5").
 * One JSON record goes to stdout (the emitted record); a log line goes to
 * stderr; a payload that is not a number exits 1, failing the invocation.
 * The manifest's env UNIT picks the converted unit: F (default) or K.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Payloads larger than this are refused rather than truncated. */
#define MAX_PAYLOAD 4096

static void json_string(const char *s) {
	putchar('"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

int main(void) {
	static char in[MAX_PAYLOAD + 1];
	size_t n = fread(in, 1, MAX_PAYLOAD + 1, stdin);
	if (n > MAX_PAYLOAD) {
		fprintf(stderr, "payload over %d bytes\n", MAX_PAYLOAD);
		return 1;
	}
	in[n] = 0;

	char *end;
	errno = 0;
	double celsius = strtod(in, &end);
	while (isspace((unsigned char)*end))
		end++;
	if (end == in || *end != 0 || errno != 0) {
		fprintf(stderr, "payload %.40s is not a temperature in Celsius\n", in);
		return 1;
	}

	const char *unit = getenv("UNIT");
	if (!unit || !*unit)
		unit = "F";
	double converted;
	if (strcmp(unit, "K") == 0) {
		converted = celsius + 273.15;
	} else if (strcmp(unit, "F") == 0) {
		converted = celsius * 9.0 / 5.0 + 32.0;
	} else {
		fprintf(stderr, "env UNIT %s: use F or K\n", unit);
		return 1;
	}

	const char *subject = getenv("EDGEFN_SUBJECT");
	printf("{\"subject\":");
	json_string(subject);
	printf(",\"event_id\":");
	json_string(getenv("EDGEFN_EVENT_ID"));
	printf(",\"celsius\":%.2f,\"%s\":%.2f}", celsius, unit, converted);
	fprintf(stderr, "%s: %.2f C = %.2f %s\n", subject ? subject : "?", celsius, converted, unit);
	return 0;
}
