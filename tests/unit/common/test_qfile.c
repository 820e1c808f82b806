/*
 * test_qfile — the queue file: durable write protocol, strict reader,
 * in-place recipient state.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qfile.h"
#include "proto_deliver.h"

static char qdir[256];

static void setup(void)
{
	strcpy(qdir, "/tmp/tern-qfile-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(qdir));
	ck_assert_int_eq(qf_make_dirs(qdir), 0);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *path)
{
	ck_assert_int_eq(nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static void teardown(void)
{
	rm_tree(qdir);
}

static int count_entries(const char *sub)
{
	char path[512];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", qdir, sub);
	d = opendir(path);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void make_env(struct qf_envelope *e)
{
	qf_envelope_init(e);
	e->arrival = 1700000000;
	e->flags = DELIVER_F_8BITMIME;
	qf_set(&e->sender, "alice@example.com");
	qf_set(&e->client, "helo.example (host.example [192.0.2.1])");
	qf_set(&e->envid, "ENV-1");
	qf_envelope_add_rcpt(e, "bob@example.net", NULL, 0);
	qf_envelope_add_rcpt(e, "\"a b\"@example.org", "rfc822;a+20b@example.org", NOTIFY_FAILURE);
}

static int open_queued(const char *sub, const char *qid, int flags)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s/%s", qdir, sub, qid);
	return open(path, flags);
}

static const char body[] = "Subject: hi\n\nline one\n.leading dot kept as data\n";

static void write_message(struct qf_envelope *e)
{
	struct qf_writer w;

	make_env(e);
	ck_assert_int_eq(qfw_begin(&w, qdir, e), 0);
	qfw_write(&w, body, 10);
	qfw_write(&w, body + 10, sizeof(body) - 1 - 10);
	ck_assert_int_eq(qfw_commit(&w), 0);
}

START_TEST(commit_round_trip)
{
	struct qf_envelope e, r;
	char err[256] = "", content[256];
	int fd;

	write_message(&e);
	ck_assert(queueid_valid(e.qid));
	ck_assert_int_eq(count_entries(QDIR_TMP), 0);
	ck_assert_int_eq(count_entries(QDIR_INCOMING), 1);
	fd = open_queued(QDIR_INCOMING, e.qid, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_msg(qf_read(fd, &r, err, sizeof(err)) == 0, "qf_read: %s", err);
	ck_assert_str_eq(r.qid, e.qid);
	ck_assert_int_eq(r.arrival, 1700000000);
	ck_assert_uint_eq(r.flags, DELIVER_F_8BITMIME);
	ck_assert_str_eq(r.sender, "alice@example.com");
	ck_assert_str_eq(r.envid, "ENV-1");
	ck_assert_str_eq(r.client, "helo.example (host.example [192.0.2.1])");
	ck_assert_uint_eq(r.nrcpt, 2);
	ck_assert_str_eq(r.rcpt[0].address, "bob@example.net");
	ck_assert_ptr_null(r.rcpt[0].orcpt);
	ck_assert_str_eq(r.rcpt[1].address, "\"a b\"@example.org");
	ck_assert_str_eq(r.rcpt[1].orcpt, "rfc822;a+20b@example.org");
	ck_assert_uint_eq(r.rcpt[1].notify, NOTIFY_FAILURE);
	ck_assert_int_eq(r.rcpt[0].state, QF_PENDING);
	ck_assert_uint_eq(r.content_len, sizeof(body) - 1);
	ck_assert_int_eq(pread(fd, content, r.content_len, (off_t)r.content_off), (ssize_t)r.content_len);
	ck_assert_int_eq(memcmp(content, body, r.content_len), 0);
	qf_envelope_free(&r);
	qf_envelope_free(&e);
	close(fd);
}
END_TEST

START_TEST(mark_persists)
{
	struct qf_envelope e, r;
	char err[256];
	int fd;

	write_message(&e);
	fd = open_queued(QDIR_INCOMING, e.qid, O_RDWR);
	ck_assert_int_eq(qf_read(fd, &r, err, sizeof(err)), 0);
	ck_assert_int_eq(qf_mark(fd, &r.rcpt[1], QF_DELIVERED), 0);
	qf_envelope_free(&r);
	ck_assert_int_eq(qf_read(fd, &r, err, sizeof(err)), 0);
	ck_assert_int_eq(r.rcpt[0].state, QF_PENDING);
	ck_assert_int_eq(r.rcpt[1].state, QF_DELIVERED);
	ck_assert_int_eq(qf_mark(fd, &r.rcpt[0], QF_BOUNCED), 0);
	qf_envelope_free(&r);
	ck_assert_int_eq(qf_read(fd, &r, err, sizeof(err)), 0);
	ck_assert_int_eq(r.rcpt[0].state, QF_BOUNCED);
	qf_envelope_free(&r);
	qf_envelope_free(&e);
	close(fd);
}
END_TEST

START_TEST(abort_leaves_nothing)
{
	struct qf_envelope e;
	struct qf_writer w;

	make_env(&e);
	ck_assert_int_eq(qfw_begin(&w, qdir, &e), 0);
	qfw_write(&w, body, sizeof(body) - 1);
	ck_assert_int_eq(count_entries(QDIR_TMP), 1);
	qfw_abort(&w);
	ck_assert_int_eq(count_entries(QDIR_TMP), 0);
	ck_assert_int_eq(count_entries(QDIR_INCOMING), 0);
	qf_envelope_free(&e);
}
END_TEST

START_TEST(writer_refuses_control_chars)
{
	struct qf_envelope e;
	struct qf_writer w;

	make_env(&e);
	qf_set(&e.sender, "a\nX-Injected: yes@example.com");
	ck_assert_int_eq(qfw_begin(&w, qdir, &e), -1);
	ck_assert_int_eq(count_entries(QDIR_TMP), 0);
	qf_envelope_free(&e);

	make_env(&e);
	qf_set(&e.rcpt[0].address, "bob\r@example.net");
	ck_assert_int_eq(qfw_begin(&w, qdir, &e), -1);
	qf_envelope_free(&e);

	qf_envelope_init(&e); /* no recipients */
	ck_assert_int_eq(qfw_begin(&w, qdir, &e), -1);
	qf_envelope_free(&e);
}
END_TEST

START_TEST(commit_fails_without_incoming)
{
	struct qf_envelope e;
	struct qf_writer w;
	char path[512];

	make_env(&e);
	ck_assert_int_eq(qfw_begin(&w, qdir, &e), 0);
	qfw_write(&w, body, sizeof(body) - 1);
	snprintf(path, sizeof(path), "%s/%s", qdir, QDIR_INCOMING);
	ck_assert_int_eq(rmdir(path), 0);
	/* The writer holds the directory open; rename into a removed
	 * directory fails and the message must not survive anywhere. */
	ck_assert_int_eq(qfw_commit(&w), -1);
	ck_assert_int_eq(count_entries(QDIR_TMP), 0);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	qf_envelope_free(&e);
}
END_TEST

/* Write raw bytes as a queue file and return qf_read's result. */
static int read_raw(const char *text, size_t n, char *err, size_t errsize)
{
	char path[512];
	struct qf_envelope r;
	int fd, rc;

	snprintf(path, sizeof(path), "%s/active/raw", qdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
	rc = qf_read(fd, &r, err, errsize);
	if (rc == 0)
		qf_envelope_free(&r);
	close(fd);
	return rc;
}

#define HEAD "V 1\nQ 6553F10000000000ABCD\nT 1700000000\n"
#define TAIL_OK "F 0\nN \nC \nS a@b\nR P 0 - c@d\nE\n"

START_TEST(reader_rejects_corruption)
{
	char good[512], err[256];
	size_t hl;
	int n;

	/* A valid file first, so each corruption below is the only fault. */
	n = snprintf(good, sizeof(good), HEAD "Z %020d %020d\n" TAIL_OK "xyz", 0, 0);
	hl = (size_t)n - 3;
	n = snprintf(good, sizeof(good), HEAD "Z %020zu %020d\n" TAIL_OK "xyz", hl, 3);
	ck_assert_msg(read_raw(good, (size_t)n, err, sizeof(err)) == 0, "%s", err);

	/* truncated: content shorter than the size record says */
	ck_assert_int_eq(read_raw(good, (size_t)n - 1, err, sizeof(err)), -1);
	/* truncated inside the envelope */
	ck_assert_int_eq(read_raw(good, 40, err, sizeof(err)), -1);
	/* bad version */
	{
		char bad[512];
		memcpy(bad, good, (size_t)n);
		bad[2] = '2';
		ck_assert_int_eq(read_raw(bad, (size_t)n, err, sizeof(err)), -1);
	}
	/* bad state byte */
	{
		char bad[512];
		char *p;
		memcpy(bad, good, (size_t)n);
		bad[n] = 0;
		p = strstr(bad, "R P");
		p[2] = 'Q';
		ck_assert_int_eq(read_raw(bad, (size_t)n, err, sizeof(err)), -1);
	}
	/* NUL inside a field */
	{
		char bad[512];
		char *p;
		memcpy(bad, good, (size_t)n);
		bad[n] = 0;
		p = strstr(bad, "S a@b");
		p[3] = 0;
		ck_assert_int_eq(read_raw(bad, (size_t)n, err, sizeof(err)), -1);
	}
	/* an unknown record in the recipient list */
	{
		char bad[512];
		char *p;
		memcpy(bad, good, (size_t)n);
		bad[n] = 0;
		p = strstr(bad, "R P");
		p[0] = 'X';
		ck_assert_int_eq(read_raw(bad, (size_t)n, err, sizeof(err)), -1);
	}
	/* empty file, garbage */
	ck_assert_int_eq(read_raw("", 0, err, sizeof(err)), -1);
	ck_assert_int_eq(read_raw("\n\n\n", 3, err, sizeof(err)), -1);
}
END_TEST

/* A CR or LF inside any field (the envelope's and the trailer's) makes the
 * file unreadable, never a shorter field followed by a record made of the
 * field's tail (Exim CVE-2020-28015: newlines injected into the spool). */
START_TEST(reader_rejects_line_breaks_in_fields)
{
	/* Each: a record, the character in it that is replaced. */
	static const struct {
		const char *rec;
		size_t at;
	} spots[] = {
		{ "N e1x", 4 },		 /* ENVID */
		{ "C h.x", 3 },		 /* client */
		{ "S a@b", 3 },		 /* sender */
		{ "R P 0 o;x c@d", 7 },	 /* ORCPT */
		{ "R P 0 o;x c@d", 11 }, /* recipient */
		{ "W 1 0 why not", 7 },	 /* retry reason (trailer) */
		{ "A P 0 - 0 k@l", 11 }, /* expansion result (trailer) */
	};
	static const char brk[] = { '\n', '\r' };
	char good[512], bad[512], err[256];
	const char *tail = "F 0\nN e1x\nC h.x\nS a@b\nR P 0 o;x c@d\nE\n";
	const char *trailer = "A P 0 - 0 k@l\nW 1 0 why not\n";
	size_t i, j, hl;
	int n;
	char *p;

	n = snprintf(good, sizeof(good), HEAD "Z %020d %020d\n%sxyz%s", 0, 0, tail, trailer);
	hl = (size_t)n - 3 - strlen(trailer);
	n = snprintf(good, sizeof(good), HEAD "Z %020zu %020d\n%sxyz%s", hl, 3, tail, trailer);
	ck_assert_msg(read_raw(good, (size_t)n, err, sizeof(err)) == 0, "%s", err);
	for (i = 0; i < sizeof(spots) / sizeof(spots[0]); i++)
		for (j = 0; j < sizeof(brk); j++) {
			memcpy(bad, good, (size_t)n + 1);
			p = strstr(bad, spots[i].rec);
			ck_assert_ptr_nonnull(p);
			p[spots[i].at] = brk[j];
			ck_assert_msg(read_raw(bad, (size_t)n, err, sizeof(err)) == -1,
				      "accepted %s with %s at %zu", spots[i].rec, j ? "CR" : "LF",
				      spots[i].at);
		}
}
END_TEST

/* Expansion results appended after the content (A records) survive a
 * re-read with their parent, state and ORCPT; marks on them persist. */
START_TEST(trailer_children_round_trip)
{
	static const char *const kids[] = { "k1@example.net", "k2@example.net" };
	struct qf_envelope e, r;
	char err[256] = "", content[256];
	int fd;

	write_message(&e);
	fd = open_queued(QDIR_INCOMING, e.qid, O_RDWR);
	ck_assert_int_eq(qf_read(fd, &r, err, sizeof(err)), 0);
	ck_assert_int_eq(qf_add_children(fd, &r, 0, kids, 2, "rfc822;bob@example.net"), 0);
	ck_assert_uint_eq(r.nrcpt, 4);
	ck_assert_int_eq(qf_mark(fd, &r.rcpt[0], QF_EXPANDED), 0);
	ck_assert_int_eq(qf_mark(fd, &r.rcpt[3], QF_SUCCESS), 0);
	ck_assert_int_eq(qf_set_retry(fd, &r, 3, 1, "connect to x: refused\r"), 0);
	qf_envelope_free(&r);

	ck_assert_msg(qf_read(fd, &r, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(r.nrcpt, 4);
	ck_assert_int_eq(r.rcpt[0].state, QF_EXPANDED);
	ck_assert_int_eq(r.rcpt[0].parent, -1);
	ck_assert_str_eq(r.rcpt[2].address, "k1@example.net");
	ck_assert_int_eq(r.rcpt[2].parent, 0);
	ck_assert_int_eq(r.rcpt[2].state, QF_PENDING);
	ck_assert_str_eq(r.rcpt[2].orcpt, "rfc822;bob@example.net");
	ck_assert_int_eq(r.rcpt[3].state, QF_SUCCESS);
	ck_assert_uint_eq(r.attempts, 3);
	ck_assert_int_eq(r.warned, 1);
	ck_assert_str_eq(r.reason, "connect to x: refused?");
	/* The content is untouched by the trailer. */
	ck_assert_int_eq(pread(fd, content, r.content_len, (off_t)r.content_off), (ssize_t)r.content_len);
	ck_assert_int_eq(memcmp(content, body, r.content_len), 0);
	/* The last W record counts. */
	ck_assert_int_eq(qf_set_retry(fd, &r, 4, 1, NULL), 0);
	qf_envelope_free(&r);
	ck_assert_int_eq(qf_read(fd, &r, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.attempts, 4);
	qf_envelope_free(&r);
	qf_envelope_free(&e);
	close(fd);
}
END_TEST

/* A crash in the middle of an append leaves a line without LF: the reader
 * ignores it, and the next append overwrites it. */
START_TEST(trailer_interrupted_append)
{
	static const char *const kid[] = { "k@example.net" };
	struct qf_envelope e, r;
	struct stat st;
	char err[256] = "";
	int fd;

	write_message(&e);
	fd = open_queued(QDIR_INCOMING, e.qid, O_RDWR);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(pwrite(fd, "A P 0 - 0 half", 14, st.st_size), 14);
	ck_assert_msg(qf_read(fd, &r, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(r.nrcpt, 2);
	ck_assert_uint_eq(r.trailer_end, (unsigned long long)st.st_size);
	ck_assert_int_eq(qf_add_children(fd, &r, 1, kid, 1, NULL), 0);
	qf_envelope_free(&r);
	ck_assert_msg(qf_read(fd, &r, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(r.nrcpt, 3);
	ck_assert_str_eq(r.rcpt[2].address, "k@example.net");
	ck_assert_int_eq(r.rcpt[2].parent, 1);
	ck_assert_ptr_null(r.rcpt[2].orcpt);
	qf_envelope_free(&r);
	qf_envelope_free(&e);
	close(fd);
}
END_TEST

/* Complete but bad trailer records make the file corrupt. */
START_TEST(trailer_rejects_bad_records)
{
	static const char *const bad[] = { "A P 0 - 7 x@y\n", /* parent not an earlier recipient */
					   "A Z 0 - 0 x@y\n", /* bad state */
					   "W x 1\n", "W 1 2\n", "Q what\n", "A P 0 - 0\n" };
	struct qf_envelope e, r;
	struct stat st;
	char err[256] = "";
	size_t i;
	int fd;

	write_message(&e);
	fd = open_queued(QDIR_INCOMING, e.qid, O_RDWR);
	ck_assert_int_eq(fstat(fd, &st), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(ftruncate(fd, st.st_size), 0);
		ck_assert_int_eq(pwrite(fd, bad[i], strlen(bad[i]), st.st_size), (ssize_t)strlen(bad[i]));
		ck_assert_msg(qf_read(fd, &r, err, sizeof(err)) == -1, "accepted trailer %s", bad[i]);
	}
	qf_envelope_free(&e);
	close(fd);
}
END_TEST

/* A file of the given content at qdir/sub/name; returns its inode. */
static ino_t put_file(const char *sub, const char *name, const char *content)
{
	char path[512];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/%s/%s", qdir, sub, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	ck_assert_int_eq(fstat(fd, &st), 0);
	close(fd);
	return st.st_ino;
}

static int sub_fd(const char *sub)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", qdir, sub);
	return open(path, O_RDONLY | O_DIRECTORY);
}

static off_t size_of(const char *sub, const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s/%s", qdir, sub, name);
	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_size;
}

/* The message qid in incoming/ was written into the recycled inode ino:
 * mode 0600, body whole, the file cut to the message's own length. */
static void check_reused(const char *qid, ino_t ino)
{
	struct qf_envelope r;
	char err[256] = "";
	struct stat st;
	int fd = open_queued(QDIR_INCOMING, qid, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_uint_eq(st.st_ino, ino);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	ck_assert_msg(qf_read(fd, &r, err, sizeof(err)) == 0, "qf_read: %s", err);
	ck_assert_uint_eq(r.content_len, sizeof(body) - 1);
	ck_assert_int_eq(st.st_size, (off_t)(r.content_off + r.content_len));
	qf_envelope_free(&r);
	close(fd);
}

/* A finished file goes to recycle/ (a small one with its blocks), and the
 * next message is written into that very inode (no inode freed or
 * allocated), cut to its own length at the commit. */
START_TEST(recycle_reuses_inode)
{
	struct qf_envelope e;
	char old[3001];
	int afd = sub_fd(QDIR_ACTIVE), tfd = sub_fd(QDIR_TMP), rfd = sub_fd(QDIR_RECYCLE), count = 0;
	ino_t ino;

	memset(old, 'x', sizeof(old) - 1);
	old[sizeof(old) - 1] = '\0';
	ino = put_file(QDIR_ACTIVE, "6B0C00000000000000A1", old);
	ck_assert_int_eq(qf_recycle(afd, "6B0C00000000000000A1", -1, tfd, rfd, &count), 0);
	ck_assert_int_eq(count, 1);
	ck_assert_int_eq(count_entries(QDIR_ACTIVE), 0);
	ck_assert_int_eq(count_entries(QDIR_TMP), 0);
	ck_assert_int_eq(count_entries(QDIR_RECYCLE), 1);
	ck_assert_int_eq(size_of(QDIR_RECYCLE, "6B0C00000000000000A1"), (off_t)strlen(old));

	write_message(&e);
	ck_assert_int_eq(count_entries(QDIR_RECYCLE), 0);
	ck_assert_int_eq(count_entries(QDIR_TMP), 0);
	check_reused(e.qid, ino);
	qf_envelope_free(&e);
	close(afd);
	close(tfd);
	close(rfd);
}
END_TEST

/* A recycled file shorter than the next message grows to exactly that
 * message: nothing of the old bytes is left and the length is right. */
START_TEST(recycle_shorter_file_grows)
{
	struct qf_envelope e;
	int afd = sub_fd(QDIR_ACTIVE), tfd = sub_fd(QDIR_TMP), rfd = sub_fd(QDIR_RECYCLE), count = 0;
	ino_t ino;

	ino = put_file(QDIR_ACTIVE, "6B0C00000000000000A2", "short");
	ck_assert_int_eq(qf_recycle(afd, "6B0C00000000000000A2", -1, tfd, rfd, &count), 0);
	write_message(&e);
	check_reused(e.qid, ino);
	qf_envelope_free(&e);
	close(afd);
	close(tfd);
	close(rfd);
}
END_TEST

/* A file in recycle/ that another writer holds (its lock) is left alone:
 * the next message goes into a new file and the held one is untouched. */
START_TEST(recycle_claim_skips_locked_file)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	struct qf_envelope e;
	char path[512], got[64] = "";
	struct stat st;
	int held, fd;
	ino_t ino;

	ino = put_file(QDIR_RECYCLE, "6B0C00000000000000E1", "being written\n");
	snprintf(path, sizeof(path), "%s/%s/6B0C00000000000000E1", qdir, QDIR_RECYCLE);
	held = open(path, O_RDWR);
	ck_assert_int_ge(held, 0);
	ck_assert_int_eq(fcntl(held, F_OFD_SETLK, &fl), 0);

	write_message(&e);
	fd = open_queued(QDIR_INCOMING, e.qid, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_uint_ne(st.st_ino, ino);
	close(fd);
	ck_assert_int_eq(count_entries(QDIR_RECYCLE), 1);
	ck_assert_int_eq(pread(held, got, sizeof(got) - 1, 0), (ssize_t)strlen("being written\n"));
	ck_assert_str_eq(got, "being written\n");
	qf_envelope_free(&e);

	/* Released, it is claimed by the next message. */
	close(held);
	write_message(&e);
	fd = open_queued(QDIR_INCOMING, e.qid, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_uint_eq(st.st_ino, ino);
	close(fd);
	ck_assert_int_eq(count_entries(QDIR_RECYCLE), 0);
	qf_envelope_free(&e);
}
END_TEST

/* A writer that opened a recycled file just before another writer claimed
 * and committed it must not take it once the lock is free: by then the
 * file is a queued message (its name in recycle/ is gone). */
START_TEST(recycle_claim_after_commit_refused)
{
	struct qf_envelope e, r;
	char path[512], err[256] = "";
	struct stat st;
	int rfd = sub_fd(QDIR_RECYCLE), late, fd;
	off_t len = -1;
	ino_t ino;

	ino = put_file(QDIR_RECYCLE, "6B0C00000000000000F1", "old bytes\n");
	snprintf(path, sizeof(path), "%s/%s/6B0C00000000000000F1", qdir, QDIR_RECYCLE);
	late = open(path, O_WRONLY);
	ck_assert_int_ge(late, 0);
	write_message(&e); /* claims and commits that very file */
	fd = open_queued(QDIR_INCOMING, e.qid, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_uint_eq(st.st_ino, ino);
	ck_assert_int_eq(qf_claim_opened(rfd, "6B0C00000000000000F1", late, &len), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(len, -1);
	ck_assert_msg(qf_read(fd, &r, err, sizeof(err)) == 0, "qf_read: %s", err);
	qf_envelope_free(&r);
	close(fd);
	close(late);
	qf_envelope_free(&e);

	/* One still in recycle/ and free is claimed, its length told. */
	put_file(QDIR_RECYCLE, "6B0C00000000000000F2", "twelve bytes");
	snprintf(path, sizeof(path), "%s/%s/6B0C00000000000000F2", qdir, QDIR_RECYCLE);
	late = open(path, O_WRONLY);
	ck_assert_int_ge(late, 0);
	ck_assert_int_eq(qf_claim_opened(rfd, "6B0C00000000000000F2", late, &len), 0);
	ck_assert_int_eq(len, 12);
	close(late);
	close(rfd);
}
END_TEST

/* Writers in several processes claiming from one recycle/ at once: every
 * message is committed, each into a file of its own, and reads back whole
 * (a file claimed twice would show one writer's bytes in another's
 * message).  Lengths vary so that files are both cut and grown. */
#define RACE_WRITERS 4
#define RACE_MESSAGES 60
#define RACE_RECYCLED 48

static size_t race_len(int writer, int i)
{
	return 40 + (size_t)((writer * 977 + i * 389) % 6000);
}

static void race_writer(int writer)
{
	static char content[8192];
	int i, failed = 0;

	for (i = 0; i < RACE_MESSAGES; i++) {
		struct qf_envelope e;
		struct qf_writer w;
		size_t len = race_len(writer, i);
		int head = snprintf(content, sizeof(content), "w=%d i=%d len=%zu\n", writer, i, len);

		memset(content + head, 'a' + writer, len - (size_t)head);
		make_env(&e);
		if (qfw_begin(&w, qdir, &e) < 0) {
			failed = 1;
		} else {
			qfw_write(&w, content, len);
			if (qfw_commit(&w) < 0)
				failed = 1;
		}
		qf_envelope_free(&e);
	}
	_exit(failed);
}

START_TEST(recycle_concurrent_writers)
{
	static char content[8192];
	unsigned char seen[RACE_WRITERS][RACE_MESSAGES];
	ino_t inodes[RACE_WRITERS * RACE_MESSAGES];
	int afd = sub_fd(QDIR_ACTIVE), tfd = sub_fd(QDIR_TMP), rfd = sub_fd(QDIR_RECYCLE), count = 0, i, j, n = 0;
	pid_t pids[RACE_WRITERS];
	char path[512], name[32];
	DIR *d;
	struct dirent *de;

	memset(content, 'o', 3000);
	content[3000] = '\0';
	for (i = 0; i < RACE_RECYCLED; i++) {
		snprintf(name, sizeof(name), "6B0C000000000000%04d", i);
		put_file(QDIR_ACTIVE, name, content + (i * 61) % 3000);
		ck_assert_int_eq(qf_recycle(afd, name, -1, tfd, rfd, &count), 0);
	}
	ck_assert_int_eq(count_entries(QDIR_RECYCLE), RACE_RECYCLED);
	for (i = 0; i < RACE_WRITERS; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0)
			race_writer(i);
	}
	for (i = 0; i < RACE_WRITERS; i++) {
		int status;

		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed a message", i);
	}

	memset(seen, 0, sizeof(seen));
	snprintf(path, sizeof(path), "%s/%s", qdir, QDIR_INCOMING);
	d = opendir(path);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		struct qf_envelope r;
		char err[256] = "";
		struct stat st;
		int fd, w, k, head;
		size_t len;

		if (de->d_name[0] == '.')
			continue;
		ck_assert_uint_lt(strlen(de->d_name), sizeof(name));
		memcpy(name, de->d_name, strlen(de->d_name) + 1);
		fd = open_queued(QDIR_INCOMING, name, O_RDONLY);
		ck_assert_int_ge(fd, 0);
		ck_assert_msg(qf_read(fd, &r, err, sizeof(err)) == 0, "%s: qf_read: %s", name, err);
		ck_assert_uint_le(r.content_len, sizeof(content));
		ck_assert_int_eq(pread(fd, content, r.content_len, (off_t)r.content_off), (ssize_t)r.content_len);
		ck_assert_int_eq(sscanf(content, "w=%d i=%d len=%zu\n%n", &w, &k, &len, &head), 3);
		ck_assert(w >= 0 && w < RACE_WRITERS && k >= 0 && k < RACE_MESSAGES);
		ck_assert_uint_eq(len, race_len(w, k));
		ck_assert_uint_eq(r.content_len, len);
		for (j = head; j < (int)len; j++)
			ck_assert_msg(content[j] == 'a' + w, "%s: byte %d is '%c', writer %d wrote '%c'", name, j,
				      content[j], w, 'a' + w);
		ck_assert_int_eq(fstat(fd, &st), 0);
		ck_assert_int_eq(st.st_size, (off_t)(r.content_off + r.content_len));
		ck_assert_int_eq(seen[w][k], 0);
		seen[w][k] = 1;
		for (j = 0; j < n; j++)
			ck_assert_uint_ne(inodes[j], st.st_ino);
		ck_assert_int_lt(n, RACE_WRITERS * RACE_MESSAGES);
		inodes[n++] = st.st_ino;
		qf_envelope_free(&r);
		close(fd);
	}
	closedir(d);
	ck_assert_int_eq(n, RACE_WRITERS * RACE_MESSAGES);
	close(afd);
	close(tfd);
	close(rfd);
}
END_TEST

/* A file with a second name is never emptied: not by the queue manager
 * (it is unlinked instead), not by a writer that finds one in recycle/. */
START_TEST(recycle_never_truncates_a_linked_file)
{
	struct qf_envelope e;
	char a[512], b[512], got[64] = "";
	struct stat st;
	int afd = sub_fd(QDIR_ACTIVE), tfd = sub_fd(QDIR_TMP), rfd = sub_fd(QDIR_RECYCLE), fd, count = 0;
	ino_t ino;

	put_file(QDIR_ACTIVE, "6B0C00000000000000B1", "precious one\n");
	snprintf(a, sizeof(a), "%s/%s/6B0C00000000000000B1", qdir, QDIR_ACTIVE);
	snprintf(b, sizeof(b), "%s/keep1", qdir);
	ck_assert_int_eq(link(a, b), 0);
	ck_assert_int_eq(qf_recycle(afd, "6B0C00000000000000B1", -1, tfd, rfd, &count), 0);
	ck_assert_int_eq(count_entries(QDIR_ACTIVE), 0);
	ck_assert_int_eq(count_entries(QDIR_RECYCLE), 0);
	ck_assert_int_eq(stat(b, &st), 0);
	ck_assert_int_eq(st.st_size, (off_t)strlen("precious one\n"));

	ino = put_file(QDIR_RECYCLE, "6B0C00000000000000B2", "precious two\n");
	snprintf(a, sizeof(a), "%s/%s/6B0C00000000000000B2", qdir, QDIR_RECYCLE);
	snprintf(b, sizeof(b), "%s/keep2", qdir);
	ck_assert_int_eq(link(a, b), 0);
	write_message(&e);
	ck_assert_int_eq(count_entries(QDIR_RECYCLE), 0);
	ck_assert_int_eq(count_entries(QDIR_TMP), 0);
	fd = open(b, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, got, sizeof(got) - 1), (ssize_t)strlen("precious two\n"));
	ck_assert_str_eq(got, "precious two\n");
	close(fd);
	fd = open_queued(QDIR_INCOMING, e.qid, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_uint_ne(st.st_ino, ino);
	close(fd);
	qf_envelope_free(&e);
	close(afd);
	close(tfd);
	close(rfd);
}
END_TEST

/* A finished file larger than QF_RECYCLE_KEEP is emptied before it is
 * offered: recycle/ holds inodes, not big mail. */
START_TEST(recycle_empties_large)
{
	int afd = sub_fd(QDIR_ACTIVE), tfd = sub_fd(QDIR_TMP), rfd = sub_fd(QDIR_RECYCLE), count = 0;
	char *big = malloc(QF_RECYCLE_KEEP + 2);

	ck_assert_ptr_nonnull(big);
	memset(big, 'y', QF_RECYCLE_KEEP + 1);
	big[QF_RECYCLE_KEEP + 1] = '\0';
	put_file(QDIR_ACTIVE, "6B0C00000000000000D1", big);
	free(big);
	ck_assert_int_eq(qf_recycle(afd, "6B0C00000000000000D1", -1, tfd, rfd, &count), 0);
	ck_assert_int_eq(count_entries(QDIR_RECYCLE), 1);
	ck_assert_int_eq(size_of(QDIR_RECYCLE, "6B0C00000000000000D1"), 0);
	close(afd);
	close(tfd);
	close(rfd);
}
END_TEST

/* recycle/ is bounded: at QF_RECYCLE_MAX a finished file is removed. */
START_TEST(recycle_bounded)
{
	int afd = sub_fd(QDIR_ACTIVE), tfd = sub_fd(QDIR_TMP), rfd = sub_fd(QDIR_RECYCLE), count = QF_RECYCLE_MAX;

	put_file(QDIR_ACTIVE, "6B0C00000000000000C1", "x\n");
	ck_assert_int_eq(qf_recycle(afd, "6B0C00000000000000C1", -1, tfd, rfd, &count), 0);
	ck_assert_int_eq(count, QF_RECYCLE_MAX);
	ck_assert_int_eq(count_entries(QDIR_ACTIVE), 0);
	ck_assert_int_eq(count_entries(QDIR_RECYCLE), 0);
	close(afd);
	close(tfd);
	close(rfd);
}
END_TEST

static Suite *qfile_suite(void)
{
	Suite *s = suite_create("qfile");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, commit_round_trip);
	tcase_add_test(tc, mark_persists);
	tcase_add_test(tc, abort_leaves_nothing);
	tcase_add_test(tc, writer_refuses_control_chars);
	tcase_add_test(tc, commit_fails_without_incoming);
	tcase_add_test(tc, reader_rejects_corruption);
	tcase_add_test(tc, reader_rejects_line_breaks_in_fields);
	tcase_add_test(tc, trailer_children_round_trip);
	tcase_add_test(tc, trailer_interrupted_append);
	tcase_add_test(tc, trailer_rejects_bad_records);
	tcase_add_test(tc, recycle_reuses_inode);
	tcase_add_test(tc, recycle_shorter_file_grows);
	tcase_add_test(tc, recycle_claim_skips_locked_file);
	tcase_add_test(tc, recycle_claim_after_commit_refused);
	tcase_add_test(tc, recycle_concurrent_writers);
	tcase_add_test(tc, recycle_never_truncates_a_linked_file);
	tcase_add_test(tc, recycle_empties_large);
	tcase_add_test(tc, recycle_bounded);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(qfile_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
