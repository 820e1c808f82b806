/*
 * local.h — internal interfaces of the local delivery agent.
 *
 * The agent serves proto_deliver requests (see common/proto_deliver.h): one
 * request per connection, the queue file's descriptor attached.  For each
 * recipient it
 *
 *   1. resolves the recipient to a destination (local_resolve.c): in
 *      virtual/dev mode (local_mailbox_base set) BASE/USER/Maildir/, in
 *      system mode the user's passwd entry and HOME/home_mailbox (passwd
 *      entries are kept a few seconds, local_pwcache.c);
 *   2. runs the delivery with the destination's identity
 *      (local_deliver.c): in-process when no uid change is needed,
 *      otherwise in a child that drops to the user's uid/gids first;
 *   3. writes the mailbox (maildir.c, mbox.c), runs a command (pipe.c);
 *   4. logs one Postfix-shaped line per recipient (local_serve.c).
 *
 * Between (1) and (2) sits the expansion (local_expand.c): aliases,
 * .forward and :include: files turn one recipient into several
 * destinations; remote addresses among them are queued anew
 * (local_requeue.c).
 */
#ifndef TERN_LOCAL_H
#define TERN_LOCAL_H

#include <limits.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "addr.h"
#include "buf.h"
#include "proto_deliver.h"

/* How long a delivery child may take before it is killed (seconds). */
#define LOCAL_CHILD_TIMEOUT 600
/* How long the queue manager may take to send a request (ms). */
#define LOCAL_REQUEST_TIMEOUT_MS 60000
/* Delivered-To: headers remembered per message; more is a loop by itself. */
#define LOCAL_MAX_DELIVERED_TO 256
/* Read chunk for message content. */
#define LOCAL_CHUNK 65536

/* ---- the message content (local_msg.c) ---- */

/* The content of a queue file: [offset, offset+length) of fd, LF line ends. */
struct local_msg {
	int fd;
	unsigned long long offset;
	unsigned long long length;
	/* Delivered-To: values found in the header (NUL-separated, lower case),
	 * filled by local_msg_scan. */
	struct buf delivered_to;
	size_t n_delivered_to;
	int too_many_delivered_to;
};

void local_msg_init(struct local_msg *m, int fd, unsigned long long offset, unsigned long long length);
void local_msg_free(struct local_msg *m);
/* Read up to n bytes at content position pos (not past the content's end).
 * Returns bytes read, 0 at the end of the content, -1 with errno (EIO when
 * the file is shorter than the request says). */
ssize_t local_msg_pread(const struct local_msg *m, unsigned long long pos, void *p, size_t n);
/* Scan the header section once for Delivered-To: headers.  0 or -1 (read error). */
int local_msg_scan(struct local_msg *m);
/* 1 when the header already carries Delivered-To: rcpt (case-insensitive). */
int local_msg_has_delivered_to(const struct local_msg *m, const char *rcpt);

/* ---- passwd lookups (local_pwcache.c) ---- */

/* Entries of the per-process passwd cache, and how long one is used. */
#define LOCAL_PW_CACHE 16
#define LOCAL_PW_TTL_MS 3000

/* A passwd entry, copied (getpwnam's result is static). */
struct local_pw {
	uid_t uid;
	gid_t gid;
	char name[ADDR_SIZE];
	char dir[PATH_MAX];   /* "" when the entry has none */
	char shell[PATH_MAX]; /* "" when the entry has none */
};

struct passwd;
/*
 * Look user up: from the cache while an entry is younger than
 * LOCAL_PW_TTL_MS, else with getpwnam.  1 with *pw filled, 0 when there is
 * no such user, -1 when the lookup failed (errno set).  Only found users
 * are cached, never a failure nor "no such user".
 */
int local_pw_lookup(const char *user, struct local_pw *pw);
/* Forget every cached entry. */
void local_pw_cache_flush(void);
/* Tests: use lookup and now_ms (milliseconds, monotonic) instead of
 * getpwnam and the monotonic clock (NULL: the real one); flushes. */
void local_pw_set_source(struct passwd *(*lookup)(const char *), long long (*now_ms)(void));

/* ---- identities and destinations (local_resolve.c) ---- */

/* Who a delivery runs as.  switch_user: fork and privs_drop first. */
struct local_ident {
	int switch_user;
	uid_t uid;
	gid_t gid;
	char pw_name[ADDR_SIZE]; /* user for initgroups; "" for none */
	char home[PATH_MAX];     /* working directory of commands; "/" when none */
	char shell[PATH_MAX];
};

enum local_dest_kind {
	LOCAL_DEST_MAILDIR = 1, /* path is a Maildir directory, ending in '/' */
	LOCAL_DEST_MBOX,        /* path is an mbox file (dotlock beside it) */
	LOCAL_DEST_FILE,        /* path is a /file target: mbox format, no dotlock */
	LOCAL_DEST_PIPE         /* path is a command for /bin/sh -c */
};

struct local_dest {
	enum local_dest_kind kind;
	char path[PATH_MAX];
	/* Maildir: path = root + rel; root must exist (except in virtual mode
	 * where it is local_mailbox_base and is created once), the components
	 * of rel are created mode 0700 as the delivering user. */
	size_t root_len;
	int create_root;
	int switch_user;          /* fork and privs_drop(uid, gid) first */
	uid_t uid;
	gid_t gid;
	char pw_name[ADDR_SIZE];  /* user for initgroups; "" for none */
	char user[ADDR_SIZE];     /* lower-cased user part of the recipient */
	char ext[ADDR_SIZE];      /* address extension, "" when none */
	char home[PATH_MAX];      /* commands run here ("/" when none) */
	char shell[PATH_MAX];     /* SHELL for commands */
	char domain[ADDR_SIZE];   /* recipient domain, for commands' DOMAIN */
	const char *orcpt;        /* ORIGINAL_RECIPIENT for commands ("" none) */
};

/*
 * Resolve the recipient address to its own mailbox.  Returns 0 with *d
 * filled, or -1 with rc's result set (perm 5.1.1 unknown user / bad local
 * part, temp when the user cannot be delivered to now).
 */
int local_resolve(const char *address, struct local_dest *d, struct deliver_rcpt *rc);
/* The mailbox of the Unix user pw (already looked up), recipient address. */
int local_resolve_user(const char *address, const struct local_pw *pw, struct local_dest *d,
		       struct deliver_rcpt *rc);
/* Virtual mailbox of address in a virtual_mailbox_domains domain. */
int local_resolve_virtual_mailbox(const char *address, struct local_dest *d, struct deliver_rcpt *rc);
/* Fill id for a Unix user (or default_privs when name is NULL).  0 or -1
 * with rc set (never root). */
int local_ident_user(const char *name, struct local_ident *id, struct deliver_rcpt *rc);
/* Copy the identity into a destination. */
void local_dest_set_ident(struct local_dest *d, const struct local_ident *id);

/* ---- delivery (local_deliver.c, maildir.c, mbox.c, pipe.c) ---- */

/* Deliver msg to d for recipient address rc->address; sets rc's result. */
void local_deliver_dest(const struct local_dest *d, const struct local_msg *msg, const char *sender,
			struct deliver_rcpt *rc);
/*
 * Read a small file as id (in a child when id->switch_user): regular file,
 * not a symlink, owned by id->uid or root, not group/world writable.
 * 1 with the content in out, 0 when absent or refused (reason logged,
 * why set), -1 on a temporary failure (rc set).
 */
int local_read_file_as(const struct local_ident *id, const char *path, struct buf *out, char *why,
		       size_t whysize, struct deliver_rcpt *rc);

/*
 * Write msg into the Maildir described by d (already running as the right
 * user): create the directories, write an unnamed file in tmp/ (or
 * tmp/NAME where that is not possible), fsync, link it to new/NAME, fsync
 * new/.  On any failure nothing is left behind and rc holds a temp result
 * (4.2.2 when the mailbox is full).  Loop detection is the caller's
 * (local_deliver_dest).
 */
void maildir_deliver(const struct local_dest *d, const struct local_msg *msg, const char *sender,
		     const char *rcpt, struct deliver_rcpt *rc);

/* A unique Maildir file name "time.M<usec>P<pid>Q<n>.<host>" into out. 0 or -1. */
int maildir_unique_name(char *out, size_t outsize);

/* Append msg in mbox format (From_ line, >From quoting, blank line) to
 * d->path, locked with fcntl and (LOCAL_DEST_MBOX) a dotlock; on failure
 * the file is truncated back to its size before.  Already the right user. */
void mbox_deliver(const struct local_dest *d, const struct local_msg *msg, const char *sender, const char *rcpt,
		  struct deliver_rcpt *rc);

/* Run d->path with /bin/sh -c, the message on its stdin (already the
 * right user), within command_time_limit. */
void pipe_deliver(const struct local_dest *d, const struct local_msg *msg, const char *sender, const char *rcpt,
		  struct deliver_rcpt *rc);

/* ---- expansion (local_expand.c) and resubmission (local_requeue.c) ---- */

/* Maximum alias/.forward nesting. */
#define LOCAL_EXPAND_DEPTH 20
/* Maximum destinations one recipient expands to. */
#define LOCAL_EXPAND_MAX 1000

/* Expand rc (aliases, .forward, :include:) and deliver every result;
 * sets rc's overall result. */
void local_expand_deliver(const struct deliver_request *r, struct local_msg *msg, struct deliver_rcpt *rc);

/* Queue a new message from sender to the '\n'-separated addresses in rcpts
 * with msg's content, a Delivered-To: rcpt header first; triggers the queue
 * manager.  0 with the new queue ID in qid[QUEUEID_SIZE], or -1 (why set). */
int local_requeue(const struct deliver_request *r, const struct local_msg *msg, const char *sender,
		  const char *rcpt, const char *rcpts, char *qid, char *why, size_t whysize);

/* Timeout for a delivery child, seconds (covers command_time_limit). */
long local_child_timeout(void);

/* Drop to uid/gid (and pw_name's groups) for good; fatal when not done. */
void local_become(uid_t uid, gid_t gid, const char *pw_name);
/* Set rc from a result a delivery process sent (ok: one was received):
 * a status whose class disagrees with its DSN, or none, is 4.3.0. */
void local_apply_result(struct deliver_rcpt *rc, int ok, int status, char *dsn, size_t dsnsize, char *text,
			size_t textsize);

/* local_worker.c: Maildir deliveries to another uid through a process kept
 * for that uid.  0 when rc has the result; -1 when no worker could be had
 * and nothing was attempted (the caller forks a child as before). */
int local_worker_deliver(const struct local_dest *d, const struct local_msg *msg, const char *sender,
			 struct deliver_rcpt *rc);

/* ---- the service (local_serve.c) ---- */

/* Log one Postfix-shaped result line for address (orig_to when it came
 * from expanding another address, else NULL). */
void local_log_result(const struct deliver_request *r, const char *address, const char *orig_to,
		      const struct deliver_rcpt *rc);
/* Deliver every recipient of r (message on msgfd) and log the results. */
void local_deliver_request(struct deliver_request *r, int msgfd);
/* server_prefork callback: read a request, deliver, answer. */
void local_serve(int fd, const struct sockaddr *peer, socklen_t peerlen);

#endif
