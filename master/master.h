/*
 * master.h — the supervisor's internal interfaces.
 *
 * The master reads the configuration, creates the queue directories, binds
 * every listening socket once, and keeps each service's processes running:
 * prefork pools for smtpd, local and send (children accept on the inherited
 * socket and report idle/busy on a status pipe, see proto_master.h) and one
 * queue manager.  It never parses network or queue input.
 */
#ifndef TERN_MASTER_H
#define TERN_MASTER_H

#include <sys/types.h>
#include <time.h>

enum service_kind {
	SVC_PREFORK, /* a pool of accepting children */
	SVC_SINGLE   /* exactly one process that owns its socket (the queue manager) */
};

struct service {
	char name[32];     /* "smtp", "qmgr", "local", "send" */
	char program[32];  /* file in daemon_directory */
	enum service_kind kind;
	char listen[300];  /* host:port or socket path, for logs */
	int listen_fd;
	int status_rd, status_wr; /* status pipe (prefork only) */
	int min_idle;
	int process_limit;
	int as_root;       /* keeps root (local: becomes each recipient itself) */
	int nproc, nidle;
	int all_busy_warned;
	int fast_exits;        /* consecutive quick abnormal exits */
	time_t throttle_until; /* no forks before this */
};

struct child {
	pid_t pid;
	struct service *svc;
	int idle;
	time_t started;
};

struct master_opts {
	const char *config_path;
	char **overrides; /* "key=value" from -o, argv-owned */
	int noverrides;
	int foreground;
	int verbose;
	const char *dev_dir;
};

/* master_services.c */
int services_setup(struct service **svcs, int *nsvc, uid_t owner_uid, gid_t owner_gid);
/* master_spawn.c */
pid_t spawn_child(struct service *s, const struct master_opts *o);
/* master_dev.c: write the development config into dir; returns its path (static). */
const char *dev_config_write(const char *dir);
/* master.c */
int master_run(const struct master_opts *o);

#endif
