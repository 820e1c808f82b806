/*
 * fix_smtp.h — the fixture of the send/ unit tests that talk SMTP: a
 * scripted fake server on 127.0.0.1 and the client-side helpers that hand
 * tern a queue file and a delivery request for it.
 *
 * A test writes a script (an array of struct step ending in END or CLOSE),
 * starts it with fake_start(), runs the client against f.port and reads
 * back, with fake_finish(), every byte the fake received; deliver() does
 * all of it for one request.  The fake is a forked child bounded by
 * alarm(); fake_finish() always reaps it (killing it if it must).
 *
 * Failures are Check assertions (ck_assert*), so every function here must
 * run inside a test with setup()/teardown() as its checked fixture.
 */
#ifndef TERN_TEST_FIX_SMTP_H
#define TERN_TEST_FIX_SMTP_H

#include <stddef.h>
#include <sys/types.h>

#include "../../../send/send.h"
#include "proto_deliver.h"

/* What each queue file holds before the content (request()'s offset). */
#define PREFIX "ENVELOPE\n"

/* LINES: read n lines, then write the reply.  BODY: read a DATA body up to
 * "\r\n.\r\n", then reply.  CLOSE: hang up.  END: record whatever else comes,
 * until EOF.  ACCEPT: read the current connection to its EOF (recorded),
 * close it and take the next one.  SYNC: wait for the test's fake_sync()
 * before writing the reply, then tell it the reply is written. */
enum step_kind { LINES, BODY, CLOSE, END, ACCEPT, SYNC };

struct step {
	enum step_kind kind;
	int n;             /* LINES: lines to read first */
	const char *reply; /* written after reading (may be NULL) */
	size_t reply_len;  /* 0: strlen(reply) */
};

struct fake {
	pid_t pid;
	int port;
	char record[320]; /* the file of the bytes received */
};

/* The test's scratch directory (queue files, records, sync files). */
extern char workdir[64];
/* Nonzero: the receive buffer size of the next fake_start()'s socket. */
extern int fake_rcvbuf;

/* The recipients most tests deliver to: a@, b@ and c@y.test. */
extern const char *const three[];
/* A peer without 8BITMIME or PIPELINING that takes one message. */
extern const struct step plain_peer[];

/* Checked fixture: defaults with 5 s timeouts and myhostname=client.test,
 * a fresh workdir; teardown removes it. */
void setup(void);
void teardown(void);
/* conf_override(kv), failing the test on an error. */
void set_conf(const char *kv);

void fake_start(struct fake *f, const struct step *steps);
/* Let the fake's SYNC step write its reply; 0 once it has, -1 when it
 * did not within 10 s (it gave up waiting). */
int fake_sync(void);
/* Forget a finished SYNC, so that the next script can wait again. */
void fake_sync_reset(void);
/* Reap the child (killing it after 10 s) and return what it received
 * (malloc'd, NUL-terminated; *len without the NUL). */
char *fake_finish(struct fake *f, size_t *len);

/* An unlinked queue file: PREFIX, then content; the caller closes it. */
int message_fd(const char *content, size_t len);
/* A request from s@x.org for [127.0.0.1]:port of len bytes after PREFIX. */
void request(struct deliver_request *r, int port, size_t len);
/* Run one delivery of content to rcpts against the script; returns the
 * bytes the server received. */
char *deliver(const struct step *steps, struct deliver_request *r, const char *content, unsigned flags,
	      const char *const *rcpts, size_t nrcpt, size_t *len);
/* The recipient's status and DSN code are these, and its text contains
 * text (when not NULL). */
void assert_result(const struct deliver_rcpt *rc, enum deliver_status st, const char *dsn, const char *text);

/* Append a target mx<N>.test for 127.0.0.1:port. */
void add_target(struct send_targets *t, int port);
/* A loopback port that was just free (bound, read, closed): connecting
 * to it is refused. */
int refused_port(void);

/* Content that no buffer between the client and a fake with a small
 * receive buffer can hold (malloc'd, NUL-terminated, *len bytes). */
char *big_content(size_t *len);
/* What follows "DATA\r\n" in a recorded session. */
const char *body_of(const char *wire);

#endif
