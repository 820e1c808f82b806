/*
 * Unit tests for the recipient policy (smtpd_check.c), the HELO sanitiser,
 * and the stream layer over a real socketpair: deadlines, flush-before-read,
 * and a whole session through smtpd_serve with a client in another process.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "smtpd_harness.h"

static struct addr
mk(const char *path)
{
	struct addr a;
	const char *end;

	ck_assert_int_eq(addr_parse_path(path, 0, &a, &end), ADDR_OK);
	return a;
}

START_TEST(policy_local_relay_denied)
{
	char reply[600];
	struct addr a;

	a = mk("<u@mx.test>");
	ck_assert_int_eq(smtpd_check_rcpt(&a, 0, reply, sizeof(reply)), 0);
	a = mk("<any.thing+ext@LOCALHOST>");
	ck_assert_int_eq(smtpd_check_rcpt(&a, 0, reply, sizeof(reply)), 0);
	a = mk("<u@relay.example>");
	ck_assert_int_eq(smtpd_check_rcpt(&a, 0, reply, sizeof(reply)), 0);
	a = mk("<u@sub.relay.example>");
	ck_assert_int_eq(smtpd_check_rcpt(&a, 0, reply, sizeof(reply)), -1);
	ck_assert_str_eq(reply, "554 5.7.1 <u@sub.relay.example>: Relay access denied");
	a = mk("<u@other.example>");
	ck_assert_int_eq(smtpd_check_rcpt(&a, 0, reply, sizeof(reply)), -1);
	ck_assert_str_eq(reply, "554 5.7.1 <u@other.example>: Relay access denied");
	/* trusted clients relay anywhere */
	ck_assert_int_eq(smtpd_check_rcpt(&a, 1, reply, sizeof(reply)), 0);
}
END_TEST

START_TEST(policy_relay_tricks)
{
	static const char *const tricks[] = {
		"<user%other.example@mx.test>",   "<other.example!user@mx.test>",
		"<\"user@other.example\"@mx.test>", "<user%other.example@relay.example>",
		"<@mx.test:user@other.example>",  "<user@[127.0.0.1]>",
	};
	char reply[600];
	size_t i;

	for (i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
		struct addr a = mk(tricks[i]);

		ck_assert_msg(smtpd_check_rcpt(&a, 0, reply, sizeof(reply)) == -1, "%s accepted", tricks[i]);
		ck_assert_msg(strncmp(reply, "554 5.7.1 <", 11) == 0, "%s", reply);
	}
}
END_TEST

START_TEST(policy_subdomain_entry)
{
	char reply[600];
	struct addr a;

	h_conf((const char *const[]){ "relay_domains=.relay.example", NULL });
	a = mk("<u@a.relay.example>");
	ck_assert_int_eq(smtpd_check_rcpt(&a, 0, reply, sizeof(reply)), 0);
}
END_TEST

START_TEST(trusted_networks)
{
	ck_assert_int_eq(smtpd_check_client_trusted("127.0.0.1"), 1);
	ck_assert_int_eq(smtpd_check_client_trusted("10.255.0.1"), 1);
	ck_assert_int_eq(smtpd_check_client_trusted("::1"), 1);
	ck_assert_int_eq(smtpd_check_client_trusted("::ffff:127.0.0.2"), 1);
	ck_assert_int_eq(smtpd_check_client_trusted("192.0.2.1"), 0);
	ck_assert_int_eq(smtpd_check_client_trusted("2001:db8::1"), 0);
	/* A changed list is parsed again. */
	h_conf((const char *const[]){ "mynetworks=192.0.2.0/24", NULL });
	ck_assert_int_eq(smtpd_check_client_trusted("192.0.2.1"), 1);
	ck_assert_int_eq(smtpd_check_client_trusted("127.0.0.1"), 0);
}
END_TEST

START_TEST(sanitise_helo)
{
	char out[SMTPD_HELO_MAX + 1], small[4];

	smtpd_sanitise_helo("mail.example.com", out, sizeof(out));
	ck_assert_str_eq(out, "mail.example.com");
	smtpd_sanitise_helo("[IPv6:2001:db8::1]", out, sizeof(out));
	ck_assert_str_eq(out, "[IPv6:2001:db8::1]");
	smtpd_sanitise_helo("a b\tc(d)e\"f\\g;h\x7f\xff", out, sizeof(out));
	ck_assert_str_eq(out, "a?b?c?d?e?f?g?h??");
	smtpd_sanitise_helo("abcdef", small, sizeof(small));
	ck_assert_str_eq(small, "abc");
}
END_TEST

/* ---- the fd stream ---- */

START_TEST(stream_fd_read_timeout)
{
	struct smtpd_stream st;
	char c;
	int sv[2];
	struct timespec t0, t1;
	long ms;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	stream_init_fd(&st, sv[0], 200);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(stream_lr_read(&st, &c, 1), -1);
	ck_assert_int_eq(errno, ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ck_assert_int_ge(ms, 150);
	ck_assert_int_lt(ms, 2000);
	stream_free(&st);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(stream_fd_flush_before_read)
{
	struct smtpd_stream st;
	char got[64];
	int sv[2];
	ssize_t n;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	stream_init_fd(&st, sv[0], 1000);
	ck_assert_int_eq(stream_printf(&st, "250 %s\r\n", "Ok"), 0);
	/* Nothing is written until the server must wait. */
	ck_assert_int_eq(recv(sv[1], got, sizeof(got), MSG_DONTWAIT), -1);
	ck_assert_int_eq(write(sv[1], "x", 1), 1);
	ck_assert_int_eq(stream_lr_read(&st, got, sizeof(got)), 1);
	n = recv(sv[1], got, sizeof(got), MSG_DONTWAIT);
	ck_assert_int_eq(n, 8);
	ck_assert_mem_eq(got, "250 Ok\r\n", 8);
	/* EOF */
	close(sv[1]);
	ck_assert_int_eq(stream_lr_read(&st, got, sizeof(got)), 0);
	stream_free(&st);
	close(sv[0]);
}
END_TEST

/* A peer that never reads: the write deadline ends the wait. */
START_TEST(stream_fd_write_timeout)
{
	struct smtpd_stream st;
	static char big[1 << 16];
	int sv[2], i, rc = 0;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	stream_init_fd(&st, sv[0], 200);
	memset(big, 'x', sizeof(big));
	for (i = 0; i < 1000 && rc == 0; i++)
		rc = stream_put(&st, big, sizeof(big));
	if (rc == 0)
		rc = stream_flush(&st);
	ck_assert_int_eq(rc, -1);
	ck_assert_int_eq(st.err, ETIMEDOUT);
	ck_assert_int_eq(stream_failed(&st), 1);
	ck_assert_int_eq(stream_put(&st, "x", 1), -1);
	stream_free(&st);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(stream_peer_gone_epipe)
{
	struct smtpd_stream st;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	stream_init_fd(&st, sv[0], 1000);
	stream_put(&st, "x\r\n", 3);
	ck_assert_int_eq(stream_flush(&st), -1); /* no SIGPIPE: we are still alive */
	ck_assert_int_eq(st.err, EPIPE);
	stream_free(&st);
	close(sv[0]);
}
END_TEST

/* Read everything the server sends until it closes. */
static void
read_all(int fd, struct buf *b)
{
	char tmp[4096];
	ssize_t n;

	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		ck_assert_int_eq(buf_append(b, tmp, (size_t)n), 0);
}

/* Read the server's greeting line into b (a polite client waits for it). */
static void
read_greeting(int fd, struct buf *b)
{
	char c;

	while (read(fd, &c, 1) == 1) {
		ck_assert_int_eq(buf_putc(b, c), 0);
		if (c == '\n')
			return;
	}
}

/* A client that sends before the greeting is refused (an early talker). */
START_TEST(serve_early_talker_554)
{
	struct sockaddr_in peer;
	struct buf got;
	int sv[2], status;
	pid_t pid;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_addr.s_addr = htonl(0xc0000205);
	ck_assert_int_eq(write(sv[1], "EHLO c\r\n", 8), 8); /* before the server even starts */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(sv[1]);
		smtpd_serve(sv[0], (struct sockaddr *)&peer, sizeof(peer));
		_exit(0);
	}
	close(sv[0]);
	buf_init(&got, 1 << 16);
	read_all(sv[1], &got);
	ck_assert_str_eq(got.data, "554 5.5.0 Error: SMTP protocol synchronization\r\n");
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	buf_free(&got);
	close(sv[1]);
}
END_TEST

START_TEST(serve_over_socketpair)
{
	struct sockaddr_in6 peer;
	struct buf got;
	int sv[2], status;
	pid_t pid;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(&peer, 0, sizeof(peer));
	peer.sin6_family = AF_INET6;
	ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:192.0.2.5", &peer.sin6_addr), 1);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(sv[1]);
		smtpd_serve(sv[0], (struct sockaddr *)&peer, sizeof(peer));
		_exit(0);
	}
	close(sv[0]);
	buf_init(&got, 1 << 16);
	read_greeting(sv[1], &got);
	ck_assert_int_eq(write(sv[1], "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@elsewhere.example>\r\nQUIT\r\n",
			       71),
			 71);
	read_all(sv[1], &got);
	ck_assert_str_eq(got.data, "220 mx.test ESMTP tern\r\n250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
				   "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n250 2.1.0 Ok\r\n"
				   "554 5.7.1 <u@elsewhere.example>: Relay access denied\r\n221 2.0.0 Bye\r\n");
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	buf_free(&got);
	close(sv[1]);
}
END_TEST

START_TEST(serve_idle_timeout)
{
	struct sockaddr_in peer;
	struct buf got;
	int sv[2], status;
	pid_t pid;

	h_conf((const char *const[]){ "smtpd_timeout=1s", NULL });
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_addr.s_addr = htonl(0x7f000001);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(sv[1]);
		smtpd_serve(sv[0], (struct sockaddr *)&peer, sizeof(peer));
		_exit(0);
	}
	close(sv[0]);
	buf_init(&got, 1 << 16);
	read_greeting(sv[1], &got);
	ck_assert_int_eq(write(sv[1], "HELO c\r\nNOOP", 12), 12); /* half a command, then silence */
	read_all(sv[1], &got);
	ck_assert_str_eq(got.data,
			 "220 mx.test ESMTP tern\r\n250 mx.test\r\n421 4.4.2 mx.test Error: timeout exceeded\r\n");
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	buf_free(&got);
	close(sv[1]);
}
END_TEST

static Suite *
check_suite(void)
{
	Suite *s = suite_create("smtpd_check");
	TCase *tc = tcase_create("policy");
	TCase *io = tcase_create("stream");

	tcase_add_checked_fixture(tc, h_setup, NULL);
	tcase_add_test(tc, policy_local_relay_denied);
	tcase_add_test(tc, policy_relay_tricks);
	tcase_add_test(tc, policy_subdomain_entry);
	tcase_add_test(tc, trusted_networks);
	tcase_add_test(tc, sanitise_helo);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(io, h_setup, NULL);
	tcase_set_timeout(io, 20);
	tcase_add_test(io, stream_fd_read_timeout);
	tcase_add_test(io, stream_fd_flush_before_read);
	tcase_add_test(io, stream_fd_write_timeout);
	tcase_add_test(io, stream_peer_gone_epipe);
	tcase_add_test(io, serve_over_socketpair);
	tcase_add_test(io, serve_idle_timeout);
	tcase_add_test(io, serve_early_talker_554);
	suite_add_tcase(s, io);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(check_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
