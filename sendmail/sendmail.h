/*
 * sendmail — the sendmail-compatible submission command (tern-sendmail).
 *
 * Modules:
 *   sendmail_hdr.c   RFC 5322 address lists (To/Cc/Bcc for -t, and the
 *                    command-line recipients): groups, comments, quoted
 *                    strings, angle addresses, folding; encoded words are
 *                    display-name text and never touched
 *   sendmail_msg.c   reading the message (LF line ends, the lone-dot rule
 *                    without -i, the size limit), the header fix-ups
 *                    (-t extraction, Bcc removal, missing From/Date/Message-ID)
 *   sendmail_post.c  handing the envelope + message to postdrop; exec of
 *                    mailq/newaliases
 *   sendmail_smtp.c  -bs: one SMTP session on stdin/stdout
 *
 * Exit codes are sysexits.h codes.
 */
#ifndef TERN_SENDMAIL_H
#define TERN_SENDMAIL_H

#include <stddef.h>

#include "buf.h"
#include "maildrop.h"

#define SM_MAX_RCPT MD_MAX_RCPT

enum sm_mode { SM_DELIVER, SM_SMTP, SM_MAILQ, SM_NEWALIASES, SM_FLUSH };

struct sm_opts {
	enum sm_mode mode;
	int extract;          /* -t */
	int dot_ends;         /* without -i/-oi: a lone "." line ends the input */
	const char *sender;   /* -f/-r; NULL when not given */
	const char *fullname; /* -F; NULL when not given */
	const char *envid;    /* -V */
	unsigned notify;      /* -N: NOTIFY_* bits, 0 when not given */
	unsigned flags;       /* DELIVER_F_8BITMIME (-B), DELIVER_F_RET_HDRS (-R hdrs) */
	const char *config;   /* -C or $TERN_CONFIG; NULL: the default */
	int verbose;          /* -v */
	char **rcpts;         /* command-line recipients */
	int nrcpts;
};

/* --- sendmail_hdr.c */
typedef int (*sm_addr_fn)(void *ctx, const char *addr);
/*
 * Parse the address list in s[0..n) (a header value, folded or not; LF and
 * CR count as white space) and call fn with every addr-spec found, in order
 * (angle addresses without their source route; group members; a bare
 * addr-spec with comments and folding white space removed).  Returns the
 * number of addresses, or -1 on a syntax error (unterminated quote, comment,
 * angle address or domain literal; an address longer than MD_ADDR_MAX - 1
 * or holding a NUL byte) or when fn returned non-zero.
 */
int sm_addr_list(const char *s, size_t n, sm_addr_fn fn, void *ctx);

/* --- sendmail_msg.c */
/* Read the message from fd into msg (LF line ends, a final LF added; with
 * dot_ends a line "." ends it).  0, -1 too big (msg->max), -2 read error. */
int sm_read_message(int fd, int dot_ends, struct buf *msg);

struct sm_hdrinfo {
	int has_from, has_date, has_msgid;
	size_t header_end; /* offset of the first body byte's line (after headers) */
};
/*
 * Rewrite msg into out: with extract, every To/Cc/Bcc address (Resent-To/
 * Cc/Bcc instead when any Resent- recipient header exists) goes to
 * fn(ctx, addr); Bcc and Resent-Bcc headers are removed; missing From,
 * Date, Message-ID are added at the end of the header section.  0, or -1
 * (bad address list: the header's name in err).
 */
int sm_fix_headers(const struct buf *msg, int extract, const struct sm_opts *o, sm_addr_fn fn, void *ctx,
		   struct buf *out, char *err, size_t errsize);
/* The From: value for a missing From header ("Name" <login@myorigin>). */
void sm_from_value(const struct sm_opts *o, struct buf *out);

/* --- sendmail_post.c */
/* Submit e + content through postdrop; a sysexits code. */
int sm_postdrop(const struct sm_opts *o, struct md_env *e, const char *content, size_t len);
/* exec ternctl as mailq / newaliases; returns only on failure (a code). */
int sm_exec_ctl(const struct sm_opts *o, const char *as, char **args);
/* sendmail -q: postdrop -q; a sysexits code. */
int sm_flush(const struct sm_opts *o);
/* Check and add an address to e (NULL-terminated address text); 0 or -1. */
int sm_add_rcpt(struct md_env *e, const char *addr, unsigned notify);

/* --- sendmail_smtp.c */
int sm_smtp(const struct sm_opts *o);

/* --- sendmail_args.c: 0, or EX_USAGE (reason on stderr). */
int sm_parse_args(int argc, char **argv, struct sm_opts *o);

/* Fix the headers of msg (extracting with -t), then sm_postdrop; a code. */
int sm_deliver_buffer(const struct sm_opts *o, struct md_env *e, const struct buf *msg);

#endif
