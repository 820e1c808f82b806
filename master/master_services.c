/*
 * master_services — the service table and its sockets.
 *
 * For now the table is fixed (one smtp service per smtpd_listen address,
 * the queue manager, local, send); the ports, limits and pool sizes come
 * from tern.conf.  Every socket is bound here, once, by the master: TCP
 * listeners before privileges are dropped (port 25), Unix sockets inside
 * the 0700 private/ directory, owned by mail_owner so only tern's own
 * processes can connect.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "master.h"
#include "proto_deliver.h"
#include "proto_trigger.h"
#include "qfile.h"
#include "sock.h"
#include "strutil.h"
#include "xalloc.h"

#define LISTEN_BACKLOG 128
#define MAX_SERVICES 64

static struct service *add_service(struct service *t, int *n, const char *name, const char *program,
				   enum service_kind kind)
{
	struct service *s;

	if (*n >= MAX_SERVICES)
		log_fatal("too many services");
	s = &t[(*n)++];
	memset(s, 0, sizeof(*s));
	str_copy(s->name, sizeof(s->name), name);
	str_copy(s->program, sizeof(s->program), program);
	s->kind = kind;
	s->listen_fd = s->status_rd = s->status_wr = -1;
	s->process_limit = kind == SVC_SINGLE ? 1 : (int)cf.default_process_limit;
	s->min_idle = kind == SVC_SINGLE ? 1 : 1;
	return s;
}

static void bind_unix(struct service *s, const char *rel, int dgram, uid_t uid, gid_t gid)
{
	if (snprintf(s->listen, sizeof(s->listen), "%s/%s", cf.queue_directory, rel) >= (int)sizeof(s->listen))
		log_fatal("queue_directory too long");
	s->listen_fd = dgram ? sock_unix_dgram_bind(s->listen, 0600) : sock_unix_listen(s->listen, LISTEN_BACKLOG, 0600);
	if (s->listen_fd < 0)
		log_fatal("service %s: bind %s: %s", s->name, s->listen, strerror(errno));
	if (getuid() == 0 && chown(s->listen, uid, gid) < 0)
		log_fatal("chown %s: %s", s->listen, strerror(errno));
}

static void make_status_pipe(struct service *s)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		log_fatal("pipe: %s", strerror(errno));
	s->status_rd = p[0];
	s->status_wr = p[1];
	if (fd_set_nonblock(s->status_rd, 1) < 0)
		log_fatal("status pipe: %s", strerror(errno));
}

int services_setup(struct service **svcs, int *nsvc, uid_t owner_uid, gid_t owner_gid)
{
	struct service *t = xcalloc(MAX_SERVICES, sizeof(*t));
	struct service *s;
	const char *p = cf.smtpd_listen;
	char addr[300];
	int n = 0, r;

	while ((r = list_next(&p, addr, sizeof(addr))) != 0) {
		if (r < 0)
			log_fatal("smtpd_listen: entry too long");
		s = add_service(t, &n, "smtp", "smtpd", SVC_PREFORK);
		str_copy(s->listen, sizeof(s->listen), addr);
		s->listen_fd = sock_tcp_listen(addr, LISTEN_BACKLOG);
		if (s->listen_fd < 0)
			log_fatal("service smtp: listen on %s: %s", addr, strerror(errno));
		s->min_idle = (int)cf.smtpd_min_idle;
	}

	s = add_service(t, &n, "qmgr", "qmgr", SVC_SINGLE);
	bind_unix(s, TRIGGER_SOCKET, 1, owner_uid, owner_gid);

	s = add_service(t, &n, "local", "local", SVC_PREFORK);
	bind_unix(s, DELIVER_SOCKET_LOCAL, 0, owner_uid, owner_gid);
	s->as_root = 1;

	s = add_service(t, &n, "send", "send", SVC_PREFORK);
	bind_unix(s, DELIVER_SOCKET_SEND, 0, owner_uid, owner_gid);

	for (r = 0; r < n; r++) {
		s = &t[r];
		if (s->kind == SVC_PREFORK) {
			/* Children poll then accept; whoever loses the race
			 * must get EAGAIN, not block. */
			if (fd_set_nonblock(s->listen_fd, 1) < 0)
				log_fatal("listener: %s", strerror(errno));
			make_status_pipe(s);
		}
		if (s->min_idle > s->process_limit)
			s->min_idle = s->process_limit;
	}
	*svcs = t;
	*nsvc = n;
	return 0;
}
