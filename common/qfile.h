/*
 * qfile — the queue file: one file per message, envelope then content.
 *
 * Only queue code (this module, used by smtpd's and pickup's writers and by
 * the queue manager) writes the spool.  The format is text records, one per
 * line, in a fixed order, followed by the raw content:
 *
 *   V 1                        format version
 *   Q QUEUEID
 *   T ARRIVAL                  seconds since the epoch
 *   Z OFFSET LENGTH            content offset and length, 20 digits each
 *                              (written as zeros, patched at commit)
 *   F FLAGS                    DELIVER_F_* bits (body type, SMTPUTF8, RET)
 *   N ENVID                    DSN envelope id (may be empty)
 *   C CLIENT                   "helo (name [ip])" for logs and bounces
 *   S SENDER                   envelope sender, empty for <>
 *   R S NOTIFY ORCPT ADDRESS   one per recipient: S is the state byte
 *                              (see enum qf_state), NOTIFY the DSN bits,
 *                              ORCPT "-" or the original recipient as
 *                              "type;xtext" exactly as it came in the ORCPT
 *                              parameter (printable, no spaces)
 *   E                          end of envelope
 *   <content bytes>            LENGTH bytes: the message, LF line ends
 *   <trailer records>          zero or more, appended by the queue manager:
 *   A S NOTIFY ORCPT PARENT ADDRESS
 *                              a recipient added by virtual alias expansion
 *                              of recipient number PARENT (an earlier one);
 *                              its state byte changes in place like R's
 *   W ATTEMPTS WARNED [REASON] retry state: delivery passes that ended with
 *                              a deferral, 1 once a delay warning was sent,
 *                              and the last deferral reason (for mailq);
 *                              the last W record counts
 *
 * The trailer is append-only: records are written at the end with one
 * pwrite, then fdatasync.  A crash in the middle of an append leaves a
 * last line without its LF; the reader ignores it (trailer_end points at
 * it) and the next append overwrites it.  An expanded recipient is marked
 * X only after its A records are durable; a restart that finds a pending
 * parent with children just marks it X (no second expansion).
 *
 * Field values never contain control characters (the writer refuses them).
 * The reader is strict: unknown or out-of-order records, a bad version, an
 * offset/length that disagree with the file size, or a state byte that is
 * not P/D/B make the file corrupt (the queue manager moves it to corrupt/).
 *
 * A recipient's state changes in place: qf_mark overwrites its state byte
 * with pwrite; the caller fsyncs once per batch.
 *
 * Durability (the promise behind every 250): qfw_commit writes the file in
 * tmp/ (or a claimed one in recycle/, see below), fdatasyncs it (its blocks and length; the timestamps may wait),
 * renames it into incoming/QUEUEID and fsyncs incoming/
 * (an fsync that began after the rename, possibly another session's:
 * dirsync.h).
 * Only after qfw_commit returned 0 may the sender be told the message is
 * queued.
 *
 * Recycling: the queue manager does not unlink a finished message; it
 * renames the file into recycle/ and empties it (qf_recycle), and qfw_begin
 * claims such a file before it creates a new one: in place, with an open
 * file description lock (F_OFD_SETLK) that it holds until the commit has
 * renamed recycle/NAME to incoming/QUEUEID, and a check, once locked, that
 * recycle/NAME is still that file (a later locker finds the name gone).
 * Claiming in place spares a rename across directories per message.  A queue then frees and allocates no inode per message, and a
 * file of up to QF_RECYCLE_KEEP bytes keeps its blocks too: the next
 * message overwrites them and the commit cuts the file to its length, so
 * ext4 neither allocates blocks nor converts unwritten extents for it.  That
 * matters on ext4 without a journal, which will not reuse an inode freed in
 * the last minute or more and scans past every such inode on each create:
 * at a thousand messages a second, creating a file cost 0.3 ms and more
 * (bench notes in docs/benchmarks.md).  A claimed file is checked (regular,
 * one link, ours) and cut at the commit only when it was longer than the new
 * message, so one overwritten to the same length needs no inode write;
 * anything odd is unlinked and a new file created instead.  recycle/ is bounded: qf_recycle unlinks when it holds
 * QF_RECYCLE_MAX files, and what sits there is never mail.
 */
#ifndef TERN_QFILE_H
#define TERN_QFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "queueid.h"

struct dirsync;

#define QF_VERSION 1
#define QF_MAX_RCPT 100000
#define QF_MAX_ENVELOPE (QF_MAX_RCPT * 1100 + 65536)
#define QF_ORCPT_MAX 1024 /* "type;xtext" as received (RFC 3461 allows 500) */

/* F-record bits beyond the DELIVER_F_* ones (never sent to agents). */
#define QF_F_POSTMASTER_NOTICE 0x100 /* a double bounce: if it fails, it is dropped */

enum qf_state {
	QF_PENDING = 'P',   /* not yet delivered */
	QF_DELIVERED = 'D', /* done, nothing owed */
	QF_BOUNCED = 'B',   /* failed, and the failure report is queued */
	QF_SUCCESS = 'S',   /* delivered; a success DSN (NOTIFY=SUCCESS) is owed */
	QF_RELAYED = 'L',   /* relayed to a non-DSN next hop; a "relayed" DSN is owed */
	QF_EXPANDED = 'X'   /* replaced by its virtual alias expansion (A records) */
};

/* Queue subdirectories, relative to queue_directory. */
#define QDIR_TMP "tmp"
#define QDIR_INCOMING "incoming"
#define QDIR_ACTIVE "active"
#define QDIR_DEFERRED "deferred"
#define QDIR_HOLD "hold"
#define QDIR_CORRUPT "corrupt"
#define QDIR_MAILDROP "maildrop"
#define QDIR_PRIVATE "private"
#define QDIR_PUBLIC "public" /* public/pickup: postdrop's wake-up socket (issue 8) */
#define QF_SYNC_STATE "incoming.sync" /* in private/: group commit of incoming/'s fsync */
#define QDIR_RECYCLE "recycle" /* finished queue files, emptied, for the next message (qf_recycle) */

struct qf_rcpt {
	char *address; /* owned */
	char *orcpt;   /* owned; NULL when absent */
	unsigned notify;
	char state;      /* enum qf_state */
	off_t state_off; /* where the state byte lives (reader) */
	long parent;     /* A records: index of the expanded recipient; else -1 */
};

struct qf_envelope {
	char qid[QUEUEID_SIZE];
	long long arrival;
	unsigned flags;
	char *envid;  /* owned; "" when absent */
	char *client; /* owned; "" when unknown */
	char *sender; /* owned; "" for <> */
	struct qf_rcpt *rcpt; /* owned */
	size_t nrcpt;
	unsigned long long content_off, content_len;
	unsigned attempts;              /* from the last W record (0 without one) */
	int warned;                     /* a delay warning was sent */
	char *reason;                   /* owned; the last deferral reason, "" when none */
	unsigned long long trailer_end; /* where the next trailer record goes (reader) */
};

void qf_envelope_init(struct qf_envelope *e);
void qf_envelope_free(struct qf_envelope *e);
/* Add a recipient (copies the strings); orcpt may be NULL. */
void qf_envelope_add_rcpt(struct qf_envelope *e, const char *address, const char *orcpt, unsigned notify);
/* Set an owned string field from s (copy). */
void qf_set(char **field, const char *s);

/* Create (mkdir -p, mode 0700; maildrop/ 01730, public/ 0710) every queue subdirectory.  0 or -1. */
int qf_make_dirs(const char *queue_dir);

#define QF_NAME_MAX 64 /* a queue file's name in recycle/ (an older queue ID) */
_Static_assert(QUEUEID_SIZE <= QF_NAME_MAX, "a queue ID is a name in tmp/");

struct qf_writer {
	int fd;
	int dirfd_src;      /* where it is written: tmp/, or recycle/ for a claimed file (the process's, kept open) */
	int dirfd_incoming; /* queue_dir/incoming (likewise) */
	char name[QF_NAME_MAX]; /* its name there: the queue ID in tmp/, its old name in recycle/ */
	char qid[QUEUEID_SIZE];
	off_t z_off;                /* where the Z record's numbers start */
	unsigned long long content_off;
	unsigned long long content_len;
	struct buf out;             /* write-behind buffer for content */
	int failed;                 /* a write already failed: errno in saved_errno */
	int saved_errno;
	off_t recycled_len;         /* a claimed file's old length (its bytes past our end are cut at the commit), or -1 */
	struct dirsync *sync;       /* private/QF_SYNC_STATE: incoming/'s shared fsync (dirsync.h) */
};

/*
 * Start a message: claims a file in recycle/ or creates tmp/QUEUEID, and
 * writes the envelope (env's qid
 * is set to the new ID; its content fields are ignored).  Returns 0, or -1
 * with errno (ENOSPC, EDQUOT, EIO...) and nothing left behind.
 */
int qfw_begin(struct qf_writer *w, const char *queue_dir, struct qf_envelope *env);

#define QF_RECYCLE_MAX 4096
#define QF_RECYCLE_KEEP 65536 /* larger finished files are emptied when recycled */
/* A finished message: dirfd/name (open as fd, or -1) is moved into
 * recycle/ (recycle_fd); one larger than QF_RECYCLE_KEEP goes through tmp/
 * (tmp_fd) and is emptied there first.  It is unlinked instead when
 * recycle/ is full, it has another link, or a step fails.  A crash in
 * between leaves an empty file in tmp/, which the queue manager's tmp/
 * cleaning removes.  *count is the caller's running
 * estimate of the files in recycle/ (claims by other processes lower it;
 * the caller recounts now and then).  0, or -1 with errno when the name
 * could be neither moved nor removed. */
int qf_recycle(int dirfd, const char *name, int fd, int tmp_fd, int recycle_fd, int *count);
/* Claim the file recycle/name (rfd: recycle/), which the caller opened for
 * writing as fd: lock it (F_OFD_SETLK, held until fd is closed), check that
 * the name still leads to it and that it is fit to be written (a file that
 * is not fit is unlinked).  0 with its length in *len, or -1 with errno
 * (EAGAIN or EACCES: another writer holds it; ENOENT: gone or unfit), fd
 * left open.  qfw_begin opens and claims in one go; this half is its own
 * function so that the tests can open a file before another writer
 * commits it. */
int qf_claim_opened(int rfd, const char *name, int fd, off_t *len);
/* Append content bytes.  Errors are sticky and reported by qfw_commit, so a
 * receiver can keep reading the client's data after a failure. */
void qfw_write(struct qf_writer *w, const void *p, size_t n);
/* Finish and make durable (see above).  0: the message is queued; -1 with
 * errno: nothing is queued and the temp file is gone. */
int qfw_commit(struct qf_writer *w);
/* Give up: remove the temp file.  Safe after a failed commit too. */
void qfw_abort(struct qf_writer *w);

/* Parse the envelope of the open queue file fd (strictly, see above).
 * 0; -1 with a reason in err when the file is malformed; -2 (errno and err
 * set) when reading it failed (EIO, ENOMEM...): not a corrupt file, retry. */
int qf_read(int fd, struct qf_envelope *e, char *err, size_t errsize);
/* Overwrite recipient r's state byte; 0 or -1 (errno). */
int qf_mark(int fd, struct qf_rcpt *r, enum qf_state st);
/* 1 when st is a final state (nothing more to deliver). */
int qf_state_done(char st);
/*
 * Append the n addresses as A records (children of recipient parent, with
 * its NOTIFY and the given orcpt, NULL for "-") to the open file fd, make
 * them durable (fdatasync) and add them to e.  0, or -1 with errno (nothing
 * added to e).  The caller then marks the parent QF_EXPANDED.
 */
int qf_add_children(int fd, struct qf_envelope *e, size_t parent, const char *const *addrs, size_t n,
		    const char *orcpt);
/* Append a W record (attempts, warned, reason: control characters become
 * '?', cut at 512 bytes) and update e; the caller fsyncs.  0 or -1 with errno. */
int qf_set_retry(int fd, struct qf_envelope *e, unsigned attempts, int warned, const char *reason);

#endif
