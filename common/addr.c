/*
 * addr.c — RFC 5321 path parser (4.1.2), with RFC 6531 UTF-8 when asked.
 *
 * A hand-written recursive-descent parser over a NUL-terminated string: it
 * reads each byte once, copies into fixed buffers only after the length has
 * been checked, and classifies every rejected byte so the caller can answer
 * precisely (control character, 8-bit without SMTPUTF8, plain syntax).
 * The mailbox comes out canonical: a quoted local part that needs no quotes
 * is unquoted, a needed one is re-quoted with minimal escapes.
 *
 * Public: addr_parse_path, addr_parse_mailbox, addr_strerror,
 * addr_domain_eq, addr_split_extension.  Nothing here allocates or logs.
 */
#include "addr.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

typedef const unsigned char *ptr;

/* Why byte c (where something else was expected) is wrong. */
static enum addr_error bad_char(unsigned c, int flags)
{
	if (c != 0 && (c < 0x20 || c == 0x7f))
		return ADDR_ERR_CONTROL;
	if (c >= 0x80 && !(flags & ADDR_UTF8))
		return ADDR_ERR_UTF8;
	return ADDR_ERR_SYNTAX;
}

/* Length of the well-formed UTF-8 sequence at p (2..4), 0 when malformed
 * (overlong, surrogate, past U+10FFFF, truncated), -1 for a C1 control. */
static int utf8_seq(ptr p)
{
	unsigned c = p[0], lo = 0x80, hi = 0xbf;
	int n;

	if (c < 0xc2 || c > 0xf4)
		return 0;
	if (c < 0xe0)
		n = 2;
	else if (c < 0xf0)
		n = 3;
	else
		n = 4;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (int i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if (c == 0xc2 && p[1] < 0xa0)
		return -1;
	return n;
}

/* An 8-bit sequence at p: its length in *len, or the error. */
static enum addr_error utf8_at(ptr p, int flags, int *len)
{
	int n;

	if (!(flags & ADDR_UTF8))
		return ADDR_ERR_UTF8;
	n = utf8_seq(p);
	if (n < 0)
		return ADDR_ERR_CONTROL;
	if (n == 0)
		return ADDR_ERR_UTF8;
	*len = n;
	return ADDR_OK;
}

static int is_atext(unsigned c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", (int)c) != NULL;
}

static int is_letdig(unsigned c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* 1 if s[0..n) is a Dot-string (atoms of atext or UTF-8, single dots). */
static int is_dot_string(ptr s, size_t n)
{
	size_t atom = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (atom == 0)
				return 0;
			atom = 0;
		} else if (is_atext(s[i]) || s[i] >= 0x80) {
			atom++;
		} else {
			return 0;
		}
	}
	return atom > 0;
}

/* Dot-string local part at *pp into out (at most ADDR_LOCAL_MAX bytes). */
static enum addr_error parse_dot_local(ptr *pp, int flags, char *out)
{
	ptr p = *pp;
	size_t n = 0, atom = 0;

	for (;;) {
		int len = 1;
		if (*p == '.') {
			if (atom == 0)
				return ADDR_ERR_SYNTAX;
			atom = 0;
		} else if (*p >= 0x80) {
			enum addr_error e = utf8_at(p, flags, &len);
			if (e != ADDR_OK)
				return e;
			atom++;
		} else if (is_atext(*p)) {
			atom++;
		} else {
			break;
		}
		if (n + (size_t)len > ADDR_LOCAL_MAX)
			return ADDR_ERR_LOCAL_TOO_LONG;
		memcpy(out + n, p, (size_t)len);
		n += (size_t)len;
		p += len;
	}
	if (atom == 0) /* empty, or a trailing dot */
		return n == 0 ? bad_char(*p, flags) : ADDR_ERR_SYNTAX;
	out[n] = '\0';
	*pp = p;
	return ADDR_OK;
}

/* Quoted-string local part: decode, then re-encode canonically into out. */
static enum addr_error parse_quoted_local(ptr *pp, int flags, char *out)
{
	unsigned char content[ADDR_LOCAL_MAX + 4] = { 0 }; /* zeroed: gcc cannot see that n bounds the reads */
	ptr p = *pp + 1;
	size_t n = 0, o = 0;

	while (*p != '"') {
		int len = 1;
		ptr src = p;
		if (*p == '\\') {
			if (p[1] < 0x20 || p[1] > 0x7e)
				return p[1] == 0 ? ADDR_ERR_SYNTAX : bad_char(p[1], flags);
			src = ++p;
		} else if (*p >= 0x80) {
			enum addr_error e = utf8_at(p, flags, &len);
			if (e != ADDR_OK)
				return e;
		} else if (*p < 0x20 || *p == 0x7f) {
			return bad_char(*p, flags); /* NUL (unterminated) lands here too */
		}
		if (n + (size_t)len > ADDR_LOCAL_MAX)
			return ADDR_ERR_LOCAL_TOO_LONG;
		memcpy(content + n, src, (size_t)len);
		n += (size_t)len;
		p += len;
	}
	*pp = p + 1;
	if (is_dot_string(content, n)) {
		memcpy(out, content, n);
		out[n] = '\0';
		return ADDR_OK;
	}
	out[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		if (content[i] == '"' || content[i] == '\\')
			out[o++] = '\\';
		out[o++] = (char)content[i];
	}
	out[o++] = '"';
	out[o] = '\0';
	return o > ADDR_LOCAL_MAX ? ADDR_ERR_LOCAL_TOO_LONG : ADDR_OK;
}

/* Address literal "[...]" at *pp, validated with inet_pton, into out. */
static enum addr_error parse_literal(ptr *pp, int flags, char *out)
{
	char ip[ADDR_DOMAIN_MAX + 1];
	unsigned char bin[16];
	ptr p = *pp + 1;
	size_t n = 0;

	for (; *p != ']'; p++) {
		if (*p == 0)
			return ADDR_ERR_SYNTAX;
		if (*p < 0x20 || *p >= 0x7f) {
			enum addr_error e = bad_char(*p, flags);
			return e == ADDR_ERR_SYNTAX ? ADDR_ERR_BAD_DOMAIN : e; /* 8-bit never fits a literal */
		}
		if (*p == '[' || *p == '\\' || *p == ' ')
			return ADDR_ERR_BAD_DOMAIN;
		if (n + 2 >= ADDR_DOMAIN_MAX)
			return ADDR_ERR_DOMAIN_TOO_LONG;
		ip[n++] = (char)*p;
	}
	ip[n] = '\0';
	if (strncasecmp(ip, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, ip + 5, bin) != 1)
			return ADDR_ERR_BAD_DOMAIN;
	} else if (inet_pton(AF_INET, ip, bin) != 1) {
		return ADDR_ERR_BAD_DOMAIN; /* also every other General-address-literal */
	}
	out[0] = '[';
	memcpy(out + 1, ip, n);
	out[n + 1] = ']';
	out[n + 2] = '\0';
	*pp = p + 1;
	return ADDR_OK;
}

/* Domain (name or literal) at *pp into out; terms lists the characters
 * that may follow it ('\0' always may). */
static enum addr_error parse_domain(ptr *pp, int flags, const char *terms, char *out)
{
	ptr p = *pp;
	size_t n = 0, label = 0;

	if (*p == '[')
		return parse_literal(pp, flags, out);
	for (;; p++) {
		int len = 1;
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return ADDR_ERR_BAD_DOMAIN;
			label = 0;
		} else if (*p >= 0x80) {
			enum addr_error e = utf8_at(p, flags, &len);
			if (e != ADDR_OK)
				return e;
			label += (size_t)len;
		} else if (is_letdig(*p) || (*p == '-' && label > 0)) {
			label++;
		} else {
			break;
		}
		if (label > 63)
			return ADDR_ERR_BAD_DOMAIN;
		if (n + (size_t)len > ADDR_DOMAIN_MAX)
			return ADDR_ERR_DOMAIN_TOO_LONG;
		memcpy(out + n, p, (size_t)len);
		n += (size_t)len;
		p += len - 1;
	}
	if (*p != 0 && strchr(terms, *p) == NULL) {
		enum addr_error e = bad_char(*p, flags);
		return e == ADDR_ERR_SYNTAX ? ADDR_ERR_BAD_DOMAIN : e;
	}
	if (n == 0)
		return ADDR_ERR_EMPTY_DOMAIN;
	if (label == 0 || p[-1] == '-')
		return ADDR_ERR_BAD_DOMAIN;
	out[n] = '\0';
	*pp = p;
	return ADDR_OK;
}

/* Mailbox (local part, '@', domain) at *pp, followed by one of terms. */
static enum addr_error parse_mbox(ptr *pp, int flags, const char *terms, struct addr *a)
{
	ptr p = *pp;
	enum addr_error e;
	size_t ll, dl;

	e = *p == '"' ? parse_quoted_local(&p, flags, a->local) : parse_dot_local(&p, flags, a->local);
	if (e != ADDR_OK)
		return e;
	a->domain[0] = '\0';
	if (*p == '@') {
		p++;
		if ((e = parse_domain(&p, flags, terms, a->domain)) != ADDR_OK)
			return e;
	} else if (!(flags & ADDR_ALLOW_NO_DOMAIN) || (*p != 0 && strchr(terms, *p) == NULL)) {
		return bad_char(*p, flags);
	}
	if (*p != 0 && strchr(terms, *p) == NULL)
		return bad_char(*p, flags);
	if (*p == 0 && strchr(terms, '>') != NULL)
		return ADDR_ERR_SYNTAX; /* "<u@d" without its '>' */
	ll = strlen(a->local);
	dl = strlen(a->domain);
	if (ll + 1 + dl + 2 > ADDR_PATH_MAX)
		return ADDR_ERR_PATH_TOO_LONG;
	memcpy(a->mailbox, a->local, ll);
	if (dl > 0) {
		a->mailbox[ll] = '@';
		memcpy(a->mailbox + ll + 1, a->domain, dl + 1);
	} else {
		a->mailbox[ll] = '\0';
	}
	a->is_null = 0;
	*pp = p;
	return ADDR_OK;
}

/* Source route "@a,@b:" (already past '<'): checked, then dropped. */
static enum addr_error skip_route(ptr *pp, int flags)
{
	char dom[ADDR_DOMAIN_MAX + 1];
	ptr p = *pp;
	enum addr_error e;

	for (;;) {
		if (*p != '@')
			return bad_char(*p, flags);
		p++;
		if ((e = parse_domain(&p, flags, ",:", dom)) != ADDR_OK)
			return e == ADDR_ERR_EMPTY_DOMAIN ? ADDR_ERR_SYNTAX : e;
		if (*p == ':')
			break;
		if (*p != ',')
			return ADDR_ERR_SYNTAX;
		p++;
	}
	*pp = p + 1;
	return ADDR_OK;
}

static void set_null(struct addr *a)
{
	a->mailbox[0] = a->local[0] = a->domain[0] = '\0';
	a->is_null = 1;
}

enum addr_error addr_parse_path(const char *s, int flags, struct addr *a, const char **end)
{
	ptr p = (ptr)s;
	enum addr_error e;

	while (*p == ' ')
		p++;
	if (*p != '<') {
		if (!(flags & ADDR_NO_BRACKETS))
			return bad_char(*p, flags);
		if ((e = parse_mbox(&p, flags, " ", a)) != ADDR_OK)
			return e;
		*end = (const char *)p;
		return ADDR_OK;
	}
	p++;
	if (*p == '>') {
		if (!(flags & ADDR_ALLOW_NULL))
			return ADDR_ERR_NULL_NOT_ALLOWED;
		set_null(a);
		*end = (const char *)p + 1;
		return ADDR_OK;
	}
	if (*p == '@' && (e = skip_route(&p, flags)) != ADDR_OK)
		return e;
	if ((e = parse_mbox(&p, flags, ">", a)) != ADDR_OK)
		return e;
	*end = (const char *)p + 1;
	return ADDR_OK;
}

enum addr_error addr_parse_mailbox(const char *s, int flags, struct addr *a)
{
	const char *end;
	enum addr_error e;

	if (*s == '\0') {
		if (!(flags & ADDR_ALLOW_NULL))
			return ADDR_ERR_SYNTAX;
		set_null(a);
		return ADDR_OK;
	}
	e = addr_parse_path(s, flags | ADDR_NO_BRACKETS, a, &end);
	if (e != ADDR_OK)
		return e;
	return *end == '\0' ? ADDR_OK : bad_char((unsigned char)*end, flags);
}

const char *addr_strerror(enum addr_error e)
{
	switch (e) {
	case ADDR_OK:
		return "ok";
	case ADDR_ERR_SYNTAX:
		return "syntax error in address";
	case ADDR_ERR_LOCAL_TOO_LONG:
		return "local part too long";
	case ADDR_ERR_DOMAIN_TOO_LONG:
		return "domain too long";
	case ADDR_ERR_PATH_TOO_LONG:
		return "address too long";
	case ADDR_ERR_NULL_NOT_ALLOWED:
		return "null address not allowed here";
	case ADDR_ERR_EMPTY_DOMAIN:
		return "empty domain";
	case ADDR_ERR_BAD_DOMAIN:
		return "bad domain or address literal";
	case ADDR_ERR_UTF8:
		return "8-bit characters need SMTPUTF8";
	case ADDR_ERR_CONTROL:
		return "control character in address";
	}
	return "unknown address error";
}

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

int addr_domain_eq(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);

	if (na > 0 && a[na - 1] == '.')
		na--;
	if (nb > 0 && b[nb - 1] == '.')
		nb--;
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/*
 * A quoted local part ("joe+a b") is split in its unquoted form, as Postfix
 * does: user joe, extension "a b".  Only when the user part needs no quotes
 * itself, so it names the same user as an unquoted joe+...; otherwise
 * (or without a delimiter) it is not split.  1 when split, else 0.
 */
static int split_quoted(const char *local, size_t n, const char *delims, char *user, char *ext)
{
	char raw[ADDR_SIZE];
	size_t m = 0, cut;

	for (size_t i = 1; i < n && local[i] != '"'; i++) {
		if (local[i] == '\\' && i + 1 < n)
			i++;
		raw[m++] = local[i];
	}
	raw[m] = '\0';
	cut = strcspn(raw, delims);
	if (cut == 0 || cut >= m || !is_dot_string((const unsigned char *)raw, cut))
		return 0;
	memcpy(user, raw, cut);
	user[cut] = '\0';
	memcpy(ext, raw + cut + 1, m - cut); /* includes the NUL */
	return 1;
}

int addr_split_extension(const char *local, const char *delims, char *user, char *ext)
{
	size_t n = strlen(local), cut;

	ext[0] = '\0';
	if (delims != NULL && *delims != '\0' && n < ADDR_SIZE && local[0] == '"' &&
	    split_quoted(local, n, delims, user, ext))
		return 1;
	cut = (delims == NULL || *delims == '\0' || n >= ADDR_SIZE || local[0] == '"') ? n
											: strcspn(local, delims);
	if (cut == 0 || cut >= n) {
		size_t m = n < ADDR_SIZE ? n : ADDR_SIZE - 1;
		memcpy(user, local, m);
		user[m] = '\0';
		return 0;
	}
	memcpy(user, local, cut);
	user[cut] = '\0';
	memcpy(ext, local + cut + 1, n - cut); /* includes the NUL */
	return 1;
}
