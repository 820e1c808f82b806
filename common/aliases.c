/*
 * aliases — aliases(5) parser and compiler (format and rules in aliases.h).
 *
 * The parser works on text in memory (the compiler reads the file whole,
 * bounded by ALIAS_FILE_MAX), so the same code serves newaliases, the
 * local agent's :include: and .forward files, the unit tests and the fuzz
 * target.  Every copy goes through struct buf with an explicit maximum.
 */
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "aliases.h"
#include "fsutil.h"
#include "strutil.h"
#include "xalloc.h"

#define INCLUDE_PREFIX ":include:"

static void seterr(char *err, size_t errsize, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errsize, const char *fmt, ...)
{
	va_list ap;
	if (errsize == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsize, fmt, ap);
	va_end(ap);
}

static int is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

enum alias_kind alias_kind(const char *t)
{
	if (t[0] == '|')
		return ALIAS_PIPE;
	if (t[0] == '/')
		return ALIAS_FILE;
	if (strncasecmp(t, INCLUDE_PREFIX, sizeof(INCLUDE_PREFIX) - 1) == 0)
		return ALIAS_INCLUDE;
	return ALIAS_ADDR;
}

/* Check an address target: no blank or control byte outside quotes, fits
 * ADDR_SIZE, has a user part.  NULL when fine, else the reason. */
static const char *check_address(const char *t, size_t n)
{
	int inq = 0;
	if (n >= ADDR_SIZE)
		return "address too long";
	const char *u = t[0] == '\\' ? t + 1 : t;
	if (*u == '\0' || *u == '@')
		return "empty user part";
	for (size_t i = 0; i < n; i++) {
		if (t[i] == '"' && (i == 0 || t[i - 1] != '\\'))
			inq = !inq;
		else if (!inq && (t[i] == ' ' || t[i] == ','))
			return "blank inside an address (quote the target)";
	}
	if (inq)
		return "unbalanced quote";
	if (t[n - 1] == '@')
		return "empty domain";
	return NULL;
}

/* Validate one raw target and append it (canonical) to out.  0 or -1. */
static int add_target(struct buf *tok, struct buf *out, char *err, size_t errsize)
{
	char *t = tok->data;
	size_t n = tok->len;

	while (n > 0 && is_blank((unsigned char)t[n - 1]))
		n--;
	while (n > 0 && is_blank((unsigned char)*t)) {
		t++;
		n--;
	}
	t[n] = '\0';
	if (n == 0) {
		seterr(err, errsize, "empty target");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c < 32 || c == 127) {
			seterr(err, errsize, "control character in target");
			return -1;
		}
	}
	switch (alias_kind(t)) {
	case ALIAS_PIPE:
		if (n == 1) {
			seterr(err, errsize, "empty command");
			return -1;
		}
		break;
	case ALIAS_FILE:
		break;
	case ALIAS_INCLUDE: {
		char *p = t + sizeof(INCLUDE_PREFIX) - 1;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '/') {
			seterr(err, errsize, ":include: needs an absolute path");
			return -1;
		}
		memcpy(t, INCLUDE_PREFIX, sizeof(INCLUDE_PREFIX) - 1); /* canonical case */
		memmove(t + sizeof(INCLUDE_PREFIX) - 1, p, strlen(p) + 1);
		n = strlen(t);
		break;
	}
	case ALIAS_ADDR: {
		if (n >= 2 && t[0] == '<' && t[n - 1] == '>') {
			t++;
			n -= 2;
			t[n] = '\0';
		}
		const char *why = n ? check_address(t, n) : "empty address";
		if (why) {
			seterr(err, errsize, "%s: %.100s", why, t);
			return -1;
		}
		break;
	}
	}
	if (buf_append(out, t, n) < 0 || buf_putc(out, '\n') < 0) {
		seterr(err, errsize, "too many targets (max %d bytes)", ALIAS_VALUE_MAX);
		return -1;
	}
	return 0;
}

/* Read a quoted string starting at s[*i] == '"' into tok (escapes undone).
 * 0 with *i after the closing quote, or -1. */
static int read_quoted(const char *s, size_t n, size_t *i, struct buf *tok, char *err, size_t errsize)
{
	size_t j = *i + 1;
	while (j < n && s[j] != '"') {
		if (s[j] == '\\' && j + 1 < n)
			j++;
		if (buf_putc(tok, s[j]) < 0) {
			seterr(err, errsize, "target too long");
			return -1;
		}
		j++;
	}
	if (j >= n) {
		seterr(err, errsize, "unterminated quote");
		return -1;
	}
	*i = j + 1;
	return 0;
}

/* Parse one comma-separated segment (no newlines) into out. */
static int parse_segment(const char *s, size_t n, struct buf *out, char *err, size_t errsize)
{
	struct buf tok;
	size_t i = 0;
	int rc = 0;

	buf_init(&tok, ALIAS_TARGET_MAX);
	while (rc == 0) {
		while (i < n && (is_blank((unsigned char)s[i]) || s[i] == ','))
			i++;
		if (i >= n)
			break;
		buf_reset(&tok);
		if (s[i] == '"') {
			/* A wholly quoted target ("|cmd a, b"), unless the quote is
			 * only the local part of an address ("a b"@dom). */
			size_t j = i;
			if (read_quoted(s, n, &j, &tok, err, errsize) < 0) {
				rc = -1;
				break;
			}
			size_t k = j;
			while (k < n && is_blank((unsigned char)s[k]))
				k++;
			if (k >= n || s[k] == ',') {
				if (memchr(tok.data, '\n', tok.len) || memchr(tok.data, '\0', tok.len)) {
					seterr(err, errsize, "control character in target");
					rc = -1;
					break;
				}
				rc = add_target(&tok, out, err, errsize);
				i = k;
				continue;
			}
			buf_reset(&tok);
		}
		/* Unquoted: up to the next comma outside quotes, kept verbatim. */
		int inq = 0;
		size_t start = i;
		while (i < n && (inq || s[i] != ',')) {
			if (s[i] == '"' && (i == start || s[i - 1] != '\\'))
				inq = !inq;
			i++;
		}
		if (inq) {
			seterr(err, errsize, "unterminated quote");
			rc = -1;
			break;
		}
		if (buf_append(&tok, s + start, i - start) < 0) {
			seterr(err, errsize, "target too long (max %d bytes)", ALIAS_TARGET_MAX);
			rc = -1;
			break;
		}
		rc = add_target(&tok, out, err, errsize);
	}
	buf_free(&tok);
	return rc;
}

int alias_parse_list(const char *s, size_t n, struct buf *out, char *err, size_t errsize)
{
	size_t pos = 0;
	while (pos < n) {
		const char *nl = memchr(s + pos, '\n', n - pos);
		size_t end = nl ? (size_t)(nl - s) : n;
		size_t k = pos;
		while (k < end && is_blank((unsigned char)s[k]))
			k++;
		if (memchr(s + pos, '\0', end - pos)) {
			seterr(err, errsize, "NUL byte in list");
			return -1;
		}
		if (k < end && s[k] != '#' && parse_segment(s + pos, end - pos, out, err, errsize) < 0)
			return -1;
		pos = end + 1;
	}
	return 0;
}

/* One collected entry: "name: targets" with continuations joined. */
static int flush_entry(struct buf *e, int line, const char *fname, alias_entry_fn fn, void *ctx, struct buf *val,
		       char *err, size_t errsize)
{
	char why[200];
	char name[ALIAS_NAME_MAX];
	const char *colon = memchr(e->data, ':', e->len);

	if (colon == NULL) {
		seterr(err, errsize, "%s:%d: missing ':' after the alias name", fname, line);
		return -1;
	}
	size_t nlen = (size_t)(colon - e->data);
	while (nlen > 0 && is_blank((unsigned char)e->data[nlen - 1]))
		nlen--;
	if (nlen == 0 || nlen >= sizeof(name)) {
		seterr(err, errsize, "%s:%d: %s alias name", fname, line, nlen ? "overlong" : "empty");
		return -1;
	}
	memcpy(name, e->data, nlen);
	name[nlen] = '\0';
	for (size_t i = 0; i < nlen; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= 32 || c == 127 || c == '@' || c == '"' || c == ',') {
			seterr(err, errsize, "%s:%d: bad character in alias name", fname, line);
			return -1;
		}
	}
	str_lower(name);
	buf_reset(val);
	const char *rhs = colon + 1;
	if (parse_segment(rhs, e->len - (size_t)(rhs - e->data), val, why, sizeof(why)) < 0) {
		seterr(err, errsize, "%s:%d: %s: %s", fname, line, name, why);
		return -1;
	}
	if (val->len == 0) {
		seterr(err, errsize, "%s:%d: %s: no targets", fname, line, name);
		return -1;
	}
	return fn(ctx, name, val->data, val->len, line);
}

int aliases_parse(const char *text, size_t len, const char *fname, alias_entry_fn fn, void *ctx, char *err,
		  size_t errsize)
{
	struct buf entry, val;
	size_t pos = 0;
	int lineno = 0, start = 0, rc = 0;

	buf_init(&entry, ALIAS_VALUE_MAX + ALIAS_NAME_MAX);
	buf_init(&val, ALIAS_VALUE_MAX);
	while (rc == 0 && pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		const char *l = text + pos;
		size_t n = end - pos;
		pos = end + 1;
		lineno++;
		if (n > 0 && l[n - 1] == '\r')
			n--;
		if (memchr(l, '\0', n)) {
			seterr(err, errsize, "%s:%d: NUL byte", fname, lineno);
			rc = -1;
			break;
		}
		if (n > 0 && l[0] == '#')
			continue;
		size_t k = 0;
		while (k < n && is_blank((unsigned char)l[k]))
			k++;
		if (k == n)
			continue; /* blank line */
		if (k > 0) {
			/* Continuation: a new line also separates targets, so
			 * it is joined with a comma ("a: b" + "  c" = b, c). */
			if (entry.len == 0) {
				seterr(err, errsize, "%s:%d: continuation line without an entry", fname, lineno);
				rc = -1;
			} else if (buf_putc(&entry, ',') < 0 || buf_append(&entry, l, n) < 0) {
				seterr(err, errsize, "%s:%d: entry too long (max %d bytes)", fname, lineno,
				       ALIAS_VALUE_MAX);
				rc = -1;
			}
			continue;
		}
		if (entry.len > 0)
			rc = flush_entry(&entry, start, fname, fn, ctx, &val, err, errsize);
		buf_reset(&entry);
		start = lineno;
		if (rc == 0 && buf_append(&entry, l, n) < 0) {
			seterr(err, errsize, "%s:%d: line too long", fname, lineno);
			rc = -1;
		}
	}
	if (rc == 0 && entry.len > 0)
		rc = flush_entry(&entry, start, fname, fn, ctx, &val, err, errsize);
	buf_free(&entry);
	buf_free(&val);
	return rc;
}

/* ---- the compiler ---- */

struct compile_ctx {
	struct cdb_make cm;
	const char *fname;
	char *err;
	size_t errsize;
	size_t count;
};

static int add_entry(void *vctx, const char *name, const char *value, size_t vlen, int line)
{
	struct compile_ctx *c = vctx;
	unsigned klen = (unsigned)strlen(name);
	int r = cdb_make_exists(&c->cm, name, klen);
	if (r > 0) {
		seterr(c->err, c->errsize, "%s:%d: duplicate alias \"%s\"", c->fname, line, name);
		return -1;
	}
	if (r < 0 || cdb_make_add(&c->cm, name, klen, value, (unsigned)vlen) < 0) {
		seterr(c->err, c->errsize, "%s:%d: writing table: %s", c->fname, line, strerror(errno));
		return -1;
	}
	c->count++;
	return 0;
}

/* Read the whole (bounded) file.  0 or -1 with err. */
static int read_source(const char *src, struct buf *text, mode_t *mode, char *err, size_t errsize)
{
	struct stat st;
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		seterr(err, errsize, "%s: %s", src, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*mode = st.st_mode;
	char chunk[65536];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			seterr(err, errsize, "%s: read: %s", src, strerror(errno));
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		if (buf_append(text, chunk, (size_t)r) < 0) {
			seterr(err, errsize, "%s: file too large (max %ld bytes)", src, ALIAS_FILE_MAX);
			close(fd);
			return -1;
		}
	}
	close(fd);
	return 0;
}


int aliases_compile(const char *src, const char *dst, size_t *count, char *err, size_t errsize)
{
	struct compile_ctx c = { .fname = src, .err = err, .errsize = errsize };
	struct buf text;
	mode_t mode = 0644;
	int rc = -1, out = -1;
	char *tmp = NULL;

	buf_init(&text, (size_t)ALIAS_FILE_MAX);
	if (read_source(src, &text, &mode, err, errsize) < 0)
		goto done;
	tmp = xmalloc(strlen(dst) + 5);
	memcpy(tmp, dst, strlen(dst));
	memcpy(tmp + strlen(dst), ".tmp", 5);
	(void)unlink(tmp); /* a leftover of a crashed run */
	out = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		seterr(err, errsize, "%s: %s", tmp, strerror(errno));
		goto done;
	}
	if (cdb_make_start(&c.cm, out) < 0) {
		seterr(err, errsize, "%s: %s", tmp, strerror(errno));
		goto done;
	}
	rc = aliases_parse(text.data, text.len, src, add_entry, &c, err, errsize);
	if (cdb_make_finish(&c.cm) < 0 && rc == 0) {
		seterr(err, errsize, "%s: writing table: %s", tmp, strerror(errno));
		rc = -1;
	}
	/* The table is readable like its source (the local agent and smtpd
	 * read it as mail_owner), never more. */
	if (rc == 0 && fchmod(out, (mode & 0644) | 0600) < 0) {
		seterr(err, errsize, "%s: chmod: %s", tmp, strerror(errno));
		rc = -1;
	}
	if (rc == 0 && fsync(out) < 0) {
		seterr(err, errsize, "%s: fsync: %s", tmp, strerror(errno));
		rc = -1;
	}
	if (close(out) < 0 && rc == 0) {
		seterr(err, errsize, "%s: close: %s", tmp, strerror(errno));
		rc = -1;
	}
	out = -1;
	if (rc == 0 && rename(tmp, dst) < 0) {
		seterr(err, errsize, "rename %s: %s", tmp, strerror(errno));
		rc = -1;
	}
	if (rc == 0 && fsync_parent_dir(dst) < 0) {
		seterr(err, errsize, "fsync directory of %s: %s", dst, strerror(errno));
		rc = -1;
	}
done:
	if (out >= 0)
		close(out);
	if (rc < 0 && tmp)
		unlink(tmp);
	free(tmp);
	buf_free(&text);
	if (rc == 0 && count)
		*count = c.count;
	return rc;
}
