/*
 * smtpd_stream — the byte stream under one SMTP connection.
 *
 * A stream is a pair of read/write functions over a context (a plain file
 * descriptor today; a TLS session after STARTTLS, which only swaps the
 * functions with stream_set_io) plus a bounded output buffer.  Replies are
 * appended with stream_put/stream_printf and leave the process only on an
 * explicit stream_flush, or when the buffer is full, or - the pipelining rule
 * of RFC 2920 - right before the session would block waiting for input:
 * stream_lr_read, the line reader's source, flushes first.
 *
 * Every read and write has a deadline (timeout_ms; < 0 waits forever); a
 * read or write that times out fails with errno ETIMEDOUT.  On top of that a
 * whole record (one command line, one DATA or BDAT transfer) has a deadline
 * set with stream_record_start: timeout_ms from its start, plus one second
 * per min_rate bytes received since, so a client that trickles one byte
 * every few seconds (slowloris) cannot hold a session for ever.  The first write
 * error is sticky (st->err): later writes are dropped, so the session only
 * has to test stream_failed() once per command.
 *
 * Public: stream_init, stream_init_fd, stream_set_io, stream_free,
 * stream_put, stream_printf, stream_flush, stream_failed, stream_record_start,
 * stream_record_end, stream_lr_read.
 */
#ifndef TERN_SMTPD_STREAM_H
#define TERN_SMTPD_STREAM_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

/* Read up to n bytes within timeout_ms: >0 bytes, 0 end of input, -1 with
 * errno (ETIMEDOUT on timeout). */
typedef ssize_t (*stream_read_fn)(void *ctx, void *p, size_t n, int timeout_ms);
/* Write up to n bytes (n >= 1) within timeout_ms: >0 bytes written, -1 with errno. */
typedef ssize_t (*stream_write_fn)(void *ctx, const void *p, size_t n, int timeout_ms);

/* Replies are small; a full buffer is flushed before it would overflow. */
#define STREAM_OUT_MAX 16384

struct smtpd_stream {
	stream_read_fn read;
	stream_write_fn write;
	void *ctx;
	int fd;          /* the connection (for stream_init_fd; -1 otherwise) */
	int timeout_ms;  /* per read / per write deadline */
	struct buf out;  /* replies not yet written */
	int err;         /* errno of the first failed write, 0 if none */
	long long rec_start_ms;       /* record deadline: start (monotonic ms), 0 = none */
	unsigned long long rec_bytes; /* bytes read since rec_start_ms */
	long long rec_rate;           /* bytes/s that extend the deadline by 1 s; 0 = none */
	void *tls;                    /* the SSL session once TLS is active (smtpd_tls.c), else NULL */
	char tls_info[160];           /* "TLSv1.3 with cipher ... (256/256 bits)" while tls */
};

/* A stream over arbitrary functions (tests, TLS). */
void stream_init(struct smtpd_stream *st, stream_read_fn rd, stream_write_fn wr, void *ctx, int timeout_ms);
/* A stream over a connected socket or pipe; the fd is made non-blocking and
 * is not closed by stream_free. */
void stream_init_fd(struct smtpd_stream *st, int fd, int timeout_ms);
/* Replace the I/O functions (STARTTLS); buffered output must be flushed first. */
void stream_set_io(struct smtpd_stream *st, stream_read_fn rd, stream_write_fn wr, void *ctx);
void stream_free(struct smtpd_stream *st);

/* Queue bytes for output; 0, or -1 when the stream has failed. */
int stream_put(struct smtpd_stream *st, const void *p, size_t n);
int stream_printf(struct smtpd_stream *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write all queued bytes; 0, or -1 (st->err set). */
int stream_flush(struct smtpd_stream *st);
/* 1 once a write has failed (the connection is unusable).  Read errors are
 * reported to the reader's caller instead: after a read timeout the session
 * still writes its 421. */
int stream_failed(const struct smtpd_stream *st);

/* 1 when the peer sends bytes within ms (an early talker: it did not wait
 * for the greeting); 0 otherwise, and always 0 for a stream without an fd. */
int stream_input_within(struct smtpd_stream *st, int ms);

/* Start a record deadline now (see above); min_rate 0: timeout_ms only. */
void stream_record_start(struct smtpd_stream *st, long long min_rate);
/* No record deadline (per-read timeouts only). */
void stream_record_end(struct smtpd_stream *st);

/* lr_read_fn for lr_init(): flushes pending output, then reads. ctx is the stream. */
ssize_t stream_lr_read(void *ctx, void *p, size_t n);

#endif
