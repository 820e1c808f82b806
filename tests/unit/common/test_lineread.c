/*
 * Unit tests for common/lineread.c: line endings, NUL and CR as data,
 * overlong lines (resync and split), raw reads, pending bytes, the fd
 * reader's timeout and EINTR handling, and 10 MB hostile lines through both
 * a socketpair and a one-byte-at-a-time injected source.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "lineread.h"

/* An in-memory source that returns at most chunk bytes per call. */
struct memsrc {
	const char *data;
	size_t len, pos, chunk;
	int fail_errno; /* when set, fail with this errno once the data is used up */
	size_t calls;
};

static ssize_t mem_read(void *ctx, void *p, size_t n)
{
	struct memsrc *m = ctx;
	size_t left = m->len - m->pos;

	m->calls++;
	if (left == 0) {
		if (m->fail_errno) {
			errno = m->fail_errno;
			return -1;
		}
		return 0;
	}
	if (n > m->chunk)
		n = m->chunk;
	if (n > left)
		n = left;
	memcpy(p, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

/* A generated source: total bytes of fill, then a tail string; chunk bytes per call. */
struct gensrc {
	size_t total, pos, chunk;
	char fill;
	const char *tail;
	size_t tailpos;
};

static ssize_t gen_read(void *ctx, void *p, size_t n)
{
	struct gensrc *g = ctx;
	char *out = p;
	size_t k = 0;

	if (n > g->chunk)
		n = g->chunk;
	while (k < n && g->pos < g->total) {
		out[k++] = g->fill;
		g->pos++;
	}
	while (k < n && g->tail[g->tailpos] != '\0')
		out[k++] = g->tail[g->tailpos++];
	return (ssize_t)k;
}

static void mem_init(struct memsrc *m, const char *data, size_t len, size_t chunk)
{
	memset(m, 0, sizeof(*m));
	m->data = data;
	m->len = len;
	m->chunk = chunk;
}

/* Expect one line with the given bytes and ending. */
static void expect_line(struct linereader *lr, struct buf *line, const char *want, size_t wantlen,
			enum lr_ending wend)
{
	enum lr_ending end = (enum lr_ending) - 1;
	enum lr_result r = lr_getline(lr, line, &end);

	ck_assert_int_eq(r, LR_LINE);
	ck_assert_uint_eq(line->len, wantlen);
	ck_assert(memcmp(line->data, want, wantlen) == 0);
	ck_assert_int_eq(line->data[line->len], '\0');
	ck_assert_int_eq(end, wend);
}

#define EXPECT(lr, line, s, e) expect_line(lr, line, s, sizeof(s) - 1, e)

static void expect_result(struct linereader *lr, struct buf *line, enum lr_result want)
{
	enum lr_ending end;

	ck_assert_int_eq(lr_getline(lr, line, &end), want);
}

/* Run the same input with chunk sizes 1 and large: framing must not depend on read boundaries. */
static const size_t chunks[] = { 1, 2, 3, 7, 4096 };
#define NCHUNKS (sizeof(chunks) / sizeof(chunks[0]))

START_TEST(test_endings)
{
	static const char in[] = "crlf\r\nbare lf\ncr\rinside\r\n\r\n\nlast no eol";

	for (size_t c = 0; c < NCHUNKS; c++) {
		struct memsrc m;
		struct linereader lr;
		struct buf line;

		mem_init(&m, in, sizeof(in) - 1, chunks[c]);
		lr_init(&lr, mem_read, &m, 64, 0);
		buf_init(&line, 64);
		EXPECT(&lr, &line, "crlf", LR_END_CRLF);
		EXPECT(&lr, &line, "bare lf", LR_END_LF);
		EXPECT(&lr, &line, "cr\rinside", LR_END_CRLF);
		EXPECT(&lr, &line, "", LR_END_CRLF);
		EXPECT(&lr, &line, "", LR_END_LF);
		EXPECT(&lr, &line, "last no eol", LR_END_NONE);
		expect_result(&lr, &line, LR_EOF);
		expect_result(&lr, &line, LR_EOF);
		lr_free(&lr);
		buf_free(&line);
	}
}
END_TEST

START_TEST(test_cr_at_eof_and_nul)
{
	static const char in[] = "a\0b\r\n\0\n\rx\r";

	for (size_t c = 0; c < NCHUNKS; c++) {
		struct memsrc m;
		struct linereader lr;
		struct buf line;

		mem_init(&m, in, sizeof(in) - 1, chunks[c]);
		lr_init(&lr, mem_read, &m, 64, 0);
		buf_init(&line, 64);
		EXPECT(&lr, &line, "a\0b", LR_END_CRLF);
		EXPECT(&lr, &line, "\0", LR_END_LF);
		/* A CR not followed by LF is data, including a trailing one at EOF. */
		EXPECT(&lr, &line, "\rx\r", LR_END_NONE);
		expect_result(&lr, &line, LR_EOF);
		lr_free(&lr);
		buf_free(&line);
	}
}
END_TEST

/* The SMTP-smuggling separators must reach the caller distinguishable from CRLF.CRLF. */
START_TEST(test_smuggling_variants)
{
	static const char in[] = "x\n.\ny\r.\r\nz\r\n.\r\n";

	for (size_t c = 0; c < NCHUNKS; c++) {
		struct memsrc m;
		struct linereader lr;
		struct buf line;

		mem_init(&m, in, sizeof(in) - 1, chunks[c]);
		lr_init(&lr, mem_read, &m, 64, 0);
		buf_init(&line, 64);
		EXPECT(&lr, &line, "x", LR_END_LF);
		EXPECT(&lr, &line, ".", LR_END_LF);
		EXPECT(&lr, &line, "y\r.", LR_END_CRLF);
		EXPECT(&lr, &line, "z", LR_END_CRLF);
		EXPECT(&lr, &line, ".", LR_END_CRLF);
		expect_result(&lr, &line, LR_EOF);
		lr_free(&lr);
		buf_free(&line);
	}
}
END_TEST

START_TEST(test_max_boundary)
{
	/* max = 4: exactly 4 bytes with CRLF or LF fit; 5 do not; resync afterwards. */
	static const char in[] = "abcd\r\nabcd\nabcde\r\nok\nabcd\rX\nabcde\n12345678901234567890\r\nend\r\n";

	for (size_t c = 0; c < NCHUNKS; c++) {
		struct memsrc m;
		struct linereader lr;
		struct buf line;

		mem_init(&m, in, sizeof(in) - 1, chunks[c]);
		lr_init(&lr, mem_read, &m, 4, 0);
		buf_init(&line, 4);
		EXPECT(&lr, &line, "abcd", LR_END_CRLF);
		EXPECT(&lr, &line, "abcd", LR_END_LF);
		expect_result(&lr, &line, LR_TOOLONG);
		EXPECT(&lr, &line, "ok", LR_END_LF);
		expect_result(&lr, &line, LR_TOOLONG); /* "abcd\rX": the CR is data, 6 bytes */
		expect_result(&lr, &line, LR_TOOLONG);
		expect_result(&lr, &line, LR_TOOLONG);
		EXPECT(&lr, &line, "end", LR_END_CRLF);
		expect_result(&lr, &line, LR_EOF);
		lr_free(&lr);
		buf_free(&line);
	}
}
END_TEST

START_TEST(test_toolong_at_eof)
{
	static const char in[] = "ok\r\nabcdefgh";
	static const char in2[] = "abcd\r"; /* 5 bytes of data at EOF: overlong */

	for (size_t c = 0; c < NCHUNKS; c++) {
		struct memsrc m;
		struct linereader lr;
		struct buf line;

		mem_init(&m, in, sizeof(in) - 1, chunks[c]);
		lr_init(&lr, mem_read, &m, 4, 0);
		buf_init(&line, 4);
		EXPECT(&lr, &line, "ok", LR_END_CRLF);
		expect_result(&lr, &line, LR_TOOLONG);
		expect_result(&lr, &line, LR_EOF);
		lr_free(&lr);

		mem_init(&m, in2, sizeof(in2) - 1, chunks[c]);
		lr_init(&lr, mem_read, &m, 4, 0);
		expect_result(&lr, &line, LR_TOOLONG);
		expect_result(&lr, &line, LR_EOF);
		lr_free(&lr);
		buf_free(&line);
	}
}
END_TEST

START_TEST(test_split)
{
	static const char in[] = "abcdefghij\r\nabcd\r\nabcdefgh\nab\r\rcd\r\nxyz\r";

	for (size_t c = 0; c < NCHUNKS; c++) {
		struct memsrc m;
		struct linereader lr;
		struct buf line;

		mem_init(&m, in, sizeof(in) - 1, chunks[c]);
		lr_init(&lr, mem_read, &m, 4, LR_SPLIT);
		buf_init(&line, 4);
		EXPECT(&lr, &line, "abcd", LR_END_NONE);
		EXPECT(&lr, &line, "efgh", LR_END_NONE);
		EXPECT(&lr, &line, "ij", LR_END_CRLF);
		/* Exactly max bytes: one piece carrying the real ending, no empty tail. */
		EXPECT(&lr, &line, "abcd", LR_END_CRLF);
		EXPECT(&lr, &line, "abcd", LR_END_NONE);
		EXPECT(&lr, &line, "efgh", LR_END_LF);
		EXPECT(&lr, &line, "ab\r\r", LR_END_NONE);
		EXPECT(&lr, &line, "cd", LR_END_CRLF);
		EXPECT(&lr, &line, "xyz\r", LR_END_NONE);
		expect_result(&lr, &line, LR_EOF);
		lr_free(&lr);
		buf_free(&line);
	}
}
END_TEST

START_TEST(test_set_max_and_flags)
{
	static const char in[] = "0123456789\r\n0123456789\r\n0123456789\r\n";
	struct memsrc m;
	struct linereader lr;
	struct buf line;

	mem_init(&m, in, sizeof(in) - 1, 4096);
	lr_init(&lr, mem_read, &m, 100, 0);
	buf_init(&line, 100);
	lr_set_max(&lr, 5);
	expect_result(&lr, &line, LR_TOOLONG);
	lr_set_flags(&lr, LR_SPLIT);
	EXPECT(&lr, &line, "01234", LR_END_NONE);
	EXPECT(&lr, &line, "56789", LR_END_CRLF);
	lr_set_max(&lr, 100);
	lr_set_flags(&lr, 0);
	EXPECT(&lr, &line, "0123456789", LR_END_CRLF);
	expect_result(&lr, &line, LR_EOF);
	lr_free(&lr);
	buf_free(&line);
}
END_TEST

START_TEST(test_raw_read_and_pending)
{
	static const char in[] = "BDAT 5\r\nhelloQUIT\r\n";
	struct memsrc m;
	struct linereader lr;
	struct buf line;
	char raw[16];
	ssize_t n;

	mem_init(&m, in, sizeof(in) - 1, 4096);
	lr_init(&lr, mem_read, &m, 64, 0);
	buf_init(&line, 64);
	ck_assert_uint_eq(lr_pending(&lr), 0);
	EXPECT(&lr, &line, "BDAT 5", LR_END_CRLF);
	/* Everything arrived in one read: the rest is pending (a pipelining client). */
	ck_assert_uint_eq(lr_pending(&lr), 11);
	n = lr_read(&lr, raw, 5);
	ck_assert_int_eq(n, 5);
	ck_assert(memcmp(raw, "hello", 5) == 0);
	ck_assert_uint_eq(lr_pending(&lr), 6);
	EXPECT(&lr, &line, "QUIT", LR_END_CRLF);
	ck_assert_uint_eq(lr_pending(&lr), 0);
	ck_assert_int_eq(lr_read(&lr, raw, sizeof(raw)), 0);
	ck_assert_int_eq(lr_read(&lr, raw, 0), 0);
	expect_result(&lr, &line, LR_EOF);
	lr_free(&lr);
	buf_free(&line);
}
END_TEST

START_TEST(test_raw_read_unbuffered)
{
	static const char in[] = "0123456789";
	struct memsrc m;
	struct linereader lr;
	char raw[16];

	mem_init(&m, in, sizeof(in) - 1, 3);
	lr_init(&lr, mem_read, &m, 64, 0);
	/* Nothing buffered: lr_read goes straight to the source, short reads allowed. */
	ck_assert_int_eq(lr_read(&lr, raw, sizeof(raw)), 3);
	ck_assert(memcmp(raw, "012", 3) == 0);
	ck_assert_int_eq(lr_read(&lr, raw, 2), 2);
	ck_assert(memcmp(raw, "34", 2) == 0);
	ck_assert_uint_eq(lr_pending(&lr), 0);
	lr_free(&lr);
}
END_TEST

START_TEST(test_discard_pending)
{
	/* STARTTLS with a command smuggled behind it in the same packet. */
	static const char in[] = "STARTTLS\r\nMAIL FROM:<evil>\r\n";
	struct memsrc m;
	struct linereader lr;
	struct buf line;

	mem_init(&m, in, sizeof(in) - 1, 4096);
	lr_init(&lr, mem_read, &m, 64, 0);
	buf_init(&line, 64);
	EXPECT(&lr, &line, "STARTTLS", LR_END_CRLF);
	ck_assert_uint_gt(lr_pending(&lr), 0);
	lr_discard_pending(&lr);
	ck_assert_uint_eq(lr_pending(&lr), 0);
	expect_result(&lr, &line, LR_EOF);
	lr_free(&lr);
	buf_free(&line);
}
END_TEST

START_TEST(test_read_error)
{
	static const char in[] = "good\r\npartial";
	struct memsrc m;
	struct linereader lr;
	struct buf line;
	enum lr_ending end;

	mem_init(&m, in, sizeof(in) - 1, 4);
	m.fail_errno = EIO;
	lr_init(&lr, mem_read, &m, 64, 0);
	buf_init(&line, 64);
	EXPECT(&lr, &line, "good", LR_END_CRLF);
	errno = 0;
	ck_assert_int_eq(lr_getline(&lr, &line, &end), LR_ERROR);
	ck_assert_int_eq(errno, EIO);
	errno = 0;
	ck_assert_int_eq(lr_read(&lr, (char[4]){ 0 }, 4), 4); /* "part" still buffered */
	lr_free(&lr);
	buf_free(&line);
}
END_TEST

/* 10 MB without LF, one byte per read: bounded memory, then back in sync. */
START_TEST(test_huge_line_one_byte_reads)
{
	struct gensrc g = { .total = 10u << 20, .chunk = 1, .fill = 'A', .tail = "\r\nQUIT\r\n" };
	struct linereader lr;
	struct buf line;
	size_t bufsize;

	lr_init(&lr, gen_read, &g, 512, 0);
	buf_init(&line, 512);
	bufsize = lr.bufsize;
	expect_result(&lr, &line, LR_TOOLONG);
	ck_assert_uint_eq(lr.bufsize, bufsize);
	ck_assert_uint_le(line.cap, 513);
	EXPECT(&lr, &line, "QUIT", LR_END_CRLF);
	expect_result(&lr, &line, LR_EOF);
	lr_free(&lr);
	buf_free(&line);
}
END_TEST

/* The same in split mode: every piece at most max, all bytes accounted for. */
START_TEST(test_huge_line_split)
{
	struct gensrc g = { .total = 10u << 20, .chunk = 1000, .fill = 'B', .tail = "\r\n" };
	struct linereader lr;
	struct buf line;
	enum lr_ending end;
	size_t total = 0, pieces = 0;

	lr_init(&lr, gen_read, &g, 1000, LR_SPLIT);
	buf_init(&line, 1000);
	for (;;) {
		enum lr_result r = lr_getline(&lr, &line, &end);

		if (r == LR_EOF)
			break;
		ck_assert_int_eq(r, LR_LINE);
		ck_assert_uint_le(line.len, 1000);
		ck_assert(line.len == 0 || (line.data[0] == 'B' && line.data[line.len - 1] == 'B'));
		total += line.len;
		pieces++;
		if (end == LR_END_CRLF)
			break;
		ck_assert_int_eq(end, LR_END_NONE);
	}
	ck_assert_uint_eq(total, 10u << 20);
	ck_assert_uint_eq(pieces, ((10u << 20) + 999) / 1000);
	ck_assert_uint_le(line.cap, 1001);
	expect_result(&lr, &line, LR_EOF);
	lr_free(&lr);
	buf_free(&line);
}
END_TEST

/* Child: write n bytes of 'x' then tail to fd, then exit. */
static void writer_child(int fd, size_t n, const char *tail)
{
	char chunk[65536];

	memset(chunk, 'x', sizeof(chunk));
	while (n > 0) {
		size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
		ssize_t w = write(fd, chunk, k);

		if (w <= 0)
			_exit(2);
		n -= (size_t)w;
	}
	if (write(fd, tail, strlen(tail)) != (ssize_t)strlen(tail))
		_exit(2);
	_exit(0);
}

START_TEST(test_huge_line_socketpair)
{
	int sv[2], status;
	struct linereader lr;
	struct buf line;
	pid_t pid;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		writer_child(sv[1], 10u << 20, "\r\nHELO a\r\nHELO b\n");
	}
	close(sv[1]);
	lr_init_fd(&lr, sv[0], 512, 0, 5000);
	buf_init(&line, 512);
	expect_result(&lr, &line, LR_TOOLONG);
	EXPECT(&lr, &line, "HELO a", LR_END_CRLF);
	EXPECT(&lr, &line, "HELO b", LR_END_LF);
	expect_result(&lr, &line, LR_EOF);
	ck_assert_uint_le(line.cap, 513);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	lr_free(&lr);
	buf_free(&line);
	close(sv[0]);
}
END_TEST

START_TEST(test_fd_lines)
{
	static const char in[] = "EHLO x\r\nMAIL\nRC";
	int sv[2];
	struct linereader lr;
	struct buf line;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(write(sv[1], in, sizeof(in) - 1), (ssize_t)sizeof(in) - 1);
	lr_init_fd(&lr, sv[0], 64, 0, 2000);
	buf_init(&line, 64);
	EXPECT(&lr, &line, "EHLO x", LR_END_CRLF);
	EXPECT(&lr, &line, "MAIL", LR_END_LF);
	ck_assert_int_eq(write(sv[1], "PT\r\n", 4), 4);
	close(sv[1]);
	EXPECT(&lr, &line, "RCPT", LR_END_CRLF);
	expect_result(&lr, &line, LR_EOF);
	lr_free(&lr);
	buf_free(&line);
	close(sv[0]);
}
END_TEST

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

START_TEST(test_timeout)
{
	int sv[2];
	struct linereader lr;
	struct buf line;
	enum lr_ending end;
	struct timespec t0;
	long ms;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* A partial line then silence: a slowloris peer. */
	ck_assert_int_eq(write(sv[1], "HEL", 3), 3);
	lr_init_fd(&lr, sv[0], 64, 0, 200);
	buf_init(&line, 64);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	errno = 0;
	ck_assert_int_eq(lr_getline(&lr, &line, &end), LR_ERROR);
	ck_assert_int_eq(errno, ETIMEDOUT);
	ms = elapsed_ms(&t0);
	ck_assert_int_ge(ms, 180);
	ck_assert_int_lt(ms, 2000);
	lr_free(&lr);
	buf_free(&line);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

static void on_alarm(int sig)
{
	(void)sig;
}

/* Signals arriving during the wait neither abort it (EINTR) nor extend it. */
START_TEST(test_timeout_eintr)
{
	struct sigaction sa;
	struct itimerval it = { { 0, 20000 }, { 0, 20000 } };
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	int sv[2];
	struct linereader lr;
	struct buf line;
	enum lr_ending end;
	struct timespec t0;
	long ms;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = 0; /* no SA_RESTART: poll really sees EINTR */
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	lr_init_fd(&lr, sv[0], 64, 0, 300);
	buf_init(&line, 64);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
	errno = 0;
	ck_assert_int_eq(lr_getline(&lr, &line, &end), LR_ERROR);
	ck_assert_int_eq(errno, ETIMEDOUT);
	setitimer(ITIMER_REAL, &off, NULL);
	ms = elapsed_ms(&t0);
	ck_assert_int_ge(ms, 280);
	ck_assert_int_lt(ms, 2000);
	lr_free(&lr);
	buf_free(&line);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_pipe_no_timeout)
{
	int p[2];
	struct linereader lr;
	struct buf line;

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], "a\r\nb", 4), 4);
	close(p[1]);
	lr_init_fd(&lr, p[0], 8, 0, -1);
	buf_init(&line, 8);
	EXPECT(&lr, &line, "a", LR_END_CRLF);
	EXPECT(&lr, &line, "b", LR_END_NONE);
	expect_result(&lr, &line, LR_EOF);
	lr_free(&lr);
	buf_free(&line);
	close(p[0]);
}
END_TEST

/* A line buffer smaller than the reader's max is a caller bug: panic, not overflow. */
START_TEST(test_small_line_buffer_panics)
{
	static const char in[] = "0123456789\n";
	struct memsrc m;
	struct linereader lr;
	struct buf line;
	enum lr_ending end;

	mem_init(&m, in, sizeof(in) - 1, 4096);
	lr_init(&lr, mem_read, &m, 64, 0);
	buf_init(&line, 4);
	(void)lr_getline(&lr, &line, &end);
}
END_TEST

/* Raising max past the init value would overrun the fixed buffer: a bug, so panic. */
START_TEST(test_set_max_too_big_panics)
{
	struct memsrc m;
	struct linereader lr;

	mem_init(&m, "", 0, 1);
	lr_init(&lr, mem_read, &m, 64, LR_SPLIT);
	lr_set_max(&lr, 65 + 8192);
}
END_TEST

START_TEST(test_zero_max_panics)
{
	struct memsrc m;
	struct linereader lr;

	mem_init(&m, "", 0, 1);
	lr_init(&lr, mem_read, &m, 0, LR_SPLIT);
}
END_TEST

static Suite *lineread_suite(void)
{
	Suite *s = suite_create("lineread");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_endings);
	tcase_add_test(tc, test_cr_at_eof_and_nul);
	tcase_add_test(tc, test_smuggling_variants);
	tcase_add_test(tc, test_max_boundary);
	tcase_add_test(tc, test_toolong_at_eof);
	tcase_add_test(tc, test_split);
	tcase_add_test(tc, test_set_max_and_flags);
	tcase_add_test(tc, test_raw_read_and_pending);
	tcase_add_test(tc, test_raw_read_unbuffered);
	tcase_add_test(tc, test_discard_pending);
	tcase_add_test(tc, test_read_error);
	tcase_add_test(tc, test_huge_line_one_byte_reads);
	tcase_add_test(tc, test_huge_line_split);
	tcase_add_test(tc, test_huge_line_socketpair);
	tcase_add_test(tc, test_fd_lines);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_timeout_eintr);
	tcase_add_test(tc, test_pipe_no_timeout);
	tcase_add_test_raise_signal(tc, test_small_line_buffer_panics, SIGABRT);
	tcase_add_test_raise_signal(tc, test_set_max_too_big_panics, SIGABRT);
	tcase_add_test_raise_signal(tc, test_zero_max_panics, SIGABRT);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(lineread_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
