/*
 * lineread — the one bounded line reader for all untrusted input.
 *
 * Reads LF-terminated lines from any byte source (a socket, a file, a TLS
 * stream: anything behind a read callback) with an explicit maximum line
 * length.  A line longer than the maximum is never silently truncated:
 *
 *   - by default the reader discards the rest of the overlong line up to and
 *     including its LF and returns LR_TOOLONG, so the caller can answer with
 *     an error and the next call is back in sync on the following line;
 *   - with LR_SPLIT (message content) the line is returned in pieces of at
 *     most max bytes, each piece but the last with ending == LR_END_NONE.
 *
 * The returned line never contains the terminating LF, nor the CR of a CRLF.
 * *ending tells how the line ended, so protocol code can reject bare LF (and
 * detect the SMTP-smuggling end-of-data variants): a CR not followed by LF
 * stays in the line as data.  NUL bytes are data too; callers that must not
 * accept them check with memchr(line->data, 0, line->len).
 *
 * Memory is bounded: the reader's own buffer is allocated once at init
 * (max + a read chunk) and the line buffer must have a max of at least the
 * reader's max.
 */
#ifndef TERN_LINEREAD_H
#define TERN_LINEREAD_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

/* Read up to n bytes into p; >0 bytes read, 0 end of input, -1 error (errno set;
 * ETIMEDOUT for a timeout). */
typedef ssize_t (*lr_read_fn)(void *ctx, void *p, size_t n);

enum lr_result {
	LR_LINE,    /* a line (or a piece of one, see LR_SPLIT) is in *line */
	LR_TOOLONG, /* overlong line discarded up to its LF (not with LR_SPLIT) */
	LR_EOF,     /* end of input; no bytes pending */
	LR_ERROR    /* read error; errno is set (ETIMEDOUT on timeout) */
};

enum lr_ending {
	LR_END_CRLF, /* line ended with CR LF */
	LR_END_LF,   /* line ended with a bare LF */
	LR_END_NONE  /* no terminator: end of input, or a piece of a split line */
};

enum { LR_SPLIT = 1 };

struct linereader {
	lr_read_fn read;
	void *ctx;
	size_t max;   /* maximum line length, excluding terminator */
	int flags;    /* LR_SPLIT */
	char *buf;    /* owned; size bufsize */
	size_t bufsize;
	size_t start; /* first unconsumed byte */
	size_t end;   /* one past the last buffered byte */
	int eof;      /* the source reported end of input */
	int fd;       /* for lr_init_fd */
	int timeout_ms;
};

/* Reader over an arbitrary source. */
void lr_init(struct linereader *lr, lr_read_fn fn, void *ctx, size_t max, int flags);
/* Reader over a file descriptor; timeout_ms < 0 waits forever, otherwise a
 * read that sees no byte within timeout_ms fails with ETIMEDOUT.  EINTR is
 * retried. */
void lr_init_fd(struct linereader *lr, int fd, size_t max, int flags, int timeout_ms);
void lr_free(struct linereader *lr);

/* Change the maximum line length (for example 512 for commands, larger for
 * message content); must not exceed the max given at init (log_panic). */
void lr_set_max(struct linereader *lr, size_t max);
void lr_set_flags(struct linereader *lr, int flags);

/* Next line into *line (replacing its contents); *ending as above. */
enum lr_result lr_getline(struct linereader *lr, struct buf *line, enum lr_ending *ending);

/* Raw bytes (for BDAT chunks): up to n bytes, buffered bytes first.  Returns
 * bytes read, 0 at end of input, -1 on error. */
ssize_t lr_read(struct linereader *lr, void *p, size_t n);

/* Bytes already read from the source but not yet consumed (pipelining: a
 * server flushes its replies only when this is 0). */
size_t lr_pending(const struct linereader *lr);
/* Throw away the buffered bytes (STARTTLS: plaintext behind the command). */
void lr_discard_pending(struct linereader *lr);

#endif
