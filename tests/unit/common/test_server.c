/*
 * Unit tests for common/server.c: a prefork child told to stop (SIGHUP, the
 * master's reload; SIGTERM) while it waits for the listener never takes
 * another connection, even when the signal comes just before the wait.
 *
 * The test defines epoll_pwait and epoll_wait itself (the executable's
 * definitions win over the C library's), raising the signal on entry and
 * then making the system call: the signal lands between the child's last
 * look at its stop flag and the wait.  A connection is already queued on
 * the listener, so a child that missed the signal would accept and serve
 * it; one that kept it pending until the wait returns at once and exits.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf.h"
#include "proto_master.h"
#include "server.h"
#include "testutil.h"

static int raise_on_wait; /* the signal to raise as the wait begins, or 0 */

int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout, const sigset_t *sigmask)
{
	if (raise_on_wait)
		raise(raise_on_wait);
	return (int)syscall(SYS_epoll_pwait, epfd, events, maxevents, timeout, sigmask, (size_t)(_NSIG / 8));
}

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	return epoll_pwait(epfd, events, maxevents, timeout, NULL);
}

static char workdir[64];

static void setup(void)
{
	snprintf(workdir, sizeof(workdir), "/tmp/tern-test-server-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(workdir));
}

static void teardown(void)
{
	test_rm_rf(workdir);
}

/* The child's serve function: a served connection is the failure. */
static int served_fd = -1;

static void serve(int fd, const struct sockaddr *sa, socklen_t len)
{
	(void)fd;
	(void)sa;
	(void)len;
	if (write(served_fd, "S", 1) != 1)
		_exit(3);
}

static int listener(int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static int connect_to(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((unsigned short)port);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* Run a prefork child on a listener with a queued connection, sig raised
 * as its wait begins; it must exit 0 without serving, and the connection
 * must still be queued for someone else. */
static void stop_before_wait(int sig)
{
	char conf[128];
	int port, lfd = listener(&port), status[2], served[2];
	int cfd = connect_to(port);

	snprintf(conf, sizeof(conf), "%s/tern.conf", workdir);
	int fd = open(conf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(pipe(status), 0);
	ck_assert_int_eq(pipe(served), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char *argv[] = { "test_server", "-c", conf, "-f", NULL };

		alarm(20);
		if (dup2(lfd, MASTER_LISTEN_FD) < 0 || dup2(status[1], MASTER_STATUS_FD) < 0)
			_exit(4);
		served_fd = served[1];
		daemon_init_privileged(4, argv, "test_server");
		raise_on_wait = sig;
		server_prefork(serve);
		_exit(5); /* server_prefork never returns */
	}
	close(status[1]);
	close(served[1]);
	int st = 0;
	pid_t w = 0;
	for (int i = 0; i < 200 && w == 0; i++) { /* 10 s at most */
		w = waitpid(pid, &st, WNOHANG);
		if (w == 0)
			usleep(50000);
	}
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	ck_assert_msg(w == pid, "the child did not exit after its stop signal");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	char c;
	ck_assert_msg(read(served[0], &c, 1) == 0, "a child told to stop served a connection");
	int afd = accept(lfd, NULL, NULL);
	ck_assert_msg(afd >= 0, "the queued connection was taken: %s", strerror(errno));
	close(afd);
	close(cfd);
	close(lfd);
	close(status[0]);
	close(served[0]);
}

START_TEST(reload_just_before_wait_not_missed)
{
	stop_before_wait(SIGHUP);
}
END_TEST

START_TEST(term_just_before_wait_not_missed)
{
	stop_before_wait(SIGTERM);
}
END_TEST

static Suite *server_suite(void)
{
	Suite *s = suite_create("server");
	TCase *tc = tcase_create("server");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, reload_just_before_wait_not_missed);
	tcase_add_test(tc, term_just_before_wait_not_missed);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(server_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
