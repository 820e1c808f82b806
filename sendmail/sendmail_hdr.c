/*
 * sendmail_hdr — RFC 5322 3.4 address lists, as sendmail -t needs them.
 *
 *   address-list = (mailbox / group) *("," (mailbox / group))
 *   mailbox      = name-addr / addr-spec;  name-addr = [phrase] "<" addr ">"
 *   group        = phrase ":" [mailbox-list] ";"
 *
 * One pass over the bytes: comments (nested, with quoted-pairs) and white
 * space (including the LF/CR of folded lines) separate tokens and are
 * dropped; quoted strings are kept with their quotes (a quoted local part);
 * a phrase followed by "<" is a display name and thrown away, so encoded
 * words in it are never decoded or altered.  The obsolete route syntax
 * "<@a,@b:u@d>" keeps only u@d.  The parser is lenient where old mailers
 * are (a missing ";" at the end of a group, empty list elements) and strict
 * where a wrong guess would send mail elsewhere (unterminated constructs; a
 * NUL byte in an address, which would cut it short: "bob\0@evil" is not
 * "bob").
 */
#include <string.h>

#include "sendmail.h"

struct acc {
	char a[MD_ADDR_MAX];
	size_t n;
	int angle_done; /* an <addr> was seen: later tokens until "," are junk */
	int overflow;
	int nul; /* a NUL byte in a[]: the C string would silently cut the address */
};

/* Forget the accumulated text (a display name, a source route). */
static void acc_clear(struct acc *c)
{
	c->n = 0;
	c->a[0] = 0;
	c->nul = 0;
}

static int acc_add(struct acc *c, const char *p, size_t n)
{
	if (c->angle_done)
		return 0;
	if (c->n + n >= sizeof(c->a)) {
		c->overflow = 1;
		return -1;
	}
	if (memchr(p, 0, n))
		c->nul = 1;
	memcpy(c->a + c->n, p, n);
	c->n += n;
	c->a[c->n] = 0;
	return 0;
}

/* Emit the accumulated address (if any); -1 when fn refuses or overflow. */
static int acc_flush(struct acc *c, sm_addr_fn fn, void *ctx, int *count)
{
	int r = 0;

	if (c->overflow || (c->n > 0 && c->nul))
		return -1;
	if (c->n > 0) {
		c->a[c->n] = 0;
		if (fn && fn(ctx, c->a) != 0)
			r = -1;
		(*count)++;
	}
	acc_clear(c);
	c->angle_done = 0;
	return r;
}

/* Skip a comment starting at s[i] == '('; index after it or -1. */
static long skip_comment(const char *s, size_t n, size_t i)
{
	int depth = 0;

	for (; i < n; i++) {
		if (s[i] == '\\') {
			i++;
			continue;
		}
		if (s[i] == '(')
			depth++;
		else if (s[i] == ')' && --depth == 0)
			return (long)i + 1;
	}
	return -1;
}

/* End of a quoted string or domain literal starting at s[i]; -1 if open. */
static long skip_quoted(const char *s, size_t n, size_t i, char close)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == close)
			return (long)i + 1;
	}
	return -1;
}

/* The address inside <...> from s[i] (just after '<'); stores it in c and
 * returns the index after '>' or -1. */
static long angle_addr(const char *s, size_t n, size_t i, struct acc *c)
{
	int route = 0;
	long e;

	acc_clear(c);
	while (i < n && s[i] != '>') {
		char ch = s[i];

		if (ch == '(') {
			if ((e = skip_comment(s, n, i)) < 0)
				return -1;
			i = (size_t)e;
		} else if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
			i++;
		} else if (ch == '"' || ch == '[') {
			if ((e = skip_quoted(s, n, i, ch == '"' ? '"' : ']')) < 0 || acc_add(c, s + i, (size_t)e - i) < 0)
				return -1;
			i = (size_t)e;
		} else if (ch == '<') {
			return -1;
		} else {
			/* "@a,@b:" source route: drop everything up to the ':'. */
			if (c->n == 0 && ch == '@')
				route = 1;
			if (route && ch == ':') {
				route = 0;
				acc_clear(c);
			} else if (acc_add(c, s + i, 1) < 0) {
				return -1;
			}
			i++;
		}
	}
	if (i >= n || route)
		return -1;
	c->angle_done = 1;
	return (long)i + 1;
}

int sm_addr_list(const char *s, size_t n, sm_addr_fn fn, void *ctx)
{
	struct acc c;
	size_t i = 0;
	long e;
	int count = 0;

	memset(&c, 0, sizeof(c));
	while (i < n) {
		char ch = s[i];

		switch (ch) {
		case ' ': case '\t': case '\r': case '\n':
			i++;
			break;
		case '(':
			if ((e = skip_comment(s, n, i)) < 0)
				return -1;
			i = (size_t)e;
			break;
		case '"':
			if ((e = skip_quoted(s, n, i, '"')) < 0 || acc_add(&c, s + i, (size_t)e - i) < 0)
				return -1;
			i = (size_t)e;
			break;
		case '[':
			if ((e = skip_quoted(s, n, i, ']')) < 0 || acc_add(&c, s + i, (size_t)e - i) < 0)
				return -1;
			i = (size_t)e;
			break;
		case '<':
			if (c.angle_done || (e = angle_addr(s, n, i + 1, &c)) < 0)
				return -1;
			i = (size_t)e;
			break;
		case ':':
			/* A group's display name ends here; its members follow. */
			if (c.angle_done)
				return -1;
			acc_clear(&c);
			i++;
			break;
		case ';':
			if (acc_flush(&c, fn, ctx, &count) < 0)
				return -1;
			i++;
			break;
		case ',':
			if (acc_flush(&c, fn, ctx, &count) < 0)
				return -1;
			i++;
			break;
		default:
			if (acc_add(&c, s + i, 1) < 0)
				return -1;
			i++;
			break;
		}
	}
	/* An unterminated group simply ends with the list. */
	if (acc_flush(&c, fn, ctx, &count) < 0)
		return -1;
	return count;
}
