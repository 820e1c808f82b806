/*
 * ctl_passwd.c — `ternctl passwd USER`.
 *
 * Reads the new password without echo from the terminal (twice), or one
 * line from stdin when stdin is not a terminal (scripts), hashes it with
 * crypt(3) (yescrypt, or SHA-512-crypt where libcrypt lacks it), and
 * rewrites smtpd_sasl_password_maps: the "user hash" line of USER is
 * replaced or appended, the file written as FILE.tmp, fsynced, renamed
 * over FILE, the directory fsynced; then FILE.cdb is recompiled with the
 * same atomic rename.  Run as root, both files get group mail_owner and
 * mode 0640 (smtpd reads the cdb after dropping root).
 *
 * The plain password is never stored, printed or logged; every buffer that
 * held it is wiped.  Exit codes: 0 done, 1 failure (reason on stderr),
 * 64 usage.
 */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "buf.h"
#include "cdbmap.h"
#include "conf.h"
#include "ctl_passwd.h"
#include "fsutil.h"
#include "lineread.h"
#include "privs.h"
#include "saslcodec.h"
#include "sock.h"

#define PASS_MAX SASL_FIELD_MAX
#define TABLE_LINE_MAX 8192
#define TABLE_MAX (64 * 1024 * 1024)

/* Read one line (without its end) of at most PASS_MAX bytes from fd into
 * out[PASS_MAX + 1].  0, or -1 (too long, empty, NUL, read error). */
static int
read_line(int fd, char *out)
{
	size_t n = 0;
	char c;

	for (;;) {
		ssize_t r = read(fd, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0 || c == '\n')
			break;
		if (n >= PASS_MAX || c == '\0') {
			explicit_bzero(out, PASS_MAX + 1);
			/* Drain the rest of the line so nothing is left on a tty. */
			while (read(fd, &c, 1) == 1 && c != '\n')
				;
			return -1;
		}
		out[n++] = c;
	}
	if (n > 0 && out[n - 1] == '\r')
		n--;
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

/* Prompt on the terminal and read without echo. */
static int
read_noecho(const char *prompt, char *out)
{
	struct termios old, quiet;
	int rc;

	/* Echo off first, prompt second: the flush discards only what was
	 * typed before the prompt, never an answer typed right after it. */
	if (tcgetattr(0, &old) < 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	if (tcsetattr(0, TCSAFLUSH, &quiet) < 0)
		return -1;
	fputs(prompt, stderr);
	fflush(stderr);
	rc = read_line(0, out);
	if (tcsetattr(0, TCSADRAIN, &old) < 0)
		rc = -1;
	fputc('\n', stderr);
	return rc;
}

static int
get_password(char *pass)
{
	char again[PASS_MAX + 1];
	int rc;

	if (!isatty(0)) {
		if (read_line(0, pass) < 0) {
			fprintf(stderr, "ternctl: passwd: expected one line of 1 to %d bytes on stdin\n", PASS_MAX);
			return -1;
		}
		return 0;
	}
	if (read_noecho("New password: ", pass) < 0 || read_noecho("Retype new password: ", again) < 0) {
		fprintf(stderr, "ternctl: passwd: no password read (1 to %d bytes)\n", PASS_MAX);
		rc = -1;
	} else if (strcmp(pass, again) != 0) {
		fprintf(stderr, "ternctl: passwd: the passwords do not match\n");
		rc = -1;
	} else {
		rc = 0;
	}
	explicit_bzero(again, sizeof(again));
	return rc;
}

/* The crypt(3) hash of pass into out[outsize]. */
static int
hash_password(const char *pass, char *out, size_t outsize)
{
	static struct crypt_data cd;
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	const char *prefixes[] = { "$y$", "$6$" };
	int rc = -1;

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]) && rc < 0; i++) {
		char *h;

		if (crypt_gensalt_rn(prefixes[i], 0, NULL, 0, salt, sizeof(salt)) == NULL)
			continue;
		memset(&cd, 0, sizeof(cd));
		h = crypt_r(pass, salt, &cd);
		if (h != NULL && h[0] != '*' && strlen(h) < outsize) {
			memcpy(out, h, strlen(h) + 1);
			rc = 0;
		}
		explicit_bzero(&cd, sizeof(cd));
	}
	return rc;
}

/* The user name may not break a "key value" table line. */
static int
user_ok(const char *u)
{
	size_t n = strlen(u);

	if (n == 0 || n > SASL_FIELD_MAX || u[0] == '#')
		return 0;
	for (; *u; u++)
		if ((unsigned char)*u <= ' ' || *u == 0x7f)
			return 0;
	return 1;
}

/* Does this table line define user (first word, case-insensitive)? */
static int
line_is_user(const char *line, size_t len, const char *user)
{
	size_t ul = strlen(user), w = 0;

	while (w < len && line[w] != ' ' && line[w] != '\t')
		w++;
	return w == ul && strncasecmp(line, user, ul) == 0;
}

/* Rewrite path with "user hash" replacing user's line (or appended). */
static int
rewrite_table(const char *path, const char *user, const char *hash, mode_t mode, gid_t gid, int chgrp)
{
	struct linereader lr;
	struct buf line, tmp;
	enum lr_ending ending;
	enum lr_result r;
	int in, out, replaced = 0, rc = -1;
	unsigned long long total = 0;

	buf_init(&tmp, 8192);
	if (buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0) {
		fprintf(stderr, "ternctl: %s: path too long\n", path);
		buf_free(&tmp);
		return -1;
	}
	out = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (out < 0) {
		fprintf(stderr, "ternctl: %s: %s\n", tmp.data, strerror(errno));
		buf_free(&tmp);
		return -1;
	}
	buf_init(&line, TABLE_LINE_MAX);
	in = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0 && errno != ENOENT) {
		fprintf(stderr, "ternctl: %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (in >= 0) {
		lr_init_fd(&lr, in, TABLE_LINE_MAX, 0, -1);
		while ((r = lr_getline(&lr, &line, &ending)) == LR_LINE) {
			const char *text = line.data;
			size_t len = line.len;

			if ((total += len + 1) > TABLE_MAX)
				break;
			if (line_is_user(text, len, user)) {
				if (replaced++)
					continue; /* a duplicate would fail the compile: drop it */
				text = NULL;
			}
			if (text == NULL ? (dprintf(out, "%s %s\n", user, hash) < 0)
					 : (write_all(out, text, len) < 0 || write_all(out, "\n", 1) < 0)) {
				fprintf(stderr, "ternctl: %s: %s\n", tmp.data, strerror(errno));
				lr_free(&lr);
				goto out;
			}
		}
		lr_free(&lr);
		close(in);
		/* NOLINTNEXTLINE(clang-analyzer-deadcode.DeadStores): closed: -1 keeps the descriptor state explicit for the error path */
		in = -1;
		if (r != LR_EOF) {
			fprintf(stderr, "ternctl: %s: %s\n", path,
				r == LR_TOOLONG ? "line too long" : total > TABLE_MAX ? "file too large" : strerror(errno));
			goto out;
		}
	}
	if (!replaced && dprintf(out, "%s %s\n", user, hash) < 0) {
		fprintf(stderr, "ternctl: %s: %s\n", tmp.data, strerror(errno));
		goto out;
	}
	if ((chgrp && fchown(out, (uid_t)-1, gid) < 0) || fchmod(out, mode) < 0 || fsync(out) < 0) {
		fprintf(stderr, "ternctl: %s: %s\n", tmp.data, strerror(errno));
		goto out;
	}
	if (close(out) < 0) {
		out = -1;
		fprintf(stderr, "ternctl: %s: %s\n", tmp.data, strerror(errno));
		goto out;
	}
	out = -1;
	if (rename(tmp.data, path) < 0 || fsync_parent_dir(path) < 0) {
		fprintf(stderr, "ternctl: %s: %s\n", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (out >= 0)
		close(out);
	if (rc < 0)
		(void)unlink(tmp.data);
	buf_free(&line);
	buf_free(&tmp);
	return rc;
}

int
ctl_passwd(int argc, char **argv)
{
	char pass[PASS_MAX + 1], hash[512], err[1024];
	const char *table = cf.smtpd_sasl_password_maps;
	struct buf cdb;
	uid_t uid;
	gid_t gid = 0;
	int chgrp = 0, rc;

	if (argc != 2)
		return 64;
	if (!user_ok(argv[1])) {
		fprintf(stderr, "ternctl: passwd: bad user name (1 to %d printable bytes, no spaces)\n", SASL_FIELD_MAX);
		return 1;
	}
	if (table == NULL || table[0] == '\0') {
		fprintf(stderr, "ternctl: passwd: smtpd_sasl_password_maps is not set\n");
		return 1;
	}
	if (geteuid() == 0 && privs_lookup_user(cf.mail_owner, &uid, &gid) == 0)
		chgrp = 1;
	if (get_password(pass) < 0) {
		explicit_bzero(pass, sizeof(pass));
		return 1;
	}
	rc = hash_password(pass, hash, sizeof(hash));
	explicit_bzero(pass, sizeof(pass));
	if (rc < 0) {
		fprintf(stderr, "ternctl: passwd: crypt(3) cannot hash\n");
		return 1;
	}
	if (rewrite_table(table, argv[1], hash, chgrp ? 0640 : 0600, gid, chgrp) < 0)
		return 1;
	buf_init(&cdb, 8192);
	if (buf_printf(&cdb, "%s.cdb", table) < 0 || cdbmap_compile(table, cdb.data, err, sizeof(err)) < 0) {
		fprintf(stderr, "ternctl: %s\n", cdb.len ? err : "path too long");
		buf_free(&cdb);
		return 1;
	}
	if (chgrp && chown(cdb.data, (uid_t)-1, gid) < 0) {
		fprintf(stderr, "ternctl: %s: %s\n", cdb.data, strerror(errno));
		buf_free(&cdb);
		return 1;
	}
	printf("%s: password set for %s\n", table, argv[1]);
	buf_free(&cdb);
	return 0;
}
