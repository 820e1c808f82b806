/*
 * Unit tests for common/sock.c: host:port splitting (good and hostile
 * strings), TCP listeners on 127.0.0.1, [::1] and the wildcard with a real
 * connect, Unix stream and datagram sockets with their file modes, and
 * descriptor passing including extra and truncated descriptor lists.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sock.h"

static char tmpdir[64];

static void setup_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tern-test-sock-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown_tmpdir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* Number of open descriptors, to detect leaks. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int is_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	return fl >= 0 && (fl & FD_CLOEXEC);
}

START_TEST(test_split_good)
{
	static const struct {
		const char *in, *host, *port;
	} t[] = {
		{ "127.0.0.1:2525", "127.0.0.1", "2525" },
		{ "[::1]:2525", "::1", "2525" },
		{ ":25", "", "25" },
		{ "0.0.0.0:25", "0.0.0.0", "25" },
		{ "mail.example.com:smtp", "mail.example.com", "smtp" },
		{ "[2001:db8::1]:587", "2001:db8::1", "587" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char host[64], port[16];

		ck_assert_msg(sock_split_hostport(t[i].in, host, sizeof(host), port, sizeof(port)) == 0,
			      "rejected %s", t[i].in);
		ck_assert_str_eq(host, t[i].host);
		ck_assert_str_eq(port, t[i].port);
	}
}
END_TEST

START_TEST(test_split_bad)
{
	static const char *bad[] = {
		"",	      "25",	   "127.0.0.1", "127.0.0.1:", "::1:25",
		"[::1]",      "[::1]25",   "[::1:25",	"[]:25",      "::1]:25",
		"[::1]:",     "a:b:c",	   "host:25 ",	"host:2 5",   "host:25;rm",
		"[[::1]]:25", "host:25\n", "x]:25",	"h:65536",    "h:99999999999999999999999",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char host[64], port[16];

		ck_assert_msg(sock_split_hostport(bad[i], host, sizeof(host), port, sizeof(port)) == -1,
			      "accepted \"%s\"", bad[i]);
	}
}
END_TEST

START_TEST(test_split_sizes)
{
	char host[10], port[3];

	ck_assert_int_eq(sock_split_hostport("123456789:25", host, sizeof(host), port, sizeof(port)), 0);
	ck_assert_int_eq(sock_split_hostport("1234567890:25", host, sizeof(host), port, sizeof(port)), -1);
	ck_assert_int_eq(sock_split_hostport("h:255", host, sizeof(host), port, sizeof(port)), -1);
}
END_TEST

/* Port the listener got, and a connect + accept round trip through it. */
static void check_listener(int lfd, int family, const char *connect_ip)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int port, cfd, afd;
	char ip[INET6_ADDRSTRLEN];

	ck_assert_int_ge(lfd, 0);
	ck_assert(is_cloexec(lfd));
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&ss, &len), 0);
	ck_assert_int_eq(ss.ss_family, family);
	sock_addr_text((struct sockaddr *)&ss, len, ip, sizeof(ip), &port);
	ck_assert_int_gt(port, 0);

	cfd = socket(strchr(connect_ip, ':') ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(cfd, 0);
	if (strchr(connect_ip, ':')) {
		struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };

		ck_assert_int_eq(inet_pton(AF_INET6, connect_ip, &s6.sin6_addr), 1);
		ck_assert_int_eq(connect(cfd, (struct sockaddr *)&s6, sizeof(s6)), 0);
	} else {
		struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

		ck_assert_int_eq(inet_pton(AF_INET, connect_ip, &s4.sin_addr), 1);
		ck_assert_int_eq(connect(cfd, (struct sockaddr *)&s4, sizeof(s4)), 0);
	}
	len = sizeof(ss);
	afd = accept(lfd, (struct sockaddr *)&ss, &len);
	ck_assert_int_ge(afd, 0);
	sock_addr_text((struct sockaddr *)&ss, len, ip, sizeof(ip), &port);
	/* A v4 client on a dual-stack socket is reported as plain IPv4. */
	ck_assert_str_eq(ip, connect_ip);
	ck_assert_int_eq(write_all(cfd, "ping", 4), 0);
	{
		char got[4];

		ck_assert_int_eq(read(afd, got, 4), 4);
		ck_assert(memcmp(got, "ping", 4) == 0);
	}
	close(afd);
	close(cfd);
	close(lfd);
}

static int have_ipv6(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int ok;

	if (fd < 0)
		return 0;
	ok = bind(fd, (struct sockaddr *)&s6, sizeof(s6)) == 0;
	close(fd);
	return ok;
}

START_TEST(test_tcp_listen_v4)
{
	check_listener(sock_tcp_listen("127.0.0.1:0", 16), AF_INET, "127.0.0.1");
}
END_TEST

START_TEST(test_tcp_listen_v6)
{
	int fd, v6only = 0;
	socklen_t len = sizeof(v6only);

	if (!have_ipv6())
		return; /* no IPv6 loopback in this environment */
	fd = sock_tcp_listen("[::1]:0", 16);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len), 0);
	ck_assert_int_eq(v6only, 1);
	check_listener(fd, AF_INET6, "::1");
}
END_TEST

START_TEST(test_tcp_listen_any)
{
	int fd = sock_tcp_listen(":0", 16);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	/* Dual-stack where IPv6 exists, else IPv4: IPv4 clients must get in either way. */
	check_listener(fd, ss.ss_family, "127.0.0.1");
	check_listener(sock_tcp_listen("0.0.0.0:0", 16), AF_INET, "127.0.0.1");
}
END_TEST

START_TEST(test_tcp_listen_bad)
{
	errno = 0;
	ck_assert_int_eq(sock_tcp_listen("127.0.0.1", 16), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(sock_tcp_listen("::1:25", 16), -1);
	ck_assert_int_eq(sock_tcp_listen("256.1.1.1:0", 16), -1);
	ck_assert_int_eq(sock_tcp_listen("127.0.0.1:99999", 16), -1);
	ck_assert_int_eq(sock_tcp_listen("127.0.0.1:nosuchservice-xyz", 16), -1);
	/* 192.0.2.1 (TEST-NET) is not ours: bind must fail, not silently pick another address. */
	ck_assert_int_eq(sock_tcp_listen("192.0.2.1:0", 16), -1);
}
END_TEST

START_TEST(test_unix_stream)
{
	char path[128];
	struct stat st;
	int lfd, cfd, afd;
	char got[5] = "";

	setup_tmpdir();
	snprintf(path, sizeof(path), "%s/sock", tmpdir);
	/* A stale socket file from a previous run is replaced. */
	lfd = sock_unix_listen(path, 4, 0660);
	ck_assert_int_ge(lfd, 0);
	close(lfd);
	lfd = sock_unix_listen(path, 4, 0660);
	ck_assert_int_ge(lfd, 0);
	ck_assert(is_cloexec(lfd));
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0660);
	cfd = sock_unix_connect(path);
	ck_assert_int_ge(cfd, 0);
	ck_assert(is_cloexec(cfd));
	afd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(afd, 0);
	ck_assert_int_eq(write_all(cfd, "hello", 5), 0);
	ck_assert_int_eq(read(afd, got, 5), 5);
	ck_assert(memcmp(got, "hello", 5) == 0);
	close(afd);
	close(cfd);
	close(lfd);

	snprintf(path, sizeof(path), "%s/nosuch", tmpdir);
	ck_assert_int_eq(sock_unix_connect(path), -1);
	teardown_tmpdir();
}
END_TEST

START_TEST(test_unix_path_too_long)
{
	char path[300];

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	errno = 0;
	ck_assert_int_eq(sock_unix_listen(path, 4, 0600), -1);
	ck_assert_int_eq(errno, ENAMETOOLONG);
	ck_assert_int_eq(sock_unix_connect(path), -1);
	ck_assert_int_eq(sock_unix_dgram_send(path, "x", 1), -1);
	ck_assert_int_eq(sock_unix_connect(""), -1);
}
END_TEST

START_TEST(test_unix_dgram)
{
	char path[128], got[16];
	struct stat st;
	int fd;

	setup_tmpdir();
	snprintf(path, sizeof(path), "%s/trigger", tmpdir);
	fd = sock_unix_dgram_bind(path, 0622);
	ck_assert_int_ge(fd, 0);
	ck_assert(is_cloexec(fd));
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0622);
	ck_assert_int_eq(sock_unix_dgram_send(path, "W", 1), 0);
	ck_assert_int_eq(recv(fd, got, sizeof(got), 0), 1);
	ck_assert_int_eq(got[0], 'W');
	close(fd);
	/* No receiver: an error, never a hang. */
	unlink(path);
	ck_assert_int_eq(sock_unix_dgram_send(path, "W", 1), -1);
	teardown_tmpdir();
}
END_TEST

START_TEST(test_fd_passing)
{
	int sv[2], p[2], got = -2, nfd = count_fds();
	char buf[8] = "";

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(sock_send_fd(sv[0], p[1], "D", 1), 0);
	close(p[1]);
	ck_assert_int_eq(sock_recv_fd(sv[1], &got, buf, sizeof(buf)), 1);
	ck_assert_int_eq(buf[0], 'D');
	ck_assert_int_ge(got, 0);
	ck_assert(is_cloexec(got));
	ck_assert_int_eq(write(got, "via", 3), 3);
	close(got);
	ck_assert_int_eq(read(p[0], buf, sizeof(buf)), 3);
	ck_assert(memcmp(buf, "via", 3) == 0);
	ck_assert_int_eq(read(p[0], buf, sizeof(buf)), 0); /* every write end closed */
	close(p[0]);

	/* No descriptor attached: *fd is -1. */
	ck_assert_int_eq(write(sv[0], "plain", 5), 5);
	got = -2;
	ck_assert_int_eq(sock_recv_fd(sv[1], &got, buf, sizeof(buf)), 5);
	ck_assert_int_eq(got, -1);

	/* EOF. */
	close(sv[0]);
	ck_assert_int_eq(sock_recv_fd(sv[1], &got, buf, sizeof(buf)), 0);
	ck_assert_int_eq(got, -1);
	close(sv[1]);
	ck_assert_int_eq(count_fds(), nfd);

	errno = 0;
	ck_assert_int_eq(sock_send_fd(0, 1, "", 0), -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

static void on_alarm(int sig)
{
	(void)sig;
}

/* A send cut short: more bytes than the socket buffer holds, and a signal
 * while the sender waits for room (the reader raises it once the buffer
 * stopped filling).  sock_send_fd would refuse the short send;
 * sock_send_fd_all finishes it, and the descriptor comes with the first
 * bytes the reader gets, and only with those. */
START_TEST(test_fd_passing_all)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART: the blocked sendmsg returns short */
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	enum { BIG = 1 << 20 };
	int sv[2], p[2], status, nfd = count_fds();
	char *data = malloc(BIG);
	pid_t pid;

	ck_assert_ptr_nonnull(data);
	for (int i = 0; i < BIG; i++)
		data[i] = (char)('a' + i % 23);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		static char in[65536];
		size_t total = 0;
		int got, first = 1, bad = 0;

		close(sv[0]);
		for (int i = 0, last = -1, queued = 0; i < 500; i++, last = queued) {
			if (ioctl(sv[1], FIONREAD, &queued) < 0 || (queued > 0 && queued == last))
				break;
			usleep(10000);
		}
		kill(getppid(), SIGALRM);
		usleep(20000);
		for (;;) {
			ssize_t n = sock_recv_fd(sv[1], &got, in, sizeof(in));
			if (n <= 0)
				break;
			if (first ? got < 0 : got >= 0)
				bad = 1;
			if (got >= 0 && write(got, "F", 1) != 1)
				bad = 1;
			if (got >= 0)
				close(got);
			for (ssize_t k = 0; k < n; k++)
				if (in[k] != (char)('a' + (total + (size_t)k) % 23))
					bad = 1;
			total += (size_t)n;
			first = 0;
		}
		_exit(bad ? 1 : total == BIG ? 0 : 2);
	}
	close(sv[1]);
	ck_assert_int_eq(sock_send_fd_all(sv[0], p[1], data, BIG), 0);
	close(sv[0]);
	close(p[1]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader status %d", status);
	char c = 0;
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	ck_assert_int_eq(c, 'F');
	close(p[0]);
	free(data);
	ck_assert_int_eq(count_fds(), nfd);
}
END_TEST

/* Send n copies of fd in one SCM_RIGHTS message. */
static void send_many(int sock, int fd, int n)
{
	char ctl[CMSG_SPACE(sizeof(int) * 128)];
	struct iovec iov = { .iov_base = "M", .iov_len = 1 };
	struct msghdr msg;
	struct cmsghdr *cm;

	ck_assert_int_le(n, 128);
	memset(&msg, 0, sizeof(msg));
	memset(ctl, 0, sizeof(ctl));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl;
	msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
	for (int i = 0; i < n; i++)
		memcpy(CMSG_DATA(cm) + i * sizeof(int), &fd, sizeof(int));
	ck_assert_int_eq(sendmsg(sock, &msg, 0), 1);
}

START_TEST(test_fd_passing_extra_fds_closed)
{
	int sv[2], p[2], got = -2, nfd;
	char buf[4];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(pipe(p), 0);
	nfd = count_fds();
	send_many(sv[0], p[1], 3);
	close(p[1]);
	ck_assert_int_eq(sock_recv_fd(sv[1], &got, buf, sizeof(buf)), 1);
	ck_assert_int_ge(got, 0);
	/* The kept descriptor replaces our closed p[1]; no extra copy may stay open. */
	ck_assert_int_eq(count_fds(), nfd);
	close(got);
	ck_assert_int_eq(read(p[0], buf, sizeof(buf)), 0); /* the extra copies were closed */
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_fd_passing_ctrunc)
{
	int sv[2], p[2], got = -2, nfd;
	char buf[4];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(pipe(p), 0);
	nfd = count_fds();
	send_many(sv[0], p[1], 64);
	close(p[1]);
	errno = 0;
	ck_assert_int_eq(sock_recv_fd(sv[1], &got, buf, sizeof(buf)), -1);
	ck_assert_int_eq(errno, EMSGSIZE);
	ck_assert_int_eq(got, -1);
	ck_assert_int_eq(count_fds(), nfd - 1);
	ck_assert_int_eq(read(p[0], buf, sizeof(buf)), 0);
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(test_write_all_and_flags)
{
	int p[2], fl;
	static char big[200000];
	char sink[65536];
	size_t total = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	memset(big, 'b', sizeof(big));
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		_exit(write_all(p[1], big, sizeof(big)) == 0 ? 0 : 1);
	}
	close(p[1]);
	for (;;) {
		ssize_t r = read(p[0], sink, sizeof(sink));

		ck_assert_int_ge(r, 0);
		if (r == 0)
			break;
		total += (size_t)r;
	}
	ck_assert_uint_eq(total, sizeof(big));
	ck_assert_int_eq(fd_set_nonblock(p[0], 1), 0);
	fl = fcntl(p[0], F_GETFL);
	ck_assert(fl & O_NONBLOCK);
	ck_assert_int_eq(fd_set_nonblock(p[0], 0), 0);
	fl = fcntl(p[0], F_GETFL);
	ck_assert(!(fl & O_NONBLOCK));
	ck_assert_int_eq(fd_set_cloexec(p[0]), 0);
	ck_assert(is_cloexec(p[0]));
	close(p[0]);
	ck_assert_int_eq(fd_set_cloexec(p[0]), -1);
	ck_assert_int_eq(fd_set_nonblock(p[0], 1), -1);
	ck_assert_int_eq(write_all(p[0], "x", 1), -1);
}
END_TEST

START_TEST(test_addr_text)
{
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(25) };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(587) };
	struct sockaddr_un su = { .sun_family = AF_UNIX };
	char ip[INET6_ADDRSTRLEN], small[4];
	int port = -1;

	inet_pton(AF_INET, "192.0.2.1", &s4.sin_addr);
	sock_addr_text((struct sockaddr *)&s4, sizeof(s4), ip, sizeof(ip), &port);
	ck_assert_str_eq(ip, "192.0.2.1");
	ck_assert_int_eq(port, 25);
	inet_pton(AF_INET6, "2001:db8::1", &s6.sin6_addr);
	sock_addr_text((struct sockaddr *)&s6, sizeof(s6), ip, sizeof(ip), &port);
	ck_assert_str_eq(ip, "2001:db8::1");
	ck_assert_int_eq(port, 587);
	inet_pton(AF_INET6, "::ffff:198.51.100.7", &s6.sin6_addr);
	sock_addr_text((struct sockaddr *)&s6, sizeof(s6), ip, sizeof(ip), &port);
	ck_assert_str_eq(ip, "198.51.100.7");
	sock_addr_text((struct sockaddr *)&su, sizeof(su), ip, sizeof(ip), &port);
	ck_assert_str_eq(ip, "unix");
	ck_assert_int_eq(port, 0);
	/* Too short a length for the family: not read past. */
	sock_addr_text((struct sockaddr *)&s6, 8, ip, sizeof(ip), NULL);
	ck_assert_str_eq(ip, "unknown");
	/* Too small an output: empty, never a truncated address. */
	sock_addr_text((struct sockaddr *)&s4, sizeof(s4), small, sizeof(small), NULL);
	ck_assert_str_eq(small, "");
}
END_TEST

static Suite *sock_suite(void)
{
	Suite *s = suite_create("sock");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_split_good);
	tcase_add_test(tc, test_split_bad);
	tcase_add_test(tc, test_split_sizes);
	tcase_add_test(tc, test_tcp_listen_v4);
	tcase_add_test(tc, test_tcp_listen_v6);
	tcase_add_test(tc, test_tcp_listen_any);
	tcase_add_test(tc, test_tcp_listen_bad);
	tcase_add_test(tc, test_unix_stream);
	tcase_add_test(tc, test_unix_path_too_long);
	tcase_add_test(tc, test_unix_dgram);
	tcase_add_test(tc, test_fd_passing);
	tcase_add_test(tc, test_fd_passing_extra_fds_closed);
	tcase_add_test(tc, test_fd_passing_ctrunc);
	tcase_add_test(tc, test_fd_passing_all);
	tcase_add_test(tc, test_write_all_and_flags);
	tcase_add_test(tc, test_addr_text);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sock_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
