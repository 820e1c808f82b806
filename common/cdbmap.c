/*
 * cdbmap.c — lookup tables in tinycdb files, and their compiler.
 *
 * Lookups run against the file mapped by cdb_init; the descriptor stays
 * open so the inode we compare against cannot be recycled while we hold
 * it.  At most once a second a lookup stats the path and, when the inode,
 * size or mtime differ (a rebuild renamed a new file into place), maps the
 * new file; if that fails the old table keeps serving and a warning is
 * logged.
 *
 * The compiler reads the text table through the bounded line reader,
 * writes dst.tmp (same permission bits as the source, so a password table
 * stays private), fsyncs it, renames it over dst and fsyncs the directory.
 * On any error the temporary file is removed and dst is left untouched.
 *
 * Public: cdbmap_open, cdbmap_open_table, cdbmap_close, cdbmap_lookup, cdbmap_compile.
 */
#include "cdbmap.h"
#include "fsutil.h"

#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lineread.h"
#include "log.h"
#include "strutil.h"
#include "xalloc.h"

#define CDBMAP_LINE_MAX 8192
#define CDBMAP_KEY_MAX 1024
#define CDBMAP_VALUE_MAX 65536

struct cdbmap {
	char *path;
	int fd;
	struct cdb cdb;
	struct stat st;  /* of the mapped file */
	time_t checked;  /* monotonic second of the last stat */
};

/* Open and map path; fills fd, cdb and st of m. */
static int map_file(struct cdbmap *m, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &m->st) < 0 || cdb_init(&m->cdb, fd) < 0) {
		int e = errno;
		close(fd);
		errno = e ? e : EPROTO;
		return -1;
	}
	m->fd = fd;
	return 0;
}

static time_t mono_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

struct cdbmap *cdbmap_open(const char *path)
{
	struct cdbmap *m = xcalloc(1, sizeof(*m));

	if (map_file(m, path) < 0) {
		int e = errno;
		free(m);
		errno = e;
		return NULL;
	}
	m->path = xstrdup(path);
	m->checked = mono_seconds();
	return m;
}

struct cdbmap *cdbmap_open_table(const char *name)
{
	char path[4096];
	size_t n;

	n = strlen(name);
	if (n >= 4 && strcmp(name + n - 4, ".cdb") == 0) {
		if (n >= sizeof(path)) {
			errno = ENAMETOOLONG;
			return NULL;
		}
		return cdbmap_open(name);
	}
	if (snprintf(path, sizeof(path), "%s.cdb", name) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	return cdbmap_open(path);
}

void cdbmap_close(struct cdbmap *m)
{
	if (m == NULL)
		return;
	cdb_free(&m->cdb);
	close(m->fd);
	free(m->path);
	free(m);
}

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Switch to a rebuilt file, at most one stat per second. */
static void maybe_reopen(struct cdbmap *m)
{
	time_t now = mono_seconds();
	struct cdbmap fresh;
	struct stat st;

	if (now == m->checked)
		return;
	m->checked = now;
	if (stat(m->path, &st) < 0) {
		log_warning("%s: %s; still using the table loaded earlier", m->path, strerror(errno));
		return;
	}
	if (same_file(&st, &m->st))
		return;
	if (map_file(&fresh, m->path) < 0) {
		log_warning("%s: cannot reopen: %s; still using the table loaded earlier", m->path,
			    strerror(errno));
		return;
	}
	cdb_free(&m->cdb);
	close(m->fd);
	m->cdb = fresh.cdb;
	m->fd = fresh.fd;
	m->st = fresh.st;
}

int cdbmap_lookup(struct cdbmap *m, const char *key, struct buf *value)
{
	size_t klen = strlen(key);
	unsigned vlen, vpos;
	const void *v;
	char *lk;
	int r;

	maybe_reopen(m);
	if (klen > CDBMAP_KEY_MAX)
		return 0; /* the compiler never stores such a key */
	lk = str_lower(xstrdup(key));
	r = cdb_find(&m->cdb, lk, (unsigned)klen);
	free(lk);
	if (r == 0)
		return 0;
	if (r < 0) {
		log_warning("%s: corrupt table", m->path);
		return -1;
	}
	vlen = cdb_datalen(&m->cdb);
	vpos = cdb_datapos(&m->cdb);
	v = cdb_get(&m->cdb, vlen, vpos);
	if (v == NULL) {
		log_warning("%s: corrupt table", m->path);
		return -1;
	}
	buf_reset(value);
	if (buf_append(value, v, vlen) < 0)
		return -1;
	return 1;
}

/* State of one compilation. */
struct compiler {
	const char *src;
	struct cdb_make cm;
	struct buf key, val;
	int keyline; /* line of the pending key, 0 when none */
	char *err;
	size_t errsize;
};

static int cerr(struct compiler *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cerr(struct compiler *c, int line, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (c->errsize > 0) {
		if (line > 0)
			snprintf(c->err, c->errsize, "%s:%d: %s", c->src, line, why);
		else
			snprintf(c->err, c->errsize, "%s: %s", c->src, why);
	}
	return -1;
}

static int is_blank(int ch)
{
	return ch == ' ' || ch == '\t';
}

/* Store the pending key and value. */
static int flush_entry(struct compiler *c)
{
	if (c->keyline == 0)
		return 0;
	if (c->val.len == 0)
		return cerr(c, c->keyline, "key \"%.100s\" has no value", c->key.data);
	/* tinycdb reads earlier records back from the file: it must be O_RDWR. */
	switch (cdb_make_exists(&c->cm, c->key.data, (unsigned)c->key.len)) {
	case 0:
		break;
	case 1:
		return cerr(c, c->keyline, "duplicate key \"%.100s\"", c->key.data);
	default:
		return cerr(c, c->keyline, "reading back the table: %s", strerror(errno));
	}
	if (cdb_make_add(&c->cm, c->key.data, (unsigned)c->key.len, c->val.data, (unsigned)c->val.len) < 0)
		return cerr(c, c->keyline, "write: %s", strerror(errno));
	c->keyline = 0;
	return 0;
}

static int compile_line(struct compiler *c, const char *s, size_t n, int lineno)
{
	size_t i, k;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return cerr(c, lineno, ch == 0 ? "NUL byte in line" : "control character in line");
	}
	while (n > 0 && is_blank(s[n - 1]))
		n--;
	for (i = 0; i < n && is_blank(s[i]); i++)
		;
	if (i == n || s[i] == '#')
		return 0;
	if (i > 0) { /* continuation of the previous value */
		if (c->keyline == 0)
			return cerr(c, lineno, "continuation line without a key");
		if ((c->val.len > 0 && buf_putc(&c->val, ' ') < 0) || buf_append(&c->val, s + i, n - i) < 0)
			return cerr(c, lineno, "value too long (max %d bytes)", CDBMAP_VALUE_MAX);
		return 0;
	}
	if (flush_entry(c) < 0)
		return -1;
	for (k = 0; k < n && !is_blank(s[k]); k++)
		;
	buf_reset(&c->key);
	if (buf_append(&c->key, s, k) < 0)
		return cerr(c, lineno, "key too long (max %d bytes)", CDBMAP_KEY_MAX);
	str_lower(c->key.data);
	for (i = k; i < n && is_blank(s[i]); i++)
		;
	buf_reset(&c->val);
	buf_append(&c->val, s + i, n - i); /* fits: shorter than a line */
	c->keyline = lineno;
	return 0;
}

static int compile_lines(struct compiler *c, int fd)
{
	struct linereader lr;
	struct buf line;
	enum lr_ending ending;
	int lineno = 0, rc = 0;

	lr_init_fd(&lr, fd, CDBMAP_LINE_MAX, 0, -1);
	buf_init(&line, CDBMAP_LINE_MAX);
	for (;;) {
		enum lr_result r = lr_getline(&lr, &line, &ending);
		if (r == LR_EOF)
			break;
		lineno++;
		if (r == LR_ERROR)
			rc = cerr(c, lineno, "read: %s", strerror(errno));
		else if (r == LR_TOOLONG)
			rc = cerr(c, lineno, "line too long (max %d bytes)", CDBMAP_LINE_MAX);
		else
			rc = compile_line(c, line.data, line.len, lineno);
		if (rc < 0)
			break;
	}
	if (rc == 0)
		rc = flush_entry(c);
	buf_free(&line);
	lr_free(&lr);
	return rc;
}


/* Build the table from the open source into the open tmp file. */
static int compile_into(struct compiler *c, int in, int out)
{
	int rc;

	if (cdb_make_start(&c->cm, out) < 0)
		return cerr(c, 0, "cdb_make_start: %s", strerror(errno));
	buf_init(&c->key, CDBMAP_KEY_MAX);
	buf_init(&c->val, CDBMAP_VALUE_MAX);
	rc = compile_lines(c, in);
	if (rc == 0 && cdb_make_finish(&c->cm) < 0)
		rc = cerr(c, 0, "writing table: %s", strerror(errno));
	else if (rc < 0)
		(void)cdb_make_finish(&c->cm); /* only to free its memory: the file is discarded */
	buf_free(&c->key);
	buf_free(&c->val);
	if (rc == 0 && fsync(out) < 0)
		rc = cerr(c, 0, "fsync: %s", strerror(errno));
	return rc;
}

int cdbmap_compile(const char *src, const char *dst, char *err, size_t errsize)
{
	struct compiler c = { .src = src, .err = err, .errsize = errsize };
	struct stat st;
	char *tmp;
	int in, out, rc;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0) {
		rc = cerr(&c, 0, "%s", strerror(errno));
		if (in >= 0)
			close(in);
		return rc;
	}
	tmp = xmalloc(strlen(dst) + 5);
	/* NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.strcpy): tmp was sized strlen(dst) + 5 just above */
	strcpy(tmp, dst);
	/* NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.strcpy): tmp was sized strlen(dst) + 5 just above */
	strcat(tmp, ".tmp");
	out = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		rc = cerr(&c, 0, "%s: %s", tmp, strerror(errno));
		goto done;
	}
	rc = compile_into(&c, in, out);
	if (rc == 0 && fchmod(out, st.st_mode & 0666) < 0)
		rc = cerr(&c, 0, "%s: chmod: %s", tmp, strerror(errno));
	if (close(out) < 0 && rc == 0)
		rc = cerr(&c, 0, "%s: close: %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, dst) < 0)
		rc = cerr(&c, 0, "rename %s: %s", tmp, strerror(errno));
	if (rc < 0)
		unlink(tmp);
	else if (fsync_parent_dir(dst) < 0)
		rc = cerr(&c, 0, "fsync directory of %s: %s", dst, strerror(errno));
done:
	free(tmp);
	close(in);
	return rc;
}
