/*
 * test_conf — tern.conf parser: defaults, types and units, continuation
 * lines, $-expansion, -o overrides, and every error class with its exact
 * "file:line: reason" text.  Also checks that docs/config.md documents
 * every key conf_dump prints.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

static char err[1024];

/* Load text as "t.conf"; returns conf_load_string's result. */
static int load(const char *text)
{
	err[0] = '\0';
	return conf_load_string(text, "t.conf", err, sizeof(err));
}

static void load_ok(const char *text)
{
	ck_assert_msg(load(text) == 0, "load failed: %s", err);
	ck_assert_msg(conf_finish(err, sizeof(err)) == 0, "finish failed: %s", err);
}

static void load_err(const char *text, const char *want)
{
	ck_assert_msg(load(text) == -1, "load of \"%s\" should fail", text);
	ck_assert_str_eq(err, want);
}

static void finish_err(const char *text, const char *want)
{
	ck_assert_msg(load(text) == 0, "load failed: %s", err);
	ck_assert_int_eq(conf_finish(err, sizeof(err)), -1);
	ck_assert_str_eq(err, want);
}

/* Capture conf_dump (or conf_dump_key when key) into a malloc'ed string. */
static char *dump(const char *key)
{
	FILE *f = tmpfile();
	char *s = calloc(1, 65536);

	ck_assert_ptr_nonnull(f);
	if (key)
		conf_dump_key(fileno(f), key);
	else
		conf_dump(fileno(f));
	rewind(f);
	size_t n = fread(s, 1, 65535, f);
	s[n] = '\0';
	fclose(f);
	return s;
}

START_TEST(test_defaults)
{
	load_ok("");
	ck_assert_str_eq(cf.queue_directory, TERN_QUEUEDIR);
	ck_assert_str_eq(cf.daemon_directory, TERN_LIBEXECDIR);
	ck_assert_str_eq(cf.mail_owner, "tern");
	ck_assert_str_eq(cf.mynetworks, "127.0.0.0/8, [::1]/128");
	ck_assert_str_eq(cf.smtpd_listen, "0.0.0.0:25");
	ck_assert_str_eq(cf.home_mailbox, "Maildir/");
	ck_assert_str_eq(cf.recipient_delimiter, "+");
	ck_assert_str_eq(cf.relayhost, "");
	ck_assert_int_eq(cf.smtpd_timeout, 300);
	ck_assert_int_eq(cf.smtpd_recipient_limit, 1000);
	ck_assert_int_eq(cf.message_size_limit, 10240000);
	ck_assert_int_eq(cf.maximal_queue_lifetime, 5 * 86400);
	ck_assert_int_eq(cf.maximal_backoff, 4000);
	ck_assert_int_eq(cf.default_destination_recipient_limit, 50);
	ck_assert_int_eq(cf.smtputf8_enable, 1);
	ck_assert_int_eq(cf.strict_rfc821_envelopes, 0);
	/* computed identity */
	ck_assert_uint_gt(strlen(cf.myhostname), 0);
	ck_assert_str_eq(cf.myorigin, cf.myhostname);
	char want[1024];
	snprintf(want, sizeof(want), "%s, localhost.%s, localhost", cf.myhostname, cf.mydomain);
	ck_assert_str_eq(cf.mydestination, want);
	snprintf(want, sizeof(want), "%s ESMTP tern", cf.myhostname);
	ck_assert_str_eq(cf.smtpd_banner, want);
}
END_TEST

START_TEST(test_identity)
{
	load_ok("myhostname = mail.example.com\n");
	ck_assert_str_eq(cf.mydomain, "example.com");
	ck_assert_str_eq(cf.myorigin, "mail.example.com");
	ck_assert_str_eq(cf.mydestination, "mail.example.com, localhost.example.com, localhost");
	ck_assert_str_eq(cf.smtpd_banner, "mail.example.com ESMTP tern");

	load_ok("myhostname = box\n");
	ck_assert_str_eq(cf.mydomain, "localdomain");

	load_ok("myhostname = mx.example.org\nmydomain = example.net\nmyorigin = $mydomain\n");
	ck_assert_str_eq(cf.myorigin, "example.net");
	ck_assert_str_eq(cf.mydestination, "mx.example.org, localhost.example.net, localhost");
}
END_TEST

START_TEST(test_types)
{
	load_ok("smtpd_timeout = 2m\nmax_idle = 45\nqueue_run_delay = 45s\nminimal_backoff = 1h\n"
		"maximal_backoff = 2d\nmaximal_queue_lifetime = 1w\nmessage_size_limit = 10k\n"
		"smtpd_recipient_limit = 7\nsmtputf8_enable = no\nstrict_rfc821_envelopes = yes\n");
	ck_assert_int_eq(cf.smtpd_timeout, 120);
	ck_assert_int_eq(cf.max_idle, 45);
	ck_assert_int_eq(cf.queue_run_delay, 45);
	ck_assert_int_eq(cf.minimal_backoff, 3600);
	ck_assert_int_eq(cf.maximal_backoff, 2 * 86400);
	ck_assert_int_eq(cf.maximal_queue_lifetime, 7 * 86400);
	ck_assert_int_eq(cf.message_size_limit, 10240);
	ck_assert_int_eq(cf.smtpd_recipient_limit, 7);
	ck_assert_int_eq(cf.smtputf8_enable, 0);
	ck_assert_int_eq(cf.strict_rfc821_envelopes, 1);
	load_ok("message_size_limit = 2M\n");
	ck_assert_int_eq(cf.message_size_limit, 2 * 1024 * 1024);
	load_ok("message_size_limit = 1g\nmaximal_queue_lifetime = 0\n");
	ck_assert_int_eq(cf.message_size_limit, 1024LL * 1024 * 1024);
	ck_assert_int_eq(cf.maximal_queue_lifetime, 0);
}
END_TEST

START_TEST(test_syntax)
{
	/* comments, blank lines, spacing, CRLF, tabs */
	load_ok("# comment\n\n   \nmail_owner=alice\nsyslog_name\t =  tern-x  \r\n"
		"smtpd_banner = hi # not a comment\n");
	ck_assert_str_eq(cf.mail_owner, "alice");
	ck_assert_str_eq(cf.syslog_name, "tern-x");
	ck_assert_str_eq(cf.smtpd_banner, "hi # not a comment");
}
END_TEST

START_TEST(test_continuation)
{
	load_ok("mydestination = a.example,\n   b.example,\n# a comment between\n\n\tc.example\n"
		"relay_domains =\n  x.example\n");
	ck_assert_str_eq(cf.mydestination, "a.example, b.example, c.example");
	ck_assert_str_eq(cf.relay_domains, "x.example");
	load_ok("smtpd_timeout =\n  10s\n");
	ck_assert_int_eq(cf.smtpd_timeout, 10);
}
END_TEST

START_TEST(test_expansion)
{
	load_ok("myhostname = mx.example.com\nsmtpd_banner = ${myhostname} says $$5 for $mydomain\n");
	ck_assert_str_eq(cf.smtpd_banner, "mx.example.com says $5 for example.com");
	/* finish is repeatable: $$ does not turn into a variable the second time */
	ck_assert_int_eq(conf_finish(err, sizeof(err)), 0);
	ck_assert_str_eq(cf.smtpd_banner, "mx.example.com says $5 for example.com");

	finish_err("myhostname = mx.example.com\nsmtpd_banner = $foo\n",
		   "t.conf:2: smtpd_banner: $foo cannot be used here");
	finish_err("smtpd_banner = cost $\n", "t.conf:1: smtpd_banner: bad '$' (write $$ for a literal '$')");
	finish_err("smtpd_banner = ${myhostname\n",
		   "t.conf:1: smtpd_banner: bad '$' (write $$ for a literal '$')");
	finish_err("myhostname = $mydomain\n", "t.conf:1: myhostname: $mydomain cannot be used here");
	finish_err("mydomain = $myorigin\n", "t.conf:1: mydomain: $myorigin cannot be used here");
	finish_err("relayhost = $mail_owner\n", "t.conf:1: relayhost: $mail_owner cannot be used here");
	/* shell metacharacters are plain text */
	load_ok("smtpd_banner = x; $$(id) `id` | $${x\n");
	ck_assert_str_eq(cf.smtpd_banner, "x; $(id) `id` | ${x");
	finish_err("smtpd_banner = $(id)\n", "t.conf:1: smtpd_banner: bad '$' (write $$ for a literal '$')");
}
END_TEST

START_TEST(test_errors)
{
	load_err("mail_owner = a\n\nnosuch = 1\n", "t.conf:3: unknown key \"nosuch\"");
	load_err("mail_owner = a\nmail_owner = b\n",
		 "t.conf:2: duplicate key \"mail_owner\" (first set on line 1)");
	load_err("# c\nmail_owner\n", "t.conf:2: missing '=' after \"mail_owner\"");
	load_err("mail owner = x\n", "t.conf:1: missing '=' after \"mail\"");
	load_err("= x\n", "t.conf:1: expected \"key = value\"");
	load_err("smtpd_recipient_limit = 12x\n", "t.conf:1: smtpd_recipient_limit: bad int value \"12x\"");
	load_err("smtpd_recipient_limit = -1\n", "t.conf:1: smtpd_recipient_limit: bad int value \"-1\"");
	load_err("smtpd_recipient_limit =\n", "t.conf:1: smtpd_recipient_limit: bad int value \"\"");
	load_err("smtpd_recipient_limit = 99999999999999999999999\n",
		 "t.conf:1: smtpd_recipient_limit: bad int value \"99999999999999999999999\"");
	load_err("smtpd_recipient_limit = 0\n",
		 "t.conf:1: smtpd_recipient_limit: value 0 out of range (1..100000)");
	load_err("smtputf8_enable = maybe\n",
		 "t.conf:1: smtputf8_enable: bad bool value \"maybe\" (expected yes or no)");
	load_err("smtputf8_enable = Yes\n",
		 "t.conf:1: smtputf8_enable: bad bool value \"Yes\" (expected yes or no)");
	load_err("smtpd_timeout = 5x\n", "t.conf:1: smtpd_timeout: bad time value \"5x\"");
	load_err("smtpd_timeout = 5 m\n", "t.conf:1: smtpd_timeout: bad time value \"5 m\"");
	load_err("smtpd_timeout = 5mm\n", "t.conf:1: smtpd_timeout: bad time value \"5mm\"");
	load_err("smtpd_timeout = 99999999999999999w\n",
		 "t.conf:1: smtpd_timeout: bad time value \"99999999999999999w\"");
	load_err("smtpd_timeout = 0\n", "t.conf:1: smtpd_timeout: value 0 out of range (1..86400)");
	load_err("message_size_limit = 10q\n", "t.conf:1: message_size_limit: bad size value \"10q\"");
	load_err("message_size_limit = 10\n",
		 "t.conf:1: message_size_limit: value 10 out of range (1024..1099511627776)");
	load_err("  indented\n", "t.conf:1: continuation line before any key");
	load_err("# c\n\n\tindented\n", "t.conf:3: continuation line before any key");
	load_err("mail_owner = a\rb\n", "t.conf:1: control character 0x0d in line");
	load_err("mail_owner = a\x01\n", "t.conf:1: control character 0x01 in line");
	load_err("mail_owner = a\x7f\n", "t.conf:1: control character 0x7f in line");
	/* a type error in a continued value is reported at the key's line */
	load_err("# c\nsmtpd_timeout =\n  10\n  20\n", "t.conf:2: smtpd_timeout: bad time value \"10 20\"");
}
END_TEST

START_TEST(test_errors_reset_to_defaults)
{
	load_ok("mail_owner = alice\n");
	ck_assert_str_eq(cf.mail_owner, "alice");
	ck_assert_int_eq(load("mail_owner = bob\nsmtpd_timeout = x\n"), -1);
	ck_assert_str_eq(cf.mail_owner, "tern");
	ck_assert_int_eq(cf.smtpd_timeout, 300);
	/* reload replaces, not merges */
	load_ok("syslog_name = one\n");
	load_ok("");
	ck_assert_str_eq(cf.syslog_name, "tern");
}
END_TEST

START_TEST(test_long_values)
{
	size_t n = 4096;
	char *text = malloc(n + 64);

	/* exactly 4096 bytes is fine, one more is not */
	strcpy(text, "smtpd_banner = ");
	memset(text + 15, 'b', n);
	strcpy(text + 15 + n, "\n");
	load_ok(text);
	ck_assert_uint_eq(strlen(cf.smtpd_banner), n);
	strcpy(text + 15 + n, "b\n");
	load_err(text, "t.conf:1: smtpd_banner: value too long (max 4096 bytes)");
	/* the same through continuation lines */
	strcpy(text, "smtpd_banner = ");
	memset(text + 15, 'b', n - 1);
	strcpy(text + 15 + n - 1, "\n  c\n");
	load_err(text, "t.conf:2: smtpd_banner: value too long (max 4096 bytes)");
	/* expansion can also make a value too long */
	strcpy(text, "myhostname = ");
	memset(text + 13, 'h', 60);
	strcpy(text + 73, "\nsmtpd_banner = ");
	for (int i = 0; i < 80; i++)
		strcat(text, "$myhostname");
	strcat(text, "\n");
	finish_err(text, "t.conf:2: smtpd_banner: value too long after expansion (max 4096 bytes)");
	free(text);

	/* a 9000-byte line: rejected, with the right line number */
	text = malloc(9100);
	strcpy(text, "mail_owner = a\n#");
	memset(text + 16, 'x', 9000);
	strcpy(text + 9016, "\n");
	load_err(text, "t.conf:2: line too long (max 8192 bytes)");
	free(text);
}
END_TEST

START_TEST(test_finish_checks)
{
	finish_err("minimal_backoff = 5000\n",
		   "t.conf:1: minimal_backoff: minimal_backoff (5000s) is larger than maximal_backoff (4000s)");
	finish_err("default_process_limit = 5\nsmtpd_min_idle = 6\n",
		   "t.conf:2: smtpd_min_idle: smtpd_min_idle (6) is larger than default_process_limit (5)");
	finish_err("\nmyhostname = bad host!\n",
		   "t.conf:2: myhostname: \"bad host!\" is not a valid host or domain name");
	finish_err("myhostname = -bad.example\n",
		   "t.conf:1: myhostname: \"-bad.example\" is not a valid host or domain name");
	finish_err("queue_directory = var/spool\n", "t.conf:1: queue_directory: must be an absolute path");
	finish_err("home_mailbox = ../../etc/passwd\n",
		   "t.conf:1: home_mailbox: must be a path relative to the home directory, without \"..\"");
	finish_err("mail_owner =\n", "t.conf:1: mail_owner: must not be empty");
	load_ok("minimal_backoff = 4000\n"); /* equal is fine */
}
END_TEST

START_TEST(test_overrides)
{
	ck_assert_int_eq(load("smtpd_timeout = 20\n"), 0);
	ck_assert_int_eq(conf_override("smtpd_timeout=10", err, sizeof(err)), 0);
	ck_assert_int_eq(conf_override("queue_directory = /tmp/q ", err, sizeof(err)), 0);
	ck_assert_int_eq(conf_override("relayhost=", err, sizeof(err)), 0);
	ck_assert_int_eq(conf_finish(err, sizeof(err)), 0);
	ck_assert_int_eq(cf.smtpd_timeout, 10);
	ck_assert_str_eq(cf.queue_directory, "/tmp/q");
	ck_assert_str_eq(cf.relayhost, "");

	ck_assert_int_eq(conf_override("nosuch=1", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "-o nosuch=1: unknown key \"nosuch\"");
	ck_assert_int_eq(conf_override("smtpd_timeout", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "-o smtpd_timeout: missing '='");
	ck_assert_int_eq(conf_override("smtpd_timeout=soon", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "-o smtpd_timeout: bad time value \"soon\"");
	ck_assert_int_eq(conf_override("smtpd_banner=a\nb", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "-o smtpd_banner: control character in value");

	/* errors found by conf_finish name the override */
	ck_assert_int_eq(load(""), 0);
	ck_assert_int_eq(conf_override("daemon_directory=relative", err, sizeof(err)), 0);
	ck_assert_int_eq(conf_finish(err, sizeof(err)), -1);
	ck_assert_str_eq(err, "-o daemon_directory: must be an absolute path");
}
END_TEST

START_TEST(test_file_errors)
{
	char path[] = "/tmp/test_conf_XXXXXX";
	int fd = mkstemp(path);
	static const char text[] = "mail_owner = a\nsyslog_name = b\0c\n";

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	ck_assert_int_eq(conf_load(path, err, sizeof(err)), -1);
	char want[256];
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
	ck_assert_str_eq(err, want);
	ck_assert_str_eq(cf.mail_owner, "tern");

	fd = open(path, O_WRONLY | O_TRUNC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "mail_owner = a\n", 15), 15);
	close(fd);
	ck_assert_int_eq(conf_load(path, err, sizeof(err)), 0);
	ck_assert_str_eq(cf.mail_owner, "a");
	unlink(path);

	ck_assert_int_eq(conf_load("/nonexistent/tern.conf", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "/nonexistent/tern.conf: No such file or directory");
}
END_TEST

START_TEST(test_dump)
{
	load_ok("myhostname = mx.example.com\nsmtpd_timeout = 1m\nsmtputf8_enable = no\n");
	char *s = dump(NULL);
	ck_assert_ptr_nonnull(strstr(s, "myhostname = mx.example.com\n"));
	ck_assert_ptr_nonnull(strstr(s, "smtpd_timeout = 60s\n"));
	ck_assert_ptr_nonnull(strstr(s, "smtputf8_enable = no\n"));
	ck_assert_ptr_nonnull(strstr(s, "message_size_limit = 10240000\n"));
	ck_assert_ptr_nonnull(strstr(s, "relayhost = \n"));
	ck_assert(strncmp(s, "myhostname = ", 13) == 0); /* table order */
	/* every line names a known key, and loading the dump back works */
	int lines = 0;
	for (char *p = s; *p; p = strchr(p, '\n') + 1) {
		char name[128];
		size_t n = strcspn(p, " ");
		ck_assert_uint_lt(n, sizeof(name));
		memcpy(name, p, n);
		name[n] = '\0';
		ck_assert_msg(conf_known(name), "unknown key %s in dump", name);
		lines++;
	}
	ck_assert_int_ge(lines, 36);
	ck_assert_int_eq(load(s), 0);
	ck_assert_int_eq(conf_finish(err, sizeof(err)), 0);
	char *again = dump(NULL);
	ck_assert_str_eq(s, again);
	free(again);
	free(s);

	s = dump("smtpd_timeout");
	ck_assert_str_eq(s, "smtpd_timeout = 60s\n");
	free(s);
	ck_assert_int_eq(conf_dump_key(1, "nosuch"), -1);
	ck_assert(!conf_known("nosuch"));
	ck_assert(!conf_known(""));
	ck_assert(conf_known("queue_directory"));
}
END_TEST

START_TEST(test_docs_cover_every_key)
{
	static const char *paths[] = { "docs/config.md", "../docs/config.md", "../../docs/config.md",
				       "../../../docs/config.md", "../../../../docs/config.md" };
	FILE *f = NULL;

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]) && f == NULL; i++)
		f = fopen(paths[i], "r");
	if (f == NULL) {
		fprintf(stderr, "test_docs_cover_every_key: docs/config.md not found from the cwd; skipped\n");
		return;
	}
	char *doc = calloc(1, 1 << 20);
	size_t n = fread(doc, 1, (1 << 20) - 1, f);
	doc[n] = '\0';
	fclose(f);

	load_ok("");
	char *s = dump(NULL);
	for (char *p = s; *p; p = strchr(p, '\n') + 1) {
		char name[140];
		size_t len = strcspn(p, " ");
		snprintf(name, sizeof(name), "`%.*s`", (int)len, p);
		ck_assert_msg(strstr(doc, name) != NULL, "%s is not documented in docs/config.md", name);
	}
	free(s);
	free(doc);
}
END_TEST

static Suite *conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_identity);
	tcase_add_test(tc, test_types);
	tcase_add_test(tc, test_syntax);
	tcase_add_test(tc, test_continuation);
	tcase_add_test(tc, test_expansion);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_errors_reset_to_defaults);
	tcase_add_test(tc, test_long_values);
	tcase_add_test(tc, test_finish_checks);
	tcase_add_test(tc, test_overrides);
	tcase_add_test(tc, test_file_errors);
	tcase_add_test(tc, test_dump);
	tcase_add_test(tc, test_docs_cover_every_key);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(conf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
