/*
 * smtpd_data.c — DATA: from 354 to the final reply.
 *
 * Public: smtpd_data, smtpd_sanitise_helo.
 *
 * The content is read through the line reader in pieces of at most
 * SMTPD_DATA_PIECE bytes (memory stays flat whatever the line length),
 * dot-unstuffed, and handed to the content sink (smtpd_content.c), which
 * keeps the limits, writes the queue file and replies.
 *
 * End of data is exactly CR LF "." CR LF: the "." line must end in CRLF
 * and so must the line before it (the DATA command counts as one).  Every
 * other spelling from the SMTP smuggling research (LF.LF, CRLF.LF, LF.CRLF,
 * CR.CR, CRLF.CR, CR.LF, ...) is content.  A bare LF, and a CR that is not
 * part of CRLF, are line ends of the content (bare_newline = normalize) or
 * make the message refused at its end (bare_newline = reject); either way
 * no such sequence can end or split the message, and the stored content
 * holds no bare CR.  A line that starts after any line end is unstuffed.
 *
 * A timeout or a lost connection inside DATA abandons the queue file and
 * ends the session (421 4.4.2 for the timeout).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "smtpd.h"

enum content_end { CONTENT_DOT, CONTENT_EOF, CONTENT_ERROR };

void
smtpd_sanitise_helo(const char *in, char *out, size_t outsize)
{
	size_t i;

	if (outsize == 0)
		return;
	for (i = 0; in[i] != '\0' && i + 1 < outsize; i++) {
		unsigned char c = (unsigned char)in[i];

		/* Printable ASCII without what would end or confuse a header comment. */
		if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '\\' || c == '"' || c == ';')
			c = '?';
		out[i] = (char)c;
	}
	out[i] = '\0';
}

/*
 * One piece from the reader: split at bare CRs (each one a line end),
 * unstuffing the line that starts after each.  Returns 1 when the piece
 * ended right after a bare CR (the next piece starts a line).
 */
static int
put_piece(struct smtpd_content *c, const char *p, size_t n, int eol)
{
	const char *cr;

	while ((cr = memchr(p, '\r', n)) != NULL) {
		size_t seg = (size_t)(cr - p);

		smtpd_content_put(c, p, seg, 1);
		c->bare = 1;
		p = cr + 1;
		n -= seg + 1;
		if (n == 0 && !eol)
			return 1;
		if (n > 0 && p[0] == '.') {
			p++;
			n--;
		}
	}
	smtpd_content_put(c, p, n, eol);
	return 0;
}

/* Read content up to the end-of-data line; see the file comment. */
static enum content_end
read_content(struct smtpd_session *s, struct smtpd_content *c)
{
	int at_start = 1;  /* the next piece begins a line */
	int prev_crlf = 1; /* the last complete line ended with CRLF */
	enum lr_ending ending;

	lr_set_flags(&s->lr, LR_SPLIT);
	lr_set_max(&s->lr, SMTPD_DATA_PIECE);
	for (;;) {
		enum lr_result r = lr_getline(&s->lr, &s->line, &ending);
		const char *p = s->line.data;
		size_t n = s->line.len;
		int eol, after_cr;

		if (r == LR_EOF)
			return CONTENT_EOF;
		if (r != LR_LINE)
			return CONTENT_ERROR;
		if (at_start) {
			if (n == 1 && p[0] == '.' && ending == LR_END_CRLF && prev_crlf)
				return CONTENT_DOT;
			if (n > 0 && p[0] == '.') {
				p++;
				n--;
			}
		}
		eol = ending != LR_END_NONE;
		after_cr = put_piece(c, p, n, eol);
		if (ending == LR_END_LF)
			c->bare = 1;
		if (eol)
			prev_crlf = ending == LR_END_CRLF; /* the wire has CRLF here, whatever came before */
		else if (after_cr)
			prev_crlf = 0;
		at_start = eol || after_cr;
	}
}

int
smtpd_data(struct smtpd_session *s)
{
	struct smtpd_content c;
	enum content_end end;
	int rc, err;

	if (smtpd_content_begin(s, &c) < 0) {
		smtpd_txn_reset(s);
		return -1;
	}
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	stream_record_start(s->st, cf.smtpd_min_data_rate);
	end = read_content(s, &c);
	err = errno;
	stream_record_end(s->st);
	if (end == CONTENT_DOT) {
		rc = smtpd_content_finish(s, &c);
	} else {
		smtpd_content_abort(&c);
		if (end == CONTENT_ERROR && err == ETIMEDOUT) {
			log_info("timeout after DATA from %s[%s]", s->name, s->ip);
			smtpd_reply_421(s, "4.4.2", "Error: timeout exceeded");
		} else {
			log_info("lost connection after DATA from %s[%s]", s->name, s->ip);
		}
		s->done = 1;
		rc = -1;
	}
	smtpd_txn_reset(s);
	return rc;
}
