/*
 * smtpd_bdat.c — BDAT, the CHUNKING extension (RFC 3030).
 *
 * Public: smtpd_bdat.
 *
 * "BDAT size [LAST]" is followed by exactly size octets of content, with no
 * dot-stuffing and no end-of-data line.  The byte count is what keeps client
 * and server in step, so:
 *   - a BDAT whose arguments parse is always followed by reading (and, when
 *     the command is refused, discarding) its size octets, whatever the
 *     state: the chunk's bytes are never taken for commands (Exim
 *     CVE-2020-28019 was about commands after a BDAT error);
 *   - a BDAT whose arguments do not parse leaves no way to find the next
 *     command: 501 and the session ends;
 *   - a chunk that alone exceeds message_size_limit is not read at all:
 *     552 and the session ends (no reading gigabytes to throw away).
 * Line ends inside chunks are handled as in DATA: CRLF, and a bare CR or LF
 * (normalized or refused by bare_newline), are line ends in the queue; a CR
 * at the end of one chunk may pair with a LF at the start of the next.
 * The first chunk opens the queue file; BDAT LAST commits it and gets the
 * same 250-after-fsync as DATA.  A chunk error (size, disk) ends the
 * transaction; later BDATs then get 503 and their bytes are discarded.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "smtpd.h"
#include "xalloc.h"

/* Feed a buffer of chunk bytes into the content, splitting at line ends. */
static void
feed(struct smtpd_content *c, const char *p, size_t n)
{
	size_t start = 0, i = 0;

	if (n == 0)
		return;
	if (c->pending_cr) {
		/* The previous chunk ended in CR: with this LF it was CRLF. */
		c->pending_cr = 0;
		smtpd_content_put(c, "", 0, 1);
		if (p[0] == '\n')
			start = i = 1;
		else
			c->bare = 1;
	}
	for (; i < n; i++) {
		if (p[i] == '\n') {
			smtpd_content_put(c, p + start, i - start, 1);
			c->bare = 1; /* a LF not after a CR */
			start = i + 1;
		} else if (p[i] == '\r') {
			if (i + 1 == n) {
				smtpd_content_put(c, p + start, i - start, 0);
				c->pending_cr = 1;
				start = n;
				break;
			}
			smtpd_content_put(c, p + start, i - start, 1);
			if (p[i + 1] == '\n')
				i++;
			else
				c->bare = 1;
			start = i + 1;
		}
	}
	if (start < n)
		smtpd_content_put(c, p + start, n - start, 0);
}

/*
 * Read size octets of the chunk; into c when c is not NULL, else discard.
 * 0, or -1 when the connection failed (timeout: 421 sent; session done).
 */
static int
read_chunk(struct smtpd_session *s, struct smtpd_content *c, unsigned long long size)
{
	char piece[SMTPD_DATA_PIECE];
	int rc = 0;

	stream_record_start(s->st, cf.smtpd_min_data_rate);
	while (size > 0) {
		size_t want = size < sizeof(piece) ? (size_t)size : sizeof(piece);
		ssize_t r = lr_read(&s->lr, piece, want);

		if (r <= 0) {
			if (r < 0 && errno == ETIMEDOUT) {
				log_info("timeout after BDAT from %s[%s]", s->name, s->ip);
				smtpd_reply_421(s, "4.4.2", "Error: timeout exceeded");
			} else {
				log_info("lost connection after BDAT from %s[%s]", s->name, s->ip);
			}
			s->done = 1;
			rc = -1;
			break;
		}
		if (c != NULL)
			feed(c, piece, (size_t)r);
		size -= (unsigned long long)r;
	}
	stream_record_end(s->st);
	return rc;
}

/* Why this BDAT may not add to a message now (the reply), or NULL. */
static const char *
bdat_refusal(const struct smtpd_session *s)
{
	if (s->proto != SMTPD_PROTO_ESMTP)
		return "503 5.5.1 Error: send EHLO first";
	if (!s->in_mail)
		return "503 5.5.1 Error: need MAIL command";
	if (s->env.nrcpt == 0)
		return "503 5.5.1 Error: need RCPT command";
	return NULL;
}

int
smtpd_bdat(struct smtpd_session *s, char *args)
{
	unsigned long long size, limit = (unsigned long long)cf.message_size_limit;
	const char *refusal;
	int last, rc;

	if (smtpd_parse_bdat(args, &size, &last) < 0) {
		log_info("bad BDAT syntax from %s[%s]; disconnecting", s->name, s->ip);
		smtpd_reply(s, "501 5.5.4 Syntax: BDAT count [LAST]");
		s->done = 1;
		return -1;
	}
	if (limit > 0 && size > limit) {
		log_info("%s BDAT chunk of %llu bytes from %s[%s]; disconnecting",
			 s->bdat ? s->bdat->w.qid : "NOQUEUE", size, s->name, s->ip);
		smtpd_reply(s, "552 5.3.4 Error: message file too big");
		s->done = 1;
		smtpd_txn_reset(s);
		return -1;
	}
	if ((refusal = bdat_refusal(s)) != NULL) {
		smtpd_reply(s, "%s", refusal);
		read_chunk(s, NULL, size);
		return -1;
	}
	if (s->bdat == NULL) {
		s->bdat = xmalloc(sizeof(*s->bdat));
		if (smtpd_content_begin(s, s->bdat) < 0) {
			free(s->bdat);
			s->bdat = NULL;
			smtpd_txn_reset(s);
			read_chunk(s, NULL, size);
			return -1;
		}
	}
	if (read_chunk(s, s->bdat, size) < 0) {
		smtpd_txn_reset(s);
		return -1;
	}
	if (!last) {
		if (s->bdat->too_big) {
			smtpd_reply(s, "552 5.3.4 Error: message file too big");
			smtpd_txn_reset(s);
			return -1;
		}
		smtpd_reply(s, "250 2.0.0 Ok: %llu octets", size);
		return 0;
	}
	rc = smtpd_content_finish(s, s->bdat);
	/* Committed or already removed: nothing is left for txn_reset to abort. */
	free(s->bdat);
	s->bdat = NULL;
	smtpd_txn_reset(s);
	return rc;
}
