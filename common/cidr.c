/*
 * cidr — network lists (mynetworks) and client address matching.
 *
 * Public: cidr_list_parse, cidr_list_free, cidr_list_match.
 *
 * Entries are parsed with inet_pton only (no resolver, no "10.1" shorthand).
 * A bad entry or an entry with host bits set rejects the whole list with a
 * description in err: a mistyped mynetworks must not silently relay for the
 * wrong hosts.  Matching never fails; an unparsable client address matches
 * nothing.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "strutil.h"
#include "xalloc.h"

/* "[ffff:...:255.255.255.255]/128" fits with room to spare. */
#define CIDR_TOKEN_MAX 128

struct cidr_entry {
	int family; /* AF_INET (4 bytes used) or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
};

struct cidr_list {
	struct cidr_entry *v;
	size_t n;
};

/* 1 if the first prefix bits of a and b agree. */
static int prefix_equal(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
	unsigned bytes = prefix / 8, bits = prefix % 8;

	if (memcmp(a, b, bytes) != 0)
		return 0;
	if (bits == 0)
		return 1;
	return ((a[bytes] ^ b[bytes]) & (unsigned char)(0xff << (8 - bits))) == 0;
}

/* 1 if any bit past prefix is set in an addrlen-byte address. */
static int host_bits_set(const unsigned char *a, size_t addrlen, unsigned prefix)
{
	for (size_t bit = prefix; bit < addrlen * 8; bit++) {
		if (a[bit / 8] & (0x80 >> (bit % 8)))
			return 1;
	}
	return 0;
}

/* Parse "a.b.c.d", "v6", "[v6]" with optional "/len" into e; 0 or -1. */
static int cidr_parse_entry(const char *tok, struct cidr_entry *e)
{
	char addr[CIDR_TOKEN_MAX];
	const char *slash = strchr(tok, '/');
	size_t alen = slash ? (size_t)(slash - tok) : strlen(tok);
	const char *a = addr;
	unsigned long long plen;
	unsigned maxlen;

	if (alen >= sizeof(addr))
		return -1;
	memcpy(addr, tok, alen);
	addr[alen] = '\0';
	if (addr[0] == '[') {
		if (alen < 3 || addr[alen - 1] != ']')
			return -1;
		addr[alen - 1] = '\0';
		a = addr + 1;
		if (inet_pton(AF_INET6, a, e->addr) != 1)
			return -1;
		e->family = AF_INET6;
	} else if (inet_pton(AF_INET, a, e->addr) == 1) {
		e->family = AF_INET;
	} else if (inet_pton(AF_INET6, a, e->addr) == 1) {
		e->family = AF_INET6;
	} else {
		return -1;
	}
	maxlen = e->family == AF_INET ? 32 : 128;
	if (slash == NULL)
		plen = maxlen;
	else if (parse_ull(slash + 1, maxlen, &plen) < 0)
		return -1;
	e->prefix = (unsigned)plen;
	if (host_bits_set(e->addr, maxlen / 8, e->prefix))
		return -1;
	return 0;
}

struct cidr_list *cidr_list_parse(const char *list, char *err, size_t errsize)
{
	struct cidr_list *l = xcalloc(1, sizeof(*l));
	char tok[CIDR_TOKEN_MAX];
	const char *p = list ? list : "";
	int r;

	while ((r = list_next(&p, tok, sizeof(tok))) != 0) {
		struct cidr_entry e;

		if (r < 0) {
			snprintf(err, errsize, "network list entry too long");
			cidr_list_free(l);
			return NULL;
		}
		if (cidr_parse_entry(tok, &e) < 0) {
			snprintf(err, errsize,
				 "bad network \"%.64s\" (not an address/prefix, or host bits set)", tok);
			cidr_list_free(l);
			return NULL;
		}
		l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
		l->v[l->n++] = e;
	}
	return l;
}

void cidr_list_free(struct cidr_list *l)
{
	if (l == NULL)
		return;
	free(l->v);
	free(l);
}

int cidr_list_match(const struct cidr_list *l, const char *ip)
{
	static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	unsigned char a4[4], a6[16];
	char text[INET6_ADDRSTRLEN + 2];
	size_t len;
	int have4 = 0, have6 = 0;

	if (l == NULL || ip == NULL || (len = strlen(ip)) == 0 || len >= sizeof(text))
		return 0;
	memcpy(text, ip, len + 1);
	if (text[0] == '[' && text[len - 1] == ']') {
		text[len - 1] = '\0';
		memmove(text, text + 1, len - 1);
	}
	if (inet_pton(AF_INET, text, a4) == 1) {
		have4 = 1;
	} else if (inet_pton(AF_INET6, text, a6) == 1) {
		have6 = 1;
		if (memcmp(a6, v4mapped, sizeof(v4mapped)) == 0) {
			memcpy(a4, a6 + 12, 4);
			have4 = 1;
		}
	} else {
		return 0;
	}
	for (size_t i = 0; i < l->n; i++) {
		const struct cidr_entry *e = &l->v[i];

		if (e->family == AF_INET && have4 && prefix_equal(e->addr, a4, e->prefix))
			return 1;
		if (e->family == AF_INET6 && have6 && prefix_equal(e->addr, a6, e->prefix))
			return 1;
	}
	return 0;
}
