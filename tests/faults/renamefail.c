/*
 * renamefail — an LD_PRELOAD shim that makes rename(2) and link(2) fail on
 * demand, for the fault tests (tests/blackbox/test_faults.py).  libfiu's
 * POSIX preload wraps rename() but not renameat(), renameat2(), link() or
 * linkat(), and tern's queue moves files with renameat(); this shim wraps
 * all five.  Built by the Makefile into $(B)/tests/faults/librenamefail.so.
 * It also fails write(2) to a file whose path matches, when OPS names
 * "write": libfiu can only fail every write of a process, its log and its
 * status pipe included, and tern's queue files are written with write().
 *
 * Configuration, read at every call (renames are rare; a test can change
 * the fault while the daemon runs):
 *   TERN_FAIL_RENAME_CTL=PATH  when set, fail only while PATH exists; a
 *                              non-empty PATH holds "ERRNO [MATCH [OPS]]",
 *                              which overrides the variables below
 *   TERN_FAIL_RENAME=ERRNO     EIO, ENOSPC, EDQUOT, EMFILE, ENOMEM, EXDEV,
 *                              EPERM, EACCES, EROFS or a number (unset and
 *                              no control file: nothing fails)
 *   TERN_FAIL_RENAME_MATCH=S   fail only when the destination path contains
 *                              S; a destination relative to a directory
 *                              descriptor is resolved through /proc/self/fd,
 *                              so "incoming/" or "/new/" match
 *   TERN_FAIL_RENAME_OPS=LIST  only these of rename,renameat,renameat2,
 *                              link,linkat (default: all five), and write
 *                              (only when listed: the file written to is
 *                              the "destination"; fds 0-2 never fail)
 * Every injected failure is reported on stderr (the daemon's log) as
 * "renamefail: OP DEST: ERRNO-NAME", so a test can count them.
 *
 * A failed call does nothing: the files stay as they were, as when the
 * kernel refuses the operation.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* glibc declares renameat2 only with _GNU_SOURCE (>= 2.28); declare it here
 * so the shim does not depend on that. */
int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);

static const struct {
	const char *name;
	int value;
} errnames[] = {
	{ "EIO", EIO },       { "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT }, { "EMFILE", EMFILE },
	{ "ENOMEM", ENOMEM }, { "EXDEV", EXDEV },   { "EPERM", EPERM },   { "EACCES", EACCES },
	{ "EROFS", EROFS },   { "ENFILE", ENFILE }, { "EMLINK", EMLINK },
};

static int parse_errno(const char *s)
{
	size_t i;
	char *end;
	long v;

	for (i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (strcmp(s, errnames[i].name) == 0)
			return errnames[i].value;
	v = strtol(s, &end, 10);
	return (*s && *end == 0 && v > 0 && v < 4096) ? (int)v : 0;
}

static const char *errno_name(int e)
{
	size_t i;

	for (i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].value == e)
			return errnames[i].name;
	return "errno";
}

/* The destination as a path: dirfd's path + "/" + name when name is
 * relative to a directory descriptor (best effort). */
static void dest_path(int dirfd, const char *name, char *out, size_t outsize)
{
	char link[64];
	ssize_t n;

	if (name[0] == '/' || dirfd == AT_FDCWD) {
		snprintf(out, outsize, "%s", name);
		return;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
	n = readlink(link, out, outsize - 1);
	if (n < 0 || (size_t)n >= outsize - 1) {
		snprintf(out, outsize, "%s", name);
		return;
	}
	out[n] = 0;
	snprintf(out + n, outsize - (size_t)n, "/%s", name);
}

/* 1 when op is an item of the comma-separated list ops. */
static int op_listed(const char *ops, const char *op)
{
	size_t l = strlen(op);
	const char *p = ops;

	for (;;) {
		p = strstr(p, op);
		if (!p)
			return 0;
		if ((p == ops || p[-1] == ',') && (p[l] == 0 || p[l] == ','))
			return 1;
		p += l;
	}
}

/* The errno to fail op on dest with, or 0 to let it through.  An op that
 * is not a rename or link (explicit) fails only when OPS names it; dest
 * NULL: resolve the destination from dirfd (only once the rest matched,
 * a readlink per write being the cost). */
static int want_failure(const char *op, int explicit, int dirfd, const char *dest)
{
	const char *err = getenv("TERN_FAIL_RENAME"), *match = getenv("TERN_FAIL_RENAME_MATCH");
	const char *ctl = getenv("TERN_FAIL_RENAME_CTL"), *ops = getenv("TERN_FAIL_RENAME_OPS");
	char text[512], word[64], sub[400], oplist[64], path[1024];
	int fd, e;
	ssize_t n;

	if (ctl && *ctl) {
		fd = open(ctl, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return 0; /* switched off */
		n = read(fd, text, sizeof(text) - 1);
		close(fd);
		if (n > 0) {
			text[n] = 0;
			word[0] = sub[0] = oplist[0] = 0;
			if (sscanf(text, "%63s %399s %63s", word, sub, oplist) >= 1) {
				err = word;
				match = sub[0] ? sub : NULL;
				ops = oplist[0] ? oplist : NULL;
			}
		}
	}
	if (!err || !(e = parse_errno(err)))
		return 0;
	if (ops && *ops ? !op_listed(ops, op) : explicit)
		return 0;
	if (!dest) {
		char link[64];

		snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
		n = readlink(link, path, sizeof(path) - 1);
		if (n < 0)
			return 0;
		path[n] = 0;
		dest = path;
	}
	if (match && *match && !strstr(dest, match))
		return 0;
	return e;
}

static void *next_symbol(const char *name);

/* Report and fail: -1 with errno e.  The report goes through the real
 * write, not ours. */
static int fail(const char *op, int dirfd, const char *dest, int e)
{
	ssize_t (*real)(int, const void *, size_t) =
		(ssize_t(*)(int, const void *, size_t))next_symbol("write");
	char line[1200], link[64], path[1024];
	ssize_t k;
	int n;

	if (!dest) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
		k = readlink(link, path, sizeof(path) - 1);
		path[k < 0 ? 0 : k] = 0;
		dest = path;
	}
	n = snprintf(line, sizeof(line), "renamefail: %s %s: %s\n", op, dest, errno_name(e));
	if (n > 0 && real)
		(void)!real(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	errno = e;
	return -1;
}

static void *next_symbol(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (!p) {
		errno = ENOSYS;
		return NULL;
	}
	return p;
}

int rename(const char *oldpath, const char *newpath)
{
	int (*real)(const char *, const char *) = (int (*)(const char *, const char *))next_symbol("rename");
	char dest[1024];
	int e;

	dest_path(AT_FDCWD, newpath, dest, sizeof(dest));
	if ((e = want_failure("rename", 0, -1, dest)) != 0)
		return fail("rename", -1, dest, e);
	return real ? real(oldpath, newpath) : -1;
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
	int (*real)(int, const char *, int, const char *) =
		(int (*)(int, const char *, int, const char *))next_symbol("renameat");
	char dest[1024];
	int e;

	dest_path(newdirfd, newpath, dest, sizeof(dest));
	if ((e = want_failure("renameat", 0, -1, dest)) != 0)
		return fail("renameat", -1, dest, e);
	return real ? real(olddirfd, oldpath, newdirfd, newpath) : -1;
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)
{
	int (*real)(int, const char *, int, const char *, unsigned int) =
		(int (*)(int, const char *, int, const char *, unsigned int))next_symbol("renameat2");
	char dest[1024];
	int e;

	dest_path(newdirfd, newpath, dest, sizeof(dest));
	if ((e = want_failure("renameat2", 0, -1, dest)) != 0)
		return fail("renameat2", -1, dest, e);
	return real ? real(olddirfd, oldpath, newdirfd, newpath, flags) : -1;
}

int link(const char *oldpath, const char *newpath)
{
	int (*real)(const char *, const char *) = (int (*)(const char *, const char *))next_symbol("link");
	char dest[1024];
	int e;

	dest_path(AT_FDCWD, newpath, dest, sizeof(dest));
	if ((e = want_failure("link", 0, -1, dest)) != 0)
		return fail("link", -1, dest, e);
	return real ? real(oldpath, newpath) : -1;
}

int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)
{
	int (*real)(int, const char *, int, const char *, int) =
		(int (*)(int, const char *, int, const char *, int))next_symbol("linkat");
	char dest[1024];
	int e;

	dest_path(newdirfd, newpath, dest, sizeof(dest));
	if ((e = want_failure("linkat", 0, -1, dest)) != 0)
		return fail("linkat", -1, dest, e);
	return real ? real(olddirfd, oldpath, newdirfd, newpath, flags) : -1;
}

ssize_t write(int fd, const void *buf, size_t count)
{
	ssize_t (*real)(int, const void *, size_t) =
		(ssize_t(*)(int, const void *, size_t))next_symbol("write");
	int e;

	if (fd > 2 && (e = want_failure("write", 1, fd, NULL)) != 0)
		return fail("write", fd, NULL, e);
	return real ? real(fd, buf, count) : -1;
}
