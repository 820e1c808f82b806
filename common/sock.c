/*
 * sock — sockets: Unix listeners and datagrams, TCP listeners, fd passing.
 *
 * Public: sock_unix_listen, sock_unix_dgram_bind, sock_unix_connect,
 * sock_unix_dgram_send, sock_tcp_listen, sock_split_hostport, sock_send_fd,
 * sock_send_fd_all, sock_recv_fd, write_all, fd_set_nonblock, fd_set_cloexec, sock_addr_text.
 *
 * Errors: every function returns -1 with errno set and never exits; the
 * caller knows whether a failure is fatal.  Every descriptor created here is
 * close-on-exec from birth (SOCK_CLOEXEC, MSG_CMSG_CLOEXEC), so no window
 * exists in which a concurrent fork+exec could inherit it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sock.h"
#include "strutil.h"

/* More descriptors than any tern message carries; beyond this MSG_CTRUNC is reported. */
#define SOCK_MAX_FDS 8

/* Fill a sockaddr_un; -1 (ENAMETOOLONG) when path does not fit. */
static int sock_unix_addr(struct sockaddr_un *sun, const char *path)
{
	size_t n = strlen(path);

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (n == 0 || n >= sizeof(sun->sun_path)) {
		errno = n == 0 ? EINVAL : ENAMETOOLONG;
		return -1;
	}
	memcpy(sun->sun_path, path, n + 1);
	return 0;
}

/* Create and bind a Unix socket of the given type, the socket file getting mode. */
static int sock_unix_bind(const char *path, int type, mode_t mode)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd, r, saved;

	if (sock_unix_addr(&sun, path) < 0)
		return -1;
	if ((fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (unlink(path) < 0 && errno != ENOENT)
		goto fail;
	/* The umask closes the window between bind and chmod in which the socket is too open. */
	old = umask((mode_t)(~mode & 0777));
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || chmod(path, mode) < 0)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int sock_unix_listen(const char *path, int backlog, mode_t mode)
{
	int fd = sock_unix_bind(path, SOCK_STREAM, mode);
	int saved;

	if (fd < 0)
		return -1;
	if (listen(fd, backlog) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int sock_unix_dgram_bind(const char *path, mode_t mode)
{
	return sock_unix_bind(path, SOCK_DGRAM, mode);
}

int sock_unix_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd, saved;

	if (sock_unix_addr(&sun, path) < 0)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* One unbound datagram socket per process serves every send: a receiver
 * that wakes the queue manager once per message saves a socket() and a
 * close() each time.  Shared with a forked child, it is still only a way
 * to send. */
static int dgram_fd = -1;

int sock_unix_dgram_send(const char *path, const void *p, size_t n)
{
	struct sockaddr_un sun;
	ssize_t r;

	if (sock_unix_addr(&sun, path) < 0)
		return -1;
	if (dgram_fd < 0 && (dgram_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return -1;
	do
		r = sendto(dgram_fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sun, sizeof(sun));
	while (r < 0 && errno == EINTR);
	return r < 0 ? -1 : 0;
}

/*
 * A port is a decimal number up to 65535 (getaddrinfo would silently wrap
 * larger ones) or a service name: letters, digits, '-'.
 */
static int port_ok(const char *s)
{
	unsigned long long v;
	int digits = 1;

	if (*s == '\0')
		return 0;
	for (const char *p = s; *p != '\0'; p++) {
		char c = *p;

		if (c < '0' || c > '9')
			digits = 0;
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-'))
			return 0;
	}
	return !digits || parse_ull(s, 65535, &v) == 0;
}

int sock_split_hostport(const char *s, char *host, size_t hostsize, char *port, size_t portsize)
{
	const char *h, *colon;
	size_t hlen;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb == s + 1 || rb[1] != ':')
			return -1;
		h = s + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
		if (memchr(h, '[', hlen) != NULL)
			return -1;
	} else {
		colon = strchr(s, ':');
		/* A second colon means an unbracketed IPv6 address: ambiguous, refuse. */
		if (colon == NULL || strchr(colon + 1, ':') != NULL || memchr(s, ']', (size_t)(colon - s)))
			return -1;
		h = s;
		hlen = (size_t)(colon - s);
	}
	if (!port_ok(colon + 1) || hlen >= hostsize || strlen(colon + 1) >= portsize)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memcpy(port, colon + 1, strlen(colon + 1) + 1);
	return 0;
}

/* Socket, options, bind, listen for one address; -1 with errno. */
static int sock_tcp_bind_one(const struct sockaddr *sa, socklen_t len, int v6only, int backlog)
{
	int one = 1, fd, saved;

	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (sa->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
		goto fail;
	if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* ":port": one dual-stack socket on ::, or 0.0.0.0 where IPv6 is unavailable. */
static int sock_tcp_listen_any(const char *port, int backlog)
{
	struct addrinfo hints, *res;
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;
	int fd, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if ((e = getaddrinfo(NULL, port, &hints, &res)) != 0) {
		errno = e == EAI_SYSTEM ? errno : EINVAL;
		return -1;
	}
	memcpy(&s4, res->ai_addr, sizeof(s4));
	freeaddrinfo(res);
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_addr = in6addr_any;
	s6.sin6_port = s4.sin_port;
	fd = sock_tcp_bind_one((struct sockaddr *)&s6, sizeof(s6), 0, backlog);
	if (fd < 0 && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL))
		fd = sock_tcp_bind_one((struct sockaddr *)&s4, sizeof(s4), 0, backlog);
	return fd;
}

int sock_tcp_listen(const char *hostport, int backlog)
{
	char host[256], port[64];
	struct addrinfo hints, *res, *ai;
	int fd = -1, e, saved = EADDRNOTAVAIL;

	if (sock_split_hostport(hostport, host, sizeof(host), port, sizeof(port)) < 0) {
		errno = EINVAL;
		return -1;
	}
	if (host[0] == '\0')
		return sock_tcp_listen_any(port, backlog);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0) {
		errno = e == EAI_SYSTEM ? errno : EADDRNOTAVAIL;
		return -1;
	}
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		fd = sock_tcp_bind_one(ai->ai_addr, ai->ai_addrlen, 1, backlog);
		if (fd < 0)
			saved = errno;
	}
	freeaddrinfo(res);
	if (fd < 0)
		errno = saved;
	return fd;
}

/* One sendmsg of up to n bytes with fd attached: bytes sent, or -1. */
static ssize_t send_with_fd(int sock, int fd, const void *p, size_t n)
{
	union {
		struct cmsghdr hdr;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
	struct msghdr msg;
	struct cmsghdr *cm;
	ssize_t r;

	if (n == 0) {
		errno = EINVAL;
		return -1;
	}
	memset(&msg, 0, sizeof(msg));
	memset(&ctl, 0, sizeof(ctl));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.space;
	msg.msg_controllen = sizeof(ctl.space);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	do
		r = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r;
}

int sock_send_fd(int sock, int fd, const void *p, size_t n)
{
	ssize_t r = send_with_fd(sock, fd, p, n);

	if (r < 0)
		return -1;
	if ((size_t)r != n) {
		/* The descriptor went with a partial message: the peer cannot frame it. */
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

int sock_send_fd_all(int sock, int fd, const void *p, size_t n)
{
	ssize_t r = send_with_fd(sock, fd, p, n);

	if (r < 0)
		return -1;
	return write_all(sock, (const char *)p + r, n - (size_t)r);
}

/* Close every descriptor carried by an SCM_RIGHTS message, except *keep if keep is set. */
static void sock_take_fds(struct msghdr *msg, int *keep)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
		size_t nfd;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len < CMSG_LEN(0))
			continue;
		nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int f;

			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (keep != NULL && *keep < 0)
				*keep = f;
			else
				close(f);
		}
	}
}

ssize_t sock_recv_fd(int sock, int *fd, void *p, size_t n)
{
	union {
		struct cmsghdr hdr;
		char space[CMSG_SPACE(SOCK_MAX_FDS * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = p, .iov_len = n };
	struct msghdr msg;
	ssize_t r;

	*fd = -1;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.space;
	msg.msg_controllen = sizeof(ctl.space);
	do
		r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	if (msg.msg_flags & MSG_CTRUNC) {
		/* Some descriptors were lost in the kernel: the message is unusable. */
		sock_take_fds(&msg, NULL);
		errno = EMSGSIZE;
		return -1;
	}
	sock_take_fds(&msg, fd);
	return r;
}

int write_all(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t r = write(fd, s, n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += r;
		n -= (size_t)r;
	}
	return 0;
}

int fd_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	int want = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	if (want == fl)
		return 0;
	return fcntl(fd, F_SETFL, want) < 0 ? -1 : 0;
}

int fd_set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0 ? -1 : 0;
}

/*
 * IPv4-mapped IPv6 peers (a dual-stack listener) are shown as plain IPv4 so
 * logs and Received: headers name the client the way it connected.  Unix
 * peers are "unix" with port 0; unknown families are "unknown".  Text that
 * does not fit ip[ipsize] (INET6_ADDRSTRLEN always fits) becomes "" rather
 * than a truncated, misleading address.
 */
void sock_addr_text(const struct sockaddr *sa, socklen_t len, char *ip, size_t ipsize, int *port)
{
	char tmp[INET6_ADDRSTRLEN];
	const char *text = "unknown";
	int pt = 0;

	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		if (inet_ntop(AF_INET, &s4->sin_addr, tmp, sizeof(tmp)) != NULL)
			text = tmp;
		pt = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			if (inet_ntop(AF_INET, s6->sin6_addr.s6_addr + 12, tmp, sizeof(tmp)) != NULL)
				text = tmp;
		} else if (inet_ntop(AF_INET6, &s6->sin6_addr, tmp, sizeof(tmp)) != NULL) {
			text = tmp;
		}
		pt = ntohs(s6->sin6_port);
	} else if (sa->sa_family == AF_UNIX) {
		text = "unix";
	}
	if (ipsize > 0) {
		size_t n = strlen(text);

		if (n >= ipsize)
			n = 0;
		memcpy(ip, text, n);
		ip[n] = '\0';
	}
	if (port != NULL)
		*port = pt;
}
