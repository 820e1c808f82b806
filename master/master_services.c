/*
 * master_services — the service table and its sockets.
 *
 * The table comes from repeatable "service" lines in tern.conf:
 *
 *   service = NAME TYPE LISTEN PROGRAM [option=value]...
 *     TYPE     inet (TCP, LISTEN is host:port, [v6]:port or :port),
 *              unix (stream socket; LISTEN is a path, relative to
 *              queue_directory unless absolute),
 *              dgram (the queue manager's trigger socket: one process)
 *     options  user=NAME       user the program runs as (default mail_owner;
 *                              root only for local, which needs it)
 *              chroot=yes|no   chroot into queue_directory (default no)
 *              process_limit=N (default default_process_limit)
 *              min_idle=N      idle processes kept ready (default 1)
 *              max_use=N       connections per process (default max_use)
 *              max_idle=TIME   idle lifetime of a process (default max_idle)
 *
 * Without any service line the built-in table applies: one smtp service per
 * smtpd_listen address (min_idle = smtpd_min_idle), the queue manager,
 * local (as root) and send.  Errors name the file and line.
 *
 * Every socket is bound here, once, by the master: TCP listeners before
 * any privilege is given up (port 25), Unix sockets inside the 0700
 * private/ directory, owned by mail_owner.  On reload, a service whose
 * name, type and address are unchanged keeps its socket, so no connection
 * waiting in the listen queue is lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "master.h"
#include "privs.h"
#include "proto_deliver.h"
#include "proto_pickup.h"
#include "proto_trigger.h"
#include "scoreboard.h"
#include "sock.h"
#include "strutil.h"
#include "xalloc.h"

#define LISTEN_BACKLOG 128

/* Parse "N" into *out within [lo, hi]. */
static int opt_num(const char *v, long long lo, long long hi, long long *out)
{
	unsigned long long n;

	if (parse_ull(v, (unsigned long long)hi, &n) < 0 || (long long)n < lo)
		return -1;
	*out = (long long)n;
	return 0;
}

/* Parse a time such as 100s, 5m, 1h (bare numbers are seconds). */
static int opt_time(const char *v, long long *out)
{
	char num[32];
	size_t n = strlen(v);
	long long mult = 1;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, v, n + 1);
	switch (num[n - 1]) {
	case 's': num[n - 1] = 0; break;
	case 'm': mult = 60; num[n - 1] = 0; break;
	case 'h': mult = 3600; num[n - 1] = 0; break;
	case 'd': mult = 86400; num[n - 1] = 0; break;
	default: break;
	}
	if (opt_num(num, 1, 100LL * 86400, out) < 0)
		return -1;
	*out *= mult;
	return 0;
}

static void defaults_for(struct service *s)
{
	s->process_limit = s->kind == SVC_SINGLE ? 1 : (int)cf.default_process_limit;
	s->min_idle = 1;
	s->max_use = cf.max_use;
	s->max_idle = cf.max_idle;
	str_copy(s->user, sizeof(s->user), cf.mail_owner);
}

static int set_option(struct service *s, const char *opt, char *why, size_t whysize)
{
	const char *eq = strchr(opt, '=');
	const char *v = eq ? eq + 1 : "";
	size_t klen = eq ? (size_t)(eq - opt) : strlen(opt);
	long long n;

#define IS(name) (klen == strlen(name) && strncmp(opt, name, klen) == 0)
	if (!eq) {
		snprintf(why, whysize, "option \"%.64s\" is not name=value", opt);
		return -1;
	}
	if (IS("user")) {
		if (str_copy(s->user, sizeof(s->user), v) < 0 || !*v) {
			snprintf(why, whysize, "bad user \"%.64s\"", v);
			return -1;
		}
	} else if (IS("chroot")) {
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
			snprintf(why, whysize, "chroot must be yes or no");
			return -1;
		}
		s->chroot = v[0] == 'y';
	} else if (IS("process_limit") && opt_num(v, 1, 10000, &n) == 0) {
		s->process_limit = (int)n;
	} else if (IS("min_idle") && opt_num(v, 0, 10000, &n) == 0) {
		s->min_idle = (int)n;
	} else if (IS("max_use") && opt_num(v, 1, 1000000, &n) == 0) {
		s->max_use = n;
	} else if (IS("max_idle") && opt_time(v, &n) == 0) {
		s->max_idle = n;
	} else {
		snprintf(why, whysize, "bad option \"%.64s\"", opt);
		return -1;
	}
#undef IS
	return 0;
}

/* Parse one "service" value into s.  -1 with the reason in why. */
static int parse_service(const char *value, struct service *s, char *why, size_t whysize)
{
	const char *p = value;
	char name[32], type[16], listen[300], program[32], opt[128];
	int r;

	memset(s, 0, sizeof(*s));
	if (list_next(&p, name, sizeof(name)) != 1 || list_next(&p, type, sizeof(type)) != 1 ||
	    list_next(&p, listen, sizeof(listen)) != 1 || list_next(&p, program, sizeof(program)) != 1) {
		snprintf(why, whysize, "expected NAME TYPE LISTEN PROGRAM [option=value]...");
		return -1;
	}
	if (strcmp(type, "inet") == 0 || strcmp(type, "unix") == 0)
		s->kind = SVC_PREFORK;
	else if (strcmp(type, "dgram") == 0)
		s->kind = SVC_SINGLE;
	else {
		snprintf(why, whysize, "unknown service type \"%s\" (inet, unix or dgram)", type);
		return -1;
	}
	if (strchr(program, '/') || program[0] == '.') {
		snprintf(why, whysize, "program \"%s\" must be a file name in daemon_directory", program);
		return -1;
	}
	str_copy(s->name, sizeof(s->name), name);
	str_copy(s->type, sizeof(s->type), type);
	str_copy(s->program, sizeof(s->program), program);
	str_copy(s->listen, sizeof(s->listen), listen);
	defaults_for(s);
	while ((r = list_next(&p, opt, sizeof(opt))) != 0) {
		if (r < 0) {
			snprintf(why, whysize, "option too long");
			return -1;
		}
		if (set_option(s, opt, why, whysize) < 0)
			return -1;
	}
	if (s->min_idle > s->process_limit)
		s->min_idle = s->process_limit;
	/* Without root every process runs as us and user= cannot apply. */
	if (getuid() == 0 && privs_lookup_user(s->user, &s->uid, &s->gid) < 0) {
		snprintf(why, whysize, "user \"%s\" does not exist", s->user);
		return -1;
	}
	return 0;
}

static int add_builtin(struct service *t, int n, const char *value)
{
	char why[256];

	if (parse_service(value, &t[n], why, sizeof(why)) < 0)
		log_fatal("built-in service \"%s\": %s", value, why);
	return n + 1;
}

/* The table used when tern.conf has no service line. */
static int builtin_table(struct service *t)
{
	const char *p = cf.smtpd_listen;
	char addr[300], line[512];
	int n = 0, r;

	while ((r = list_next(&p, addr, sizeof(addr))) != 0 && n < MAX_SERVICES - 4) {
		if (r < 0)
			log_fatal("smtpd_listen: entry too long");
		snprintf(line, sizeof(line), "smtp inet %s smtpd min_idle=%lld", addr, cf.smtpd_min_idle);
		n = add_builtin(t, n, line);
	}
	/* Issue 9: submission (587) and smtps (465) run smtpd too; smtpd tells
	 * them apart by its socket's address (smtpd/smtpd_tls.c).  Empty = none. */
	for (int k = 0; k < 2; k++) {
		p = k == 0 ? cf.submission_listen : cf.smtps_listen;
		while ((r = list_next(&p, addr, sizeof(addr))) != 0 && n < MAX_SERVICES - 4) {
			if (r < 0)
				log_fatal("%s: entry too long", k == 0 ? "submission_listen" : "smtps_listen");
			snprintf(line, sizeof(line), "%s inet %s smtpd", k == 0 ? "submission" : "smtps", addr);
			n = add_builtin(t, n, line);
		}
	}
	n = add_builtin(t, n, "qmgr dgram " TRIGGER_SOCKET " qmgr");
	n = add_builtin(t, n, "local unix " DELIVER_SOCKET_LOCAL " local user=root");
	n = add_builtin(t, n, "send unix " DELIVER_SOCKET_SEND " send");
	n = add_builtin(t, n, "pickup dgram " PICKUP_SOCKET " pickup");
	return n;
}

int services_parse(struct service *t, char *err, size_t errsize)
{
	char why[256];
	size_t i;
	int n = 0, j;

	if (cf.service.n == 0)
		return builtin_table(t);
	for (i = 0; i < cf.service.n; i++) {
		if (n >= MAX_SERVICES) {
			snprintf(err, errsize, "%s:%d: too many services (max %d)", conf_file(), cf.service.v[i].line,
				 MAX_SERVICES);
			return -1;
		}
		if (parse_service(cf.service.v[i].value, &t[n], why, sizeof(why)) < 0) {
			snprintf(err, errsize, "%s:%d: service: %s", conf_file(), cf.service.v[i].line, why);
			return -1;
		}
		for (j = 0; j < n; j++) {
			if (strcmp(t[j].name, t[n].name) == 0 && strcmp(t[j].listen, t[n].listen) == 0) {
				snprintf(err, errsize, "%s:%d: service %s %s defined twice", conf_file(),
					 cf.service.v[i].line, t[n].name, t[n].listen);
				return -1;
			}
		}
		n++;
	}
	return n;
}

/* Absolute path of a Unix service socket. */
static void socket_path(const struct service *s, char *out, size_t size)
{
	if (s->listen[0] == '/')
		str_copy(out, size, s->listen);
	else if (snprintf(out, size, "%s/%s", cf.queue_directory, s->listen) >= (int)size)
		log_fatal("service %s: socket path too long", s->name);
}

/* The gid of setgid_group, or fallback when that group does not exist
 * (local submission by other users then fails with EACCES, as documented). */
gid_t submit_group_gid(gid_t fallback)
{
	struct group *gr = getgrnam(cf.setgid_group);

	return gr ? gr->gr_gid : fallback;
}

/* Bind s's socket; -1 with errno on failure. */
int service_bind(struct service *s, uid_t owner_uid, gid_t owner_gid)
{
	char path[4096];
	int p[2];

	if (strcmp(s->type, "inet") == 0) {
		s->listen_fd = sock_tcp_listen(s->listen, LISTEN_BACKLOG);
	} else {
		socket_path(s, path, sizeof(path));
		/* Sockets under public/ (pickup) take datagrams from the setgid
		 * postdrop: group setgid_group may write (issue 8). */
		int pub = strncmp(s->listen, "public/", 7) == 0;
		mode_t mode = pub ? 0620 : 0600;
		gid_t gid = pub ? submit_group_gid(owner_gid) : owner_gid;

		s->listen_fd = strcmp(s->type, "dgram") == 0 ? sock_unix_dgram_bind(path, mode)
							      : sock_unix_listen(path, LISTEN_BACKLOG, mode);
		if (s->listen_fd >= 0 && getuid() == 0 && (chown(path, owner_uid, gid) < 0 || chmod(path, mode) < 0)) {
			close(s->listen_fd);
			s->listen_fd = -1;
		}
	}
	if (s->listen_fd < 0)
		return -1;
	if (s->kind == SVC_PREFORK) {
		/* Children poll then accept; whoever loses the race must get
		 * EAGAIN, not block. */
		if (fd_set_nonblock(s->listen_fd, 1) < 0 || pipe2(p, O_CLOEXEC) < 0)
			return -1;
		s->status_rd = p[0];
		s->status_wr = p[1];
		if (fd_set_nonblock(s->status_rd, 1) < 0)
			return -1;
	} else {
		s->status_rd = s->status_wr = -1;
	}
	return 0;
}

void service_close(struct service *s)
{
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->status_rd >= 0)
		close(s->status_rd);
	if (s->status_wr >= 0)
		close(s->status_wr);
	s->listen_fd = s->status_rd = s->status_wr = -1;
	sb_free(s->sb);
	s->sb = NULL;
}

int service_same_socket(const struct service *a, const struct service *b)
{
	return strcmp(a->name, b->name) == 0 && strcmp(a->type, b->type) == 0 && strcmp(a->listen, b->listen) == 0;
}
