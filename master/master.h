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

struct scoreboard;

enum service_kind {
	SVC_PREFORK, /* a pool of accepting children */
	SVC_SINGLE   /* exactly one process that owns its socket (the queue manager) */
};

#define MAX_SERVICES 64

struct service {
	/* from the table (master_services.c) */
	char name[32];     /* "smtp", "qmgr", "local", "send" */
	char type[8];      /* inet, unix, dgram */
	char program[32];  /* file in daemon_directory */
	char listen[300];  /* host:port or socket path */
	enum service_kind kind;
	char user[64];
	uid_t uid;
	gid_t gid;
	int chroot;
	int min_idle;
	int process_limit;
	long long max_use;
	long long max_idle;
	/* run-time state (master.c) */
	int in_use;        /* a slot of the table */
	int retired;       /* gone from the config: no new children, closed when empty */
	int listen_fd;
	int status_rd, status_wr; /* status pipe (prefork only) */
	int nproc;         /* children of every generation */
	int nidle;         /* idle children of the current generation */
	int all_busy_warned;
	int fast_exits;        /* consecutive quick abnormal exits */
	time_t throttle_until; /* no forks before this */
	/* smtpd services: which client each child serves, for the per-client
	 * connection cap (common/scoreboard.h); NULL for the others.  Kept
	 * across reloads with the socket, so old sessions go on counting. */
	struct scoreboard *sb;
};

struct child {
	pid_t pid;
	struct service *svc;
	int idle;
	int generation; /* the config it was started with; older ones retire */
	time_t started;
	int slot;       /* its slot in svc->sb, or -1 */
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
/* Parse cf's service table (or build the built-in one) into t[MAX_SERVICES];
 * returns the count, or -1 with "file:line: reason" in err. */
int services_parse(struct service *t, char *err, size_t errsize);
int service_bind(struct service *s, uid_t owner_uid, gid_t owner_gid);
/* gid of setgid_group (issue 8), or fallback when the group does not exist. */
gid_t submit_group_gid(gid_t fallback);
void service_close(struct service *s);
int service_same_socket(const struct service *a, const struct service *b);
/* master_spawn.c */
/* slot: the child's scoreboard slot (s->sb), or -1 for none. */
pid_t spawn_child(struct service *s, const struct master_opts *o, int slot);
/* master_dev.c: write the development config into dir; returns its path (static). */
const char *dev_config_write(const char *dir);
/* master.c */
int master_run(const struct master_opts *o);

#endif
