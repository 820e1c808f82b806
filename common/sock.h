/*
 * sock — Unix-socket, TCP-listener and descriptor-passing helpers.
 *
 * All functions return -1 with errno set on failure and never exit; the
 * caller decides whether that is fatal.  Every descriptor they create is
 * close-on-exec.
 */
#ifndef TERN_SOCK_H
#define TERN_SOCK_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Bind and listen on a Unix stream socket at path (an old socket file is
 * removed first), with the given mode for the socket file. */
int sock_unix_listen(const char *path, int backlog, mode_t mode);
/* Bind a Unix datagram socket at path (for one-way triggers). */
int sock_unix_dgram_bind(const char *path, mode_t mode);
/* Connect a stream socket to path. */
int sock_unix_connect(const char *path);
/* Send one datagram to the Unix datagram socket at path without blocking;
 * a full or missing receiver is an error the caller may ignore. */
int sock_unix_dgram_send(const char *path, const void *p, size_t n);

/* Parse "host:port", "[v6addr]:port" or ":port" (all addresses) and listen
 * on TCP with SO_REUSEADDR.  For a literal IPv6 address IPV6_V6ONLY is set. */
int sock_tcp_listen(const char *hostport, int backlog);
/* Split "host:port"/"[host]:port" into host (brackets removed) and port.
 * 0 on success, -1 on a malformed or over-long string. */
int sock_split_hostport(const char *s, char *host, size_t hostsize, char *port, size_t portsize);

/* Send n bytes (n >= 1) with the descriptor fd attached via SCM_RIGHTS. */
int sock_send_fd(int sock, int fd, const void *p, size_t n);
/* The same on a stream socket whose reader frames the bytes itself: a short
 * send (a signal, a full socket buffer) is finished with write_all, the
 * descriptor having gone with the first part.  0 or -1. */
int sock_send_fd_all(int sock, int fd, const void *p, size_t n);
/* Receive up to n bytes; when a descriptor is attached it is stored in *fd
 * (made close-on-exec), otherwise *fd is -1.  Any extra descriptors are
 * closed.  Returns bytes received (0 at EOF) or -1.  When the kernel had to
 * drop descriptors (MSG_CTRUNC) the message is unusable: every descriptor
 * that did arrive is closed and -1 is returned with errno EMSGSIZE. */
ssize_t sock_recv_fd(int sock, int *fd, void *p, size_t n);

/* write() all n bytes, retrying EINTR and short writes; 0 or -1. */
int write_all(int fd, const void *p, size_t n);
/* Set or clear O_NONBLOCK; 0 or -1. */
int fd_set_nonblock(int fd, int on);
int fd_set_cloexec(int fd);

/* Printable address of a socket address: ip[ipsize] gets the address text
 * (IPv4-mapped IPv6 shown as IPv4, "unix" for AF_UNIX, "unknown" otherwise;
 * "" if it does not fit, INET6_ADDRSTRLEN always does), *port (if non-NULL)
 * the port or 0. */
void sock_addr_text(const struct sockaddr *sa, socklen_t len, char *ip, size_t ipsize, int *port);

#endif
