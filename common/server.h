/*
 * server — the skeleton every tern daemon plugs into.
 *
 * daemon_init parses the arguments the master passes (see proto_master.h:
 * -c CONFIG, -o key=value, -f, -v), loads the configuration (fatal on error,
 * with file:line), opens the log under "SYSLOG_NAME/NAME", ignores SIGPIPE
 * and, when started as root, drops to mail_owner through privs_drop.  It is used by the single-process daemons (the queue manager) and
 * by server_prefork.
 *
 * server_prefork is the main loop of a prefork service (smtpd, local, send):
 * it accepts connections on MASTER_LISTEN_FD, reports idle/busy to the
 * master on MASTER_STATUS_FD, calls serve() for each connection (then closes
 * it), and exits after max_use connections, after max_idle seconds without
 * one, on SIGTERM, or when the master goes away.  A daemon's main() is then:
 *
 *     int main(int argc, char **argv) {
 *         daemon_init(argc, argv, "smtpd");
 *         ... drop privileges, open tables ...
 *         server_prefork(smtpd_serve);
 *     }
 */
#ifndef TERN_SERVER_H
#define TERN_SERVER_H

#include <sys/socket.h>

struct daemon_args {
	const char *name;        /* "smtpd" */
	const char *config_path; /* -c */
	int foreground;          /* -f: log to stderr */
	int verbose;             /* -v */
	const char *user;        /* -u: the user to become (default mail_owner) */
	int chroot;              /* -r: chroot into queue_directory when dropping root */
};

extern struct daemon_args daemon_args;

void daemon_init(int argc, char **argv, const char *name);
/* The same, but keeps root (only the local agent, which becomes each
 * recipient itself).  Every other daemon drops to mail_owner in daemon_init. */
void daemon_init_privileged(int argc, char **argv, const char *name);
/* After daemon_init_privileged: give up root now (smtpd reads its TLS key
 * as root first, so the key file need not be readable by mail_owner). */
void daemon_drop_privileges(void);

/* Called with the accepted connection (closed by the skeleton afterwards)
 * and the peer's address. */
typedef void (*server_serve_fn)(int fd, const struct sockaddr *peer, socklen_t peerlen);

__attribute__((noreturn)) void server_prefork(server_serve_fn serve);
/* The same, accepting with extra accept4() flags (SOCK_NONBLOCK: a service
 * that works non-blocking saves two fcntl() calls per connection). */
__attribute__((noreturn)) void server_prefork_flags(server_serve_fn serve, int accept_flags);

/* Set by SIGTERM (stop) and SIGHUP (the master reloads: retire); a child
 * finishes the connection or delivery in progress and exits.  Long-running
 * loops poll it. */
extern volatile int server_terminating;

#endif
