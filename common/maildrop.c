/*
 * maildrop — write and strictly read the local submission records
 * (format in maildrop.h).  md_read never trusts a number or a length: every
 * value is bounded, and any deviation rejects the whole input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maildrop.h"
#include "strutil.h"
#include "xalloc.h"

void md_env_init(struct md_env *e)
{
	memset(e, 0, sizeof(*e));
	e->envid = xstrdup("");
	e->sender = xstrdup("");
}

void md_env_free(struct md_env *e)
{
	size_t i;

	for (i = 0; i < e->nrcpt; i++)
		free(e->rcpt[i].address);
	free(e->rcpt);
	free(e->envid);
	free(e->sender);
	memset(e, 0, sizeof(*e));
}

void md_add_rcpt(struct md_env *e, const char *address, unsigned notify)
{
	/* Grow in steps of powers of two: amortised O(1). */
	if ((e->nrcpt & (e->nrcpt - 1)) == 0)
		e->rcpt = xreallocarray(e->rcpt, e->nrcpt ? e->nrcpt * 2 : 1, sizeof(*e->rcpt));
	e->rcpt[e->nrcpt].address = xstrdup(address);
	e->rcpt[e->nrcpt].notify = notify;
	e->nrcpt++;
}

/* 1 when s has no control character (and no space unless spaces_ok). */
static int field_ok(const char *s, size_t n, int spaces_ok)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f || (c == ' ' && !spaces_ok))
			return 0;
	}
	return 1;
}

int md_format(struct buf *out, const struct md_env *e, enum md_mode mode)
{
	size_t i;

	if (strlen(e->envid) > MD_ENVID_MAX || !field_ok(e->envid, strlen(e->envid), 0) ||
	    strlen(e->sender) >= MD_ADDR_MAX || !field_ok(e->sender, strlen(e->sender), 1) ||
	    e->nrcpt == 0 || e->nrcpt > MD_MAX_RCPT || (e->flags & ~(unsigned)MD_F_KNOWN))
		return -1;
	if (buf_printf(out, "%s %d\n", MD_MAGIC, MD_VERSION) < 0)
		return -1;
	if (mode == MD_FILE && buf_printf(out, "U %lld\nT %lld\n", e->uid, e->time) < 0)
		return -1;
	if (buf_printf(out, "F %u\nN %s\nS %s\n", e->flags, e->envid, e->sender) < 0)
		return -1;
	for (i = 0; i < e->nrcpt; i++) {
		const char *a = e->rcpt[i].address;

		if (!*a || strlen(a) >= MD_ADDR_MAX || !field_ok(a, strlen(a), 1) || e->rcpt[i].notify > 15)
			return -1;
		if (buf_printf(out, "R %u %s\n", e->rcpt[i].notify, a) < 0)
			return -1;
	}
	return buf_printf(out, "L %llu\n", e->length);
}

/* Next record line into line.  Returns its value (after "TYPE ") when its
 * type is type or alt (alt may be NULL; *which says which matched: 0 or 1),
 * else NULL with err set. */
static const char *next_record2(struct linereader *lr, struct buf *line, const char *type, const char *alt,
				int *which, unsigned long long *count, char *err, size_t errsize)
{
	enum lr_ending end;
	const char *types[2] = { type, alt };
	int k;

	switch (lr_getline(lr, line, &end)) {
	case LR_LINE: break;
	case LR_TOOLONG: snprintf(err, errsize, "record line too long"); return NULL;
	case LR_EOF: snprintf(err, errsize, "truncated: no %s record", type); return NULL;
	default: snprintf(err, errsize, "read error: %s", strerror(errno)); return NULL;
	}
	if (end != LR_END_LF) {
		snprintf(err, errsize, end == LR_END_CRLF ? "CR in a record" : "truncated record");
		return NULL;
	}
	*count += line->len + 1;
	if (memchr(line->data, 0, line->len) || !field_ok(line->data, line->len, 1)) {
		snprintf(err, errsize, "control character in a record");
		return NULL;
	}
	for (k = 0; k < 2 && types[k]; k++) {
		size_t tl = strlen(types[k]);

		if (line->len >= tl + 1 && memcmp(line->data, types[k], tl) == 0 && line->data[tl] == ' ') {
			if (which)
				*which = k;
			return line->data + tl + 1;
		}
	}
	snprintf(err, errsize, "expected a %s record, got \"%.20s\"", type, line->data);
	return NULL;
}

static const char *next_record(struct linereader *lr, struct buf *line, const char *type, unsigned long long *count,
			       char *err, size_t errsize)
{
	return next_record2(lr, line, type, NULL, NULL, count, err, errsize);
}

/* The envelope records after the version; 0 or -1 with err. */
static int read_fields(struct linereader *lr, struct buf *line, enum md_mode mode, struct md_env *e,
		       unsigned long long *count, char *err, size_t errsize)
{
	const char *v;
	unsigned long long n;

	if (mode == MD_FILE) {
		if (!(v = next_record(lr, line, "U", count, err, errsize)))
			return -1;
		if (parse_ull(v, 0xfffffffeULL, &n) < 0)
			return snprintf(err, errsize, "bad uid"), -1;
		e->uid = (long long)n;
		if (!(v = next_record(lr, line, "T", count, err, errsize)))
			return -1;
		if (parse_ull(v, 1ULL << 40, &n) < 0)
			return snprintf(err, errsize, "bad time"), -1;
		e->time = (long long)n;
	}
	if (!(v = next_record(lr, line, "F", count, err, errsize)))
		return -1;
	if (parse_ull(v, MD_F_KNOWN, &n) < 0 || (n & ~(unsigned long long)MD_F_KNOWN))
		return snprintf(err, errsize, "bad flags"), -1;
	e->flags = (unsigned)n;
	if (!(v = next_record(lr, line, "N", count, err, errsize)))
		return -1;
	if (strlen(v) > MD_ENVID_MAX || strchr(v, ' '))
		return snprintf(err, errsize, "bad envelope id"), -1;
	free(e->envid);
	e->envid = xstrdup(v);
	if (!(v = next_record(lr, line, "S", count, err, errsize)))
		return -1;
	if (strlen(v) >= MD_ADDR_MAX)
		return snprintf(err, errsize, "sender too long"), -1;
	free(e->sender);
	e->sender = xstrdup(v);
	return 0;
}

/* R records up to and including the L record; 0 or -1 with err. */
static int read_rcpts(struct linereader *lr, struct buf *line, struct md_env *e, unsigned long long *count,
		      char *err, size_t errsize)
{
	const char *v, *sp;
	unsigned long long n;
	char num[8];
	int which;

	for (;;) {
		if (!(v = next_record2(lr, line, "R", "L", &which, count, err, errsize)))
			return -1;
		if (which == 1)
			break;
		sp = strchr(v, ' ');
		if (!sp || sp == v || (size_t)(sp - v) >= sizeof(num))
			return snprintf(err, errsize, "bad R record"), -1;
		memcpy(num, v, (size_t)(sp - v));
		num[sp - v] = 0;
		if (parse_ull(num, 15, &n) < 0)
			return snprintf(err, errsize, "bad notify bits"), -1;
		if (!sp[1] || strlen(sp + 1) >= MD_ADDR_MAX)
			return snprintf(err, errsize, "bad recipient address"), -1;
		if (e->nrcpt >= MD_MAX_RCPT)
			return snprintf(err, errsize, "too many recipients"), -1;
		md_add_rcpt(e, sp + 1, (unsigned)n);
	}
	if (e->nrcpt == 0)
		return snprintf(err, errsize, "no recipient"), -1;
	if (parse_ull(v, 1ULL << 40, &n) < 0)
		return snprintf(err, errsize, "bad length"), -1;
	e->length = n;
	return 0;
}

int md_read(struct linereader *lr, enum md_mode mode, struct md_env *e, char *err, size_t errsize)
{
	struct buf line;
	const char *v;
	unsigned long long count = 0;
	char want[16];
	int rc = -1;

	md_env_init(e);
	buf_init(&line, MD_MAX_LINE);
	snprintf(want, sizeof(want), "%d", MD_VERSION);
	if (!(v = next_record(lr, &line, MD_MAGIC, &count, err, errsize)))
		goto out;
	if (strcmp(v, want) != 0) {
		snprintf(err, errsize, "unsupported version \"%.16s\"", v);
		goto out;
	}
	if (read_fields(lr, &line, mode, e, &count, err, errsize) < 0 ||
	    read_rcpts(lr, &line, e, &count, err, errsize) < 0)
		goto out;
	e->header_bytes = count;
	rc = 0;
out:
	buf_free(&line);
	return rc;
}
