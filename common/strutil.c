/*
 * strutil — list tokenising, domain-list matching and strict number parsing.
 *
 * Public: list_next, list_has_domain, str_lower, parse_ull.
 *
 * All helpers are ASCII-only and locale-independent on purpose: the inputs
 * are protocol and configuration text, where a locale must not change what
 * matches.  Nothing here allocates; oversized input is reported, not cut.
 */
#include <string.h>

#include "strutil.h"

/* Domains are at most 255 octets; any longer list entry can never match. */
#define DOMAIN_TOKEN_MAX 512

static int is_list_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

int list_next(const char **p, char *tok, size_t toksize)
{
	const char *s = *p;
	size_t n;

	while (*s != '\0' && is_list_sep(*s))
		s++;
	if (*s == '\0') {
		*p = s;
		if (toksize > 0)
			tok[0] = '\0';
		return 0;
	}
	for (n = 0; s[n] != '\0' && !is_list_sep(s[n]); n++)
		;
	*p = s + n;
	if (n >= toksize) {
		if (toksize > 0)
			tok[0] = '\0';
		return -1;
	}
	memcpy(tok, s, n);
	tok[n] = '\0';
	return 1;
}

static int ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Case-insensitive equality of two n-byte ranges, ASCII rules only. */
static int ascii_case_eq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
			return 0;
	}
	return 1;
}

/* 1 if domain matches the single list entry (".parent" matches strict subdomains). */
static int domain_matches_entry(const char *domain, size_t dlen, const char *entry)
{
	size_t elen = strlen(entry);

	if (entry[0] == '.') {
		/* ".example.com" needs at least one label before it: not "example.com" itself. */
		if (elen < 2 || dlen <= elen)
			return 0;
		return ascii_case_eq(domain + dlen - elen, entry, elen);
	}
	return dlen == elen && ascii_case_eq(domain, entry, elen);
}

int list_has_domain(const char *list, const char *domain)
{
	char tok[DOMAIN_TOKEN_MAX];
	size_t dlen;
	int r;

	if (list == NULL || domain == NULL || (dlen = strlen(domain)) == 0)
		return 0;
	while ((r = list_next(&list, tok, sizeof(tok))) != 0) {
		if (r > 0 && domain_matches_entry(domain, dlen, tok))
			return 1;
	}
	return 0;
}

char *str_lower(char *s)
{
	for (char *p = s; *p != '\0'; p++) {
		*p = (char)ascii_lower((unsigned char)*p);
	}
	return s;
}

int parse_ull(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		unsigned d;

		if (*s < '0' || *s > '9')
			return -1;
		d = (unsigned)(*s - '0');
		if (d > max || v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}
