/*
 * Unit tests for local/: Maildir delivery in virtual/dev mode
 * (local_mailbox_base set) through local_deliver_request, the queue
 * manager's entry point.  Each test delivers into a fresh temporary base
 * directory and checks the file in new/ byte for byte (Return-Path and
 * Delivered-To first), that tmp/ is left empty, unique names, Delivered-To
 * loop detection (also folded and in odd case, but not in the body), bad
 * local parts, cleanup after a failed link, a queue file shorter than the
 * request, and the system-mode refusals that need no real user.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "../../../local/local.h"
#include "localrcpt.h"
#include "log.h"
#include "proto_deliver.h"
#include "testutil.h"

#define PREFIX "V 1\nQ TESTQ\nE\n" /* stands for the envelope before the content */

static char base[300];
static char work[256];

static void set_conf(const char *kv)
{
	char err[512];
	ck_assert_msg(conf_override(kv, err, sizeof(err)) == 0, "%s", err);
}


/* Running as root the agent writes virtual mailboxes as mail_owner:
 * use "nobody" and give it the test directory. */
static uid_t owner_uid;
static gid_t owner_gid;

static void own(const char *path)
{
	if (geteuid() == 0)
		ck_assert_int_eq(chown(path, owner_uid, owner_gid), 0);
}

static void setup(void)
{
	char kv[400];
	log_open("test_maildir", LOG_TO_STDERR);
	conf_defaults();
	snprintf(work, sizeof(work), "%s/tern-maildir.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(work));
	snprintf(base, sizeof(base), "%s/mail", work);
	snprintf(kv, sizeof(kv), "local_mailbox_base=%s", base);
	set_conf(kv);
	set_conf("myhostname=host.test");
	set_conf("recipient_delimiter=+");
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("nobody");
		ck_assert_ptr_nonnull(pw);
		owner_uid = pw->pw_uid;
		owner_gid = pw->pw_gid;
		set_conf("mail_owner=nobody");
		own(work);
	}
}

static void teardown(void)
{
	test_rm_rf(work);
}

/* A queue-file stand-in: PREFIX then the content; returns the open fd. */
static int message_fd(const char *content, size_t len)
{
	return test_message_fd(work, PREFIX, content, len);
}

static void request(struct deliver_request *r, const char *sender, size_t len)
{
	deliver_request_init(r);
	strcpy(r->queue_id, "TESTQ");
	strcpy(r->sender, sender);
	strcpy(r->nexthop, "local");
	r->offset = strlen(PREFIX);
	r->length = len;
	r->arrival = (long long)time(NULL);
}

/* Names of the files in dir (up to max), returned count. */
static size_t list_dir(const char *dir, char names[][256], size_t max)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	if (d == NULL)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n < max)
			snprintf(names[n], 256, "%s", e->d_name);
		n++;
	}
	closedir(d);
	return n;
}

static void maildir_of(const char *user, const char *sub, char *out, size_t size)
{
	snprintf(out, size, "%s/%s/Maildir/%s", base, user, sub);
}

START_TEST(test_basic_delivery)
{
	const char *content = "Received: from x\nSubject: hi\n\nbody line\n.dot line\n";
	int fd = message_fd(content, strlen(content));
	struct deliver_request r;
	request(&r, "bob@example.org", strlen(content));
	deliver_request_add(&r, 1, 0, "Alice+lists@Example.COM");
	local_deliver_request(&r, fd);

	ck_assert_int_eq(r.rcpt[0].status, DELIVER_OK);
	ck_assert_str_eq(r.rcpt[0].dsn, "2.0.0");
	ck_assert_str_eq(r.rcpt[0].text, "delivered to maildir");

	char dir[1024], names[4][256], path[2048];
	maildir_of("alice", "new", dir, sizeof(dir));
	ck_assert_uint_eq(list_dir(dir, names, 4), 1);
	snprintf(path, sizeof(path), "%s/%s", dir, names[0]);
	size_t len;
	char *got = test_slurp(path, &len);
	const char *want = "Return-Path: <bob@example.org>\nDelivered-To: Alice+lists@Example.COM\n"
			   "Received: from x\nSubject: hi\n\nbody line\n.dot line\n";
	ck_assert_uint_eq(len, strlen(want));
	ck_assert_str_eq(got, want);
	free(got);

	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq((int)st.st_nlink, 1);
	maildir_of("alice", "tmp", dir, sizeof(dir));
	ck_assert_uint_eq(list_dir(dir, names, 4), 0);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	maildir_of("alice", "cur", dir, sizeof(dir));
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));

	/* the name's shape: time.M<usec>P<pid>Q<n>.host */
	long long t;
	long us, pid;
	unsigned long q;
	char host[64];
	ck_assert_int_eq(sscanf(names[0], "%lld.M%ldP%ldQ%lu.%63s", &t, &us, &pid, &q, host), 5);
	ck_assert_int_gt(pid, 0); /* ours, or the delivery child's when root */
	ck_assert_str_eq(host, "host.test");
	deliver_request_free(&r);
	close(fd);
}
END_TEST

START_TEST(test_null_sender_and_unique_names)
{
	const char *content = "Subject: x\n\nbody\n";
	int fd = message_fd(content, strlen(content));
	struct deliver_request r;
	request(&r, "", strlen(content));
	deliver_request_add(&r, 1, 0, "carol@example.com");
	deliver_request_add(&r, 2, 0, "carol+a@example.com");
	deliver_request_add(&r, 3, 0, "CAROL@example.com");
	local_deliver_request(&r, fd);
	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(r.rcpt[i].status, DELIVER_OK);

	char dir[1024], names[8][256];
	maildir_of("carol", "new", dir, sizeof(dir));
	ck_assert_uint_eq(list_dir(dir, names, 8), 3);
	ck_assert_str_ne(names[0], names[1]);
	ck_assert_str_ne(names[1], names[2]);
	ck_assert_str_ne(names[0], names[2]);
	for (size_t i = 0; i < 3; i++) {
		char path[2048];
		size_t len;
		snprintf(path, sizeof(path), "%s/%.255s", dir, names[i]);
		char *got = test_slurp(path, &len);
		ck_assert(strncmp(got, "Return-Path: <>\nDelivered-To: ", 30) == 0);
		free(got);
	}

	char a[256], b[256];
	ck_assert_int_eq(maildir_unique_name(a, sizeof(a)), 0);
	ck_assert_int_eq(maildir_unique_name(b, sizeof(b)), 0);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(maildir_unique_name(a, 8), -1); /* does not fit: reported */
	deliver_request_free(&r);
	close(fd);
}
END_TEST

START_TEST(test_loop_detection)
{
	const char *content = "Received: from a\n"
			      "delivered-to:\n <DAVE@Example.com>\n"
			      "Delivered-To: erin@example.com\n"
			      "Subject: loop\n"
			      "\n"
			      "Delivered-To: frank@example.com\n";
	int fd = message_fd(content, strlen(content));
	struct deliver_request r;
	request(&r, "x@example.org", strlen(content));
	deliver_request_add(&r, 1, 0, "dave@example.com");
	deliver_request_add(&r, 2, 0, "erin@example.com");
	deliver_request_add(&r, 3, 0, "frank@example.com");
	deliver_request_add(&r, 4, 0, "erin+x@example.com");
	local_deliver_request(&r, fd);
	ck_assert_int_eq(r.rcpt[0].status, DELIVER_PERM);
	ck_assert_str_eq(r.rcpt[0].dsn, "5.4.6");
	ck_assert_ptr_nonnull(strstr(r.rcpt[0].text, "loop"));
	ck_assert_int_eq(r.rcpt[1].status, DELIVER_PERM);
	ck_assert_str_eq(r.rcpt[1].dsn, "5.4.6");
	ck_assert_int_eq(r.rcpt[2].status, DELIVER_OK); /* only in the body */
	ck_assert_int_eq(r.rcpt[3].status, DELIVER_OK); /* another address */

	char dir[1024], names[4][256];
	maildir_of("dave", "new", dir, sizeof(dir));
	ck_assert_uint_eq(list_dir(dir, names, 4), 0);

	/* A message delivered once comes back: the second delivery is a loop. */
	char path[2048];
	size_t len;
	maildir_of("frank", "new", dir, sizeof(dir));
	ck_assert_uint_eq(list_dir(dir, names, 4), 1);
	snprintf(path, sizeof(path), "%s/%s", dir, names[0]);
	char *again = test_slurp(path, &len);
	int fd2 = message_fd(again, len);
	struct deliver_request r2;
	request(&r2, "x@example.org", len);
	deliver_request_add(&r2, 1, 0, "frank@example.com");
	local_deliver_request(&r2, fd2);
	ck_assert_int_eq(r2.rcpt[0].status, DELIVER_PERM);
	ck_assert_str_eq(r2.rcpt[0].dsn, "5.4.6");
	free(again);
	deliver_request_free(&r2);
	deliver_request_free(&r);
	close(fd2);
	close(fd);
}
END_TEST

START_TEST(test_too_many_delivered_to)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	for (int i = 0; i < LOCAL_MAX_DELIVERED_TO + 1; i++)
		ck_assert_int_eq(buf_printf(&b, "Delivered-To: u%d@example.com\n", i), 0);
	ck_assert_int_eq(buf_puts(&b, "\nbody\n"), 0);
	int fd = message_fd(b.data, b.len);
	struct deliver_request r;
	request(&r, "x@example.org", b.len);
	deliver_request_add(&r, 1, 0, "gina@example.com");
	local_deliver_request(&r, fd);
	ck_assert_int_eq(r.rcpt[0].status, DELIVER_PERM);
	ck_assert_str_eq(r.rcpt[0].dsn, "5.4.6");
	deliver_request_free(&r);
	buf_free(&b);
	close(fd);
}
END_TEST

START_TEST(test_bad_local_parts)
{
	static const char *const bad[] = { "../etc@example.com", ".hidden@example.com", "a/b@example.com",
					   "@example.com", "\"a b\"@example.com", "..@example.com" };
	const char *content = "Subject: x\n\nbody\n";
	int fd = message_fd(content, strlen(content));
	struct deliver_request r;
	request(&r, "x@example.org", strlen(content));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		deliver_request_add(&r, (unsigned)i, 0, bad[i]);
	local_deliver_request(&r, fd);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(r.rcpt[i].status == DELIVER_PERM, "%s accepted", bad[i]);
		ck_assert_str_eq(r.rcpt[i].dsn, "5.1.1");
	}
	/* nothing was created: not even the base directory */
	struct stat st;
	ck_assert_int_eq(stat(base, &st), -1);
	char etc[512];
	snprintf(etc, sizeof(etc), "%s/etc", work);
	ck_assert_int_eq(stat(etc, &st), -1);

	ck_assert_int_eq(localrcpt_name_ok("alice"), 1);
	ck_assert_int_eq(localrcpt_name_ok(""), 0);
	ck_assert_int_eq(localrcpt_name_ok("a\\b"), 0);
	deliver_request_free(&r);
	close(fd);
}
END_TEST

START_TEST(test_failure_leaves_nothing)
{
	/* new/ is a file: the link fails after the tmp file was written. */
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s", base);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	own(dir);
	snprintf(dir, sizeof(dir), "%s/hank", base);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	own(dir);
	maildir_of("hank", "", dir, sizeof(dir));
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	own(dir);
	maildir_of("hank", "tmp", dir, sizeof(dir));
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	own(dir);
	maildir_of("hank", "new", dir, sizeof(dir));
	int nf = open(dir, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(nf, 0);
	close(nf);

	const char *content = "Subject: x\n\nbody\n";
	int fd = message_fd(content, strlen(content));
	struct deliver_request r;
	request(&r, "x@example.org", strlen(content));
	deliver_request_add(&r, 1, 0, "hank@example.com");
	local_deliver_request(&r, fd);
	ck_assert_int_eq(r.rcpt[0].status, DELIVER_TEMP);
	ck_assert_str_eq(r.rcpt[0].dsn, "4.3.0");
	char names[4][256];
	maildir_of("hank", "tmp", dir, sizeof(dir));
	ck_assert_uint_eq(list_dir(dir, names, 4), 0);
	deliver_request_free(&r);
	close(fd);
}
END_TEST

START_TEST(test_short_queue_file)
{
	const char *content = "Subject: x\n\nbody\n";
	int fd = message_fd(content, strlen(content));
	struct deliver_request r;
	request(&r, "x@example.org", strlen(content) + 100);
	deliver_request_add(&r, 1, 0, "ivan@example.com");
	local_deliver_request(&r, fd);
	ck_assert_int_eq(r.rcpt[0].status, DELIVER_TEMP);
	ck_assert_str_eq(r.rcpt[0].dsn, "4.3.0");
	struct stat st;
	ck_assert_int_eq(stat(base, &st), -1);
	deliver_request_free(&r);
	close(fd);
}
END_TEST

START_TEST(test_large_message_streamed)
{
	/* ~1 MB with an overlong header line and no final newline. */
	size_t len = 1000000;
	char *content = malloc(len);
	ck_assert_ptr_nonnull(content);
	memcpy(content, "X-Long: ", 8);
	for (size_t i = 8; i < 20000; i++)
		content[i] = 'a';
	content[20000] = '\n';
	content[20001] = '\n';
	for (size_t i = 20002; i < len; i++)
		content[i] = (i % 77 == 0) ? '\n' : (char)('0' + i % 10);
	int fd = message_fd(content, len);
	struct deliver_request r;
	request(&r, "x@example.org", len);
	deliver_request_add(&r, 1, 0, "judy@example.com");
	local_deliver_request(&r, fd);
	ck_assert_int_eq(r.rcpt[0].status, DELIVER_OK);

	char dir[1024], names[2][256], path[2048];
	maildir_of("judy", "new", dir, sizeof(dir));
	ck_assert_uint_eq(list_dir(dir, names, 2), 1);
	snprintf(path, sizeof(path), "%s/%s", dir, names[0]);
	size_t got_len;
	char *got = test_slurp(path, &got_len);
	const char *hdr = "Return-Path: <x@example.org>\nDelivered-To: judy@example.com\n";
	ck_assert_uint_eq(got_len, strlen(hdr) + len);
	ck_assert(memcmp(got, hdr, strlen(hdr)) == 0);
	ck_assert(memcmp(got + strlen(hdr), content, len) == 0);
	free(got);
	free(content);
	deliver_request_free(&r);
	close(fd);
}
END_TEST

START_TEST(test_system_mode_refusals)
{
	set_conf("local_mailbox_base=");
	const char *content = "Subject: x\n\nbody\n";
	int fd = message_fd(content, strlen(content));
	struct deliver_request r;
	request(&r, "x@example.org", strlen(content));
	deliver_request_add(&r, 1, 0, "no-such-user-tern-test@example.com");
	deliver_request_add(&r, 2, 0, "root@example.com");
	local_deliver_request(&r, fd);
	ck_assert_int_eq(r.rcpt[0].status, DELIVER_PERM);
	ck_assert_str_eq(r.rcpt[0].dsn, "5.1.1");
	ck_assert_ptr_nonnull(strstr(r.rcpt[0].text, "user unknown"));
	ck_assert_int_eq(r.rcpt[1].status, DELIVER_TEMP);
	ck_assert_str_eq(r.rcpt[1].dsn, "4.7.0");
	deliver_request_free(&r);

	if (geteuid() != 0) {
		/* Not root: another user cannot be delivered to; our own user with
		 * an mbox home_mailbox is not available yet (nothing is written). */
		struct passwd *me = getpwuid(geteuid());
		ck_assert_ptr_nonnull(me);
		char addr[300];
		snprintf(addr, sizeof(addr), "%s@example.com", me->pw_name);
		set_conf("home_mailbox=Mailbox");
		request(&r, "x@example.org", strlen(content));
		deliver_request_add(&r, 1, 0, addr);
		struct passwd *other = getpwnam("daemon");
		if (other && other->pw_uid != geteuid())
			deliver_request_add(&r, 2, 0, "daemon@example.com");
		local_deliver_request(&r, fd);
		ck_assert_int_eq(r.rcpt[0].status, DELIVER_TEMP);
		ck_assert_str_eq(r.rcpt[0].dsn, "4.3.5");
		if (r.nrcpt > 1) {
			ck_assert_int_eq(r.rcpt[1].status, DELIVER_TEMP);
			ck_assert_str_eq(r.rcpt[1].dsn, "4.3.0");
		}
		deliver_request_free(&r);
	}
	close(fd);
}
END_TEST

/* Development mode started as root: mail_owner is root and the agent writes
 * the configured base as itself. */
START_TEST(test_root_dev_mode)
{
	if (geteuid() != 0)
		return;
	set_conf("mail_owner=root");
	const char *content = "Subject: x\n\nbody\n";
	int fd = message_fd(content, strlen(content));
	struct deliver_request r;
	request(&r, "x@example.org", strlen(content));
	deliver_request_add(&r, 1, 0, "kate@example.com");
	local_deliver_request(&r, fd);
	ck_assert_int_eq(r.rcpt[0].status, DELIVER_OK);
	char dir[1024], names[2][256];
	maildir_of("kate", "new", dir, sizeof(dir));
	ck_assert_uint_eq(list_dir(dir, names, 2), 1);
	deliver_request_free(&r);
	close(fd);
}
END_TEST

static Suite *maildir_suite(void)
{
	Suite *s = suite_create("local_maildir");
	TCase *tc = tcase_create("maildir");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_basic_delivery);
	tcase_add_test(tc, test_null_sender_and_unique_names);
	tcase_add_test(tc, test_loop_detection);
	tcase_add_test(tc, test_too_many_delivered_to);
	tcase_add_test(tc, test_bad_local_parts);
	tcase_add_test(tc, test_failure_leaves_nothing);
	tcase_add_test(tc, test_short_queue_file);
	tcase_add_test(tc, test_large_message_streamed);
	tcase_add_test(tc, test_system_mode_refusals);
	tcase_add_test(tc, test_root_dev_mode);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(maildir_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
