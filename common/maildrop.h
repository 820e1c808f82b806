/*
 * maildrop — the local submission format (sendmail → postdrop → maildrop/
 * file → pickup).
 *
 * Text records, one per line (LF), in this fixed order, then the content:
 *
 *   TERNDROP 1            magic and version
 *   U UID                 submitting uid (maildrop files only; never on the
 *                         stream from sendmail: postdrop writes its own)
 *   T TIME                submission time, seconds since the epoch (files only)
 *   F FLAGS               decimal: DELIVER_F_* bits | MD_F_SENDER
 *   N ENVID               DSN envelope id, may be empty
 *   S SENDER              envelope sender as given with -f ("" = <>); the
 *                         value matters only with MD_F_SENDER
 *   R NOTIFY ADDRESS      one per recipient, 1..MD_MAX_RCPT; the address is
 *                         the rest of the line (it may hold spaces)
 *   L LENGTH              content length in bytes
 *   <LENGTH bytes>        the message, LF line ends; nothing after it
 *
 * The reader is strict: a wrong magic or version, a missing, repeated or
 * out-of-order record, a number with junk or out of range, a control
 * character in a field, an overlong line, a CR before an LF, or no
 * recipient, makes the whole input malformed.  The caller checks that
 * exactly LENGTH content bytes follow (file size or end of stream).
 * Addresses are not parsed here: pickup checks them with addr.h.
 */
#ifndef TERN_MAILDROP_H
#define TERN_MAILDROP_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "lineread.h"

#define MD_MAGIC "TERNDROP"
#define MD_VERSION 1
#define MD_MAX_RCPT 100000
#define MD_MAX_LINE 1100 /* any one record line */
#define MD_ADDR_MAX 512  /* ADDR_SIZE: longest address text */
#define MD_ENVID_MAX 100 /* RFC 3461: ENVID up to 100 characters */
#define MD_MAX_HEADER (MD_MAX_RCPT * (MD_MAX_LINE + 1) + 4096)

#define MD_F_SENDER 0x1000 /* the sender was given with -f/-r */
#define MD_F_KNOWN (0x1 | 0x2 | 0x4 | MD_F_SENDER)

enum md_mode {
	MD_STREAM, /* from sendmail to postdrop: no U/T records */
	MD_FILE    /* a maildrop file: U and T present */
};

struct md_rcpt {
	unsigned notify;
	char *address; /* owned */
};

struct md_env {
	long long uid;  /* MD_FILE only */
	long long time; /* MD_FILE only */
	unsigned flags;
	char *envid;  /* owned */
	char *sender; /* owned */
	struct md_rcpt *rcpt; /* owned */
	size_t nrcpt;
	unsigned long long length;
	unsigned long long header_bytes; /* bytes of the records (reader) */
};

void md_env_init(struct md_env *e);
void md_env_free(struct md_env *e);
/* Add a recipient (copied). */
void md_add_rcpt(struct md_env *e, const char *address, unsigned notify);

/* Append the records (for mode) of e to out; -1 when a field holds a
 * control character, is too long, or out is full. */
int md_format(struct buf *out, const struct md_env *e, enum md_mode mode);

/* Read the records from lr (created with max >= MD_MAX_LINE, without
 * LR_SPLIT).  0: e is filled and lr is positioned at the first content
 * byte; -1: malformed, the reason in err.  Either way e was initialised by
 * md_read and must be released with md_env_free. */
int md_read(struct linereader *lr, enum md_mode mode, struct md_env *e, char *err, size_t errsize);

#endif
