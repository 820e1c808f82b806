/*
 * Unit tests for common/scoreboard.c: address normalisation (IPv4 as
 * v4-mapped IPv6), slot hand-out and reuse, counting across several
 * mappings of one region, the master clearing the slot of a child killed
 * with SIGKILL, the size seals, attach refusing foreign or corrupt regions,
 * and concurrent enter/count/leave from several processes (no count above
 * the number of writers, never below one for a writer's own client).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scoreboard.h"

static void v4(const char *text, unsigned char out[SB_ADDR_LEN])
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	ck_assert_int_eq(inet_pton(AF_INET, text, &sin.sin_addr), 1);
	ck_assert_int_eq(sb_addr((struct sockaddr *)&sin, sizeof(sin), out), 0);
}

static void v6(const char *text, unsigned char out[SB_ADDR_LEN])
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	ck_assert_int_eq(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1);
	ck_assert_int_eq(sb_addr((struct sockaddr *)&sin6, sizeof(sin6), out), 0);
}

static struct scoreboard *create(unsigned n)
{
	char err[256] = "";
	struct scoreboard *sb = sb_create(n, err, sizeof(err));

	ck_assert_msg(sb != NULL, "sb_create(%u): %s", n, err);
	return sb;
}

static struct scoreboard *attach(const struct scoreboard *master, unsigned slot)
{
	char err[256] = "";
	struct scoreboard *sb = sb_attach(sb_fd(master), slot, err, sizeof(err));

	ck_assert_msg(sb != NULL, "sb_attach(slot %u): %s", slot, err);
	return sb;
}

START_TEST(test_addr_forms)
{
	unsigned char a[SB_ADDR_LEN], b[SB_ADDR_LEN];
	struct sockaddr_un sun;
	struct sockaddr_in sin;

	v4("192.0.2.7", a);
	v6("::ffff:192.0.2.7", b);
	ck_assert_mem_eq(a, b, SB_ADDR_LEN);
	v4("192.0.2.8", b);
	ck_assert_int_ne(memcmp(a, b, SB_ADDR_LEN), 0);
	v6("2001:db8::1", a);
	ck_assert_int_eq(a[0], 0x20);
	ck_assert_int_eq(a[15], 1);
	/* Other families and short lengths are not addresses. */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert_int_eq(sb_addr((struct sockaddr *)&sun, sizeof(sun), a), -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	ck_assert_int_eq(sb_addr((struct sockaddr *)&sin, 4, a), -1);
	ck_assert_int_eq(sb_addr(NULL, 0, a), -1);
}
END_TEST

START_TEST(test_create_bounds)
{
	char err[256] = "";

	ck_assert_ptr_null(sb_create(0, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "slot count"));
	ck_assert_ptr_null(sb_create(SB_SLOTS_MAX + 1, err, sizeof(err)));
	sb_free(NULL);
}
END_TEST

START_TEST(test_slots_lowest_free)
{
	struct scoreboard *sb = create(3);

	ck_assert_int_eq(sb_slot_take(sb), 0);
	ck_assert_int_eq(sb_slot_take(sb), 1);
	ck_assert_int_eq(sb_slot_take(sb), 2);
	ck_assert_int_eq(sb_slot_take(sb), -1);
	sb_slot_release(sb, 1);
	ck_assert_int_eq(sb_slot_take(sb), 1);
	sb_slot_release(sb, 2);
	sb_slot_release(sb, 0);
	ck_assert_int_eq(sb_slot_take(sb), 0);
	sb_free(sb);
}
END_TEST

START_TEST(test_count_across_mappings)
{
	struct scoreboard *sb = create(8), *c[4];
	unsigned char a[SB_ADDR_LEN], b[SB_ADDR_LEN];
	int i;

	v4("198.51.100.1", a);
	v6("2001:db8::2", b);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(sb_slot_take(sb), i);
		c[i] = attach(sb, (unsigned)i);
	}
	ck_assert_uint_eq(sb_count(sb, a), 0);
	sb_enter(c[0], a);
	sb_enter(c[1], a);
	sb_enter(c[2], b);
	sb_enter(c[3], a);
	/* Every mapping, the master's too, sees the same table. */
	for (i = 0; i < 4; i++) {
		ck_assert_uint_eq(sb_count(c[i], a), 3);
		ck_assert_uint_eq(sb_count(c[i], b), 1);
	}
	ck_assert_uint_eq(sb_count(sb, a), 3);
	sb_leave(c[1]);
	ck_assert_uint_eq(sb_count(c[0], a), 2);
	/* A slot is reused for the next session of the same child. */
	sb_enter(c[1], b);
	ck_assert_uint_eq(sb_count(c[0], a), 2);
	ck_assert_uint_eq(sb_count(c[0], b), 2);
	sb_leave(c[1]);
	sb_leave(c[1]); /* twice is harmless */
	ck_assert_uint_eq(sb_count(c[0], b), 1);
	for (i = 0; i < 4; i++)
		sb_free(c[i]);
	sb_free(sb);
}
END_TEST

/* The master clears the slot of a child it reaps; a slot handed out again
 * starts empty; after a burst children look at fewer slots. */
START_TEST(test_release_clears)
{
	struct scoreboard *sb = create(8), *c;
	unsigned char a[SB_ADDR_LEN];
	int i;

	v4("203.0.113.9", a);
	for (i = 0; i < 6; i++)
		ck_assert_int_eq(sb_slot_take(sb), i);
	c = attach(sb, 5);
	sb_enter(c, a);
	ck_assert_uint_eq(sb_count(sb, a), 1);
	sb_slot_release(sb, 5); /* the child died in its session */
	ck_assert_uint_eq(sb_count(sb, a), 0);
	ck_assert_int_eq(sb_slot_take(sb), 5);
	ck_assert_uint_eq(sb_count(sb, a), 0);
	sb_enter(c, a);
	for (i = 0; i < 5; i++)
		sb_slot_release(sb, i);
	ck_assert_uint_eq(sb_count(c, a), 1); /* the highest slot still counts */
	sb_free(c);
	sb_free(sb);
}
END_TEST

START_TEST(test_kill9_child)
{
	struct scoreboard *sb = create(4);
	unsigned char a[SB_ADDR_LEN];
	int slot, p[2], status;
	char c;
	pid_t pid;

	v4("192.0.2.33", a);
	slot = sb_slot_take(sb);
	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char err[256];
		struct scoreboard *me = sb_attach(sb_fd(sb), (unsigned)slot, err, sizeof(err));

		if (me == NULL)
			_exit(2);
		sb_enter(me, a);
		if (write(p[1], "x", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	close(p[0]);
	ck_assert_uint_eq(sb_count(sb, a), 1);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status));
	/* Still counted: nobody cleared it yet ... */
	ck_assert_uint_eq(sb_count(sb, a), 1);
	/* ... until the master reaps the child. */
	sb_slot_release(sb, slot);
	ck_assert_uint_eq(sb_count(sb, a), 0);
	sb_free(sb);
}
END_TEST

START_TEST(test_sealed)
{
	struct scoreboard *sb = create(4);

	ck_assert_int_eq(ftruncate(sb_fd(sb), 0), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(ftruncate(sb_fd(sb), 1 << 20), -1);
	sb_free(sb);
}
END_TEST

START_TEST(test_attach_refuses)
{
	struct scoreboard *sb = create(4);
	char err[256] = "";
	int fd;

	ck_assert_ptr_null(sb_attach(sb_fd(sb), 4, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "out of range"));
	ck_assert_ptr_null(sb_attach(-1, 0, err, sizeof(err)));
	/* Not a regular file. */
	fd = dup(0);
	ck_assert_int_ge(fd, 0);
	ck_assert_ptr_null(sb_attach(fd, 0, err, sizeof(err)));
	close(fd);
	/* The right size but no header. */
	fd = memfd_create("not-a-scoreboard", MFD_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 64 + 4 * 32), 0);
	ck_assert_ptr_null(sb_attach(fd, 0, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "bad header"));
	/* Too small for even one slot. */
	ck_assert_int_eq(ftruncate(fd, 16), 0);
	ck_assert_ptr_null(sb_attach(fd, 0, err, sizeof(err)));
	close(fd);
	sb_free(sb);
}
END_TEST

/* A sibling that scribbles over the shared header cannot make a child read
 * past its mapping. */
START_TEST(test_hostile_header)
{
	struct scoreboard *sb = create(4), *c;
	unsigned char a[SB_ADDR_LEN];
	uint32_t *hdr;

	v4("192.0.2.1", a);
	ck_assert_int_eq(sb_slot_take(sb), 0);
	c = attach(sb, 0);
	sb_enter(c, a);
	hdr = mmap(NULL, 64, PROT_READ | PROT_WRITE, MAP_SHARED, sb_fd(sb), 0);
	ck_assert(hdr != MAP_FAILED);
	hdr[3] = 0xffffffffU; /* "high" */
	ck_assert_uint_eq(sb_count(c, a), 1);
	munmap(hdr, 64);
	sb_free(c);
	sb_free(sb);
}
END_TEST

/* Writers in several processes enter, count and leave one client over and
 * over: a count never exceeds the writers nor misses the counter's own
 * slot, and the table is empty at the end. */
#define RACERS 6
#define ROUNDS 3000
START_TEST(test_concurrent)
{
	struct scoreboard *sb = create(RACERS);
	unsigned char a[SB_ADDR_LEN];
	pid_t pids[RACERS];
	int i, status;

	v6("2001:db8::77", a);
	for (i = 0; i < RACERS; i++) {
		int slot = sb_slot_take(sb);

		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			char err[256];
			struct scoreboard *me = sb_attach(sb_fd(sb), (unsigned)slot, err, sizeof(err));
			int r;

			if (me == NULL)
				_exit(2);
			for (r = 0; r < ROUNDS; r++) {
				unsigned n;

				sb_enter(me, a);
				n = sb_count(me, a);
				if (n < 1 || n > RACERS)
					_exit(3);
				sb_leave(me);
			}
			_exit(0);
		}
	}
	for (i = 0; i < RACERS; i++) {
		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "racer %d: status 0x%x", i, status);
	}
	ck_assert_uint_eq(sb_count(sb, a), 0);
	sb_free(sb);
}
END_TEST

static Suite *scoreboard_suite(void)
{
	Suite *s = suite_create("scoreboard");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_addr_forms);
	tcase_add_test(tc, test_create_bounds);
	tcase_add_test(tc, test_slots_lowest_free);
	tcase_add_test(tc, test_count_across_mappings);
	tcase_add_test(tc, test_release_clears);
	tcase_add_test(tc, test_kill9_child);
	tcase_add_test(tc, test_sealed);
	tcase_add_test(tc, test_attach_refuses);
	tcase_add_test(tc, test_hostile_header);
	tcase_add_test(tc, test_concurrent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(scoreboard_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
