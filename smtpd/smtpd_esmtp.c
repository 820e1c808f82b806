/*
 * smtpd_esmtp.c — syntax of ESMTP parameters and of BDAT's arguments.
 *
 * Public: smtpd_next_param, smtpd_xtext_ok, smtpd_parse_notify,
 * smtpd_orcpt_ok, smtpd_parse_bdat.
 *
 * Pure functions over the command text (no session state), so the unit
 * tests and the libFuzzer target (tests/fuzz/fuzz_smtpd_cmd.c) drive them
 * directly.  What they accept is what may be stored in a queue file: a
 * value that passes never holds a space or a control character, and xtext
 * is refused when its decoded form would hold one (an ORCPT "a+0A" that
 * decodes to a newline must never reach the queue or a DSN).
 */
#include <string.h>
#include <strings.h>

#include "proto_deliver.h"
#include "smtpd.h"

static int
is_keychar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/*
 * The key must start with a letter or digit (RFC 5321 esmtp-keyword) and be
 * followed by nothing, a space or '='; a value is 1 or more octets of
 * %d33-60 / %d62-126 (esmtp-value: no '=' and no space or control).
 * "=x" without a key (Exim CVE-2020-28022) and "KEY=" are syntax errors.
 */
int
smtpd_next_param(char **p, char **key, char **value)
{
	char *s = *p;
	char *k;

	while (*s == ' ')
		s++;
	if (*s == '\0')
		return 0;
	k = s;
	if (!is_keychar((unsigned char)*s) || *s == '-')
		return -1;
	while (is_keychar((unsigned char)*s))
		s++;
	*key = k;
	*value = NULL;
	if (*s == '=') {
		char *v;

		*s++ = '\0';
		v = s;
		while (*s != '\0' && *s != ' ') {
			unsigned char c = (unsigned char)*s;

			if (c < 33 || c > 126 || c == '=')
				return -1;
			s++;
		}
		if (s == v)
			return -1;
		*value = v;
	}
	if (*s != '\0' && *s != ' ')
		return -1;
	if (*s == ' ')
		*s++ = '\0';
	*p = s;
	return 1;
}

static int
hexval(unsigned char c)
{
	/* RFC 3461 4: hexchar is "+" and two upper-case hex digits. */
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
smtpd_xtext_ok(const char *s, size_t max)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (++n > max)
			return 0;
		if (c == '+') {
			int hi = hexval((unsigned char)s[1]), lo;
			int d;

			if (hi < 0 || (lo = hexval((unsigned char)s[2])) < 0)
				return 0;
			d = hi * 16 + lo;
			/* The decoded octet: printable ASCII or space; never a control. */
			if (d < 32 || d > 126)
				return 0;
			s += 2;
			n += 2;
			if (n > max)
				return 0;
		} else if (c < 33 || c > 126 || c == '=') {
			return 0;
		}
	}
	return n > 0;
}

unsigned
smtpd_parse_notify(const char *v)
{
	unsigned bits = 0;
	const char *p = v;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		unsigned bit;

		if (len == 5 && strncasecmp(p, "NEVER", 5) == 0)
			bit = NOTIFY_NEVER;
		else if (len == 7 && strncasecmp(p, "SUCCESS", 7) == 0)
			bit = NOTIFY_SUCCESS;
		else if (len == 7 && strncasecmp(p, "FAILURE", 7) == 0)
			bit = NOTIFY_FAILURE;
		else if (len == 5 && strncasecmp(p, "DELAY", 5) == 0)
			bit = NOTIFY_DELAY;
		else
			return 0;
		if (bits & bit)
			return 0; /* "SUCCESS,SUCCESS" */
		bits |= bit;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	/* RFC 3461 4.1: NEVER stands alone. */
	if ((bits & NOTIFY_NEVER) && bits != NOTIFY_NEVER)
		return 0;
	return bits;
}

int
smtpd_orcpt_ok(const char *v)
{
	const char *semi = strchr(v, ';');
	const char *p;

	/* addr-type is an atom ("rfc822", "utf-8"); the whole value at most
	 * 500 octets (RFC 3461 4.2). */
	if (semi == NULL || semi == v || strlen(v) > 500)
		return 0;
	for (p = v; p < semi; p++)
		if (!is_keychar((unsigned char)*p))
			return 0;
	return smtpd_xtext_ok(semi + 1, 500);
}

int
smtpd_parse_bdat(const char *args, unsigned long long *size, int *last)
{
	unsigned long long n = 0;
	const char *p = args;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (n > (~0ULL - d) / 10)
			return -1; /* does not fit 64 bits: nobody sends such a chunk */
		n = n * 10 + d;
	}
	*last = 0;
	if (*p == ' ') {
		while (*p == ' ')
			p++;
		if (strcasecmp(p, "LAST") != 0)
			return -1;
		*last = 1;
	} else if (*p != '\0') {
		return -1;
	}
	*size = n;
	return 0;
}
