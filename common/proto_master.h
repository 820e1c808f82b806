/*
 * proto_master — what a child process inherits from the master, and the
 * status messages it sends back.
 *
 * Every service child is started with:
 *   fd 0,1,2  /dev/null (or the master's stderr in foreground mode: fd 2)
 *   fd 3      MASTER_LISTEN_FD: the service's listening socket (TCP or Unix
 *             stream), or for the queue manager its trigger datagram socket
 *   fd 4      MASTER_STATUS_FD: write end of the service's status pipe
 *   fd 5      MASTER_SCOREBOARD_FD: smtpd services only: the service's
 *             scoreboard (common/scoreboard.h), a sealed memfd shared by all
 *             its children, where each one shows which client it serves so
 *             any of them can count a client's sessions (the per-client
 *             connection cap); absent (closed) for every other service
 * and the arguments: PROGRAM -c CONFIG [-o key=value]... [-f] [-v]
 * With fd 5 the environment also holds MASTER_SCOREBOARD_ENV=N, the index
 * of the child's own slot (decimal, below the region's slot count); the
 * master clears that slot when it reaps the child, whatever the exit.
 *   -f  log to stderr instead of syslog (foreground / development mode)
 *   -v  verbose logging
 *
 * A prefork child writes one struct master_status (atomically: it is smaller
 * than PIPE_BUF) when it starts waiting for a connection (MASTER_IDLE) and
 * right after it accepted one (MASTER_BUSY).  The master counts idle
 * children per service and forks more while fewer than the minimum are idle
 * and the process limit allows.  A child exits by itself after max_use
 * connections or max_idle seconds without one; the master just reaps it.
 *
 * On SIGTERM a child finishes nothing: it exits at once.  Work that was not
 * acknowledged (no 250, no delivery result) is redone by its peer, which is
 * how tern stays safe against kill -9 anyway.
 */
#ifndef TERN_PROTO_MASTER_H
#define TERN_PROTO_MASTER_H

#include <sys/types.h>

#define MASTER_LISTEN_FD 3
#define MASTER_STATUS_FD 4
#define MASTER_SCOREBOARD_FD 5
#define MASTER_SCOREBOARD_ENV "TERN_SCOREBOARD_SLOT"

enum master_state { MASTER_IDLE = 1, MASTER_BUSY = 2 };

struct master_status {
	pid_t pid;
	int state; /* enum master_state */
};

#endif
