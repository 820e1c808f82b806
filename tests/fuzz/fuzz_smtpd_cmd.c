/*
 * fuzz_smtpd_cmd — libFuzzer target for smtpd's command layer.
 *
 * Each input is what a client sends in a whole session: it is run through
 * smtpd_session_run over an in-memory stream (command table, MAIL/RCPT
 * path and ESMTP parameter parsing, DATA and BDAT framing; the queue
 * directory does not exist, so DATA/BDAT end in 451 without touching a
 * disk), and the input's first line also goes straight into the pure
 * parsers of smtpd_esmtp.c.  Built and run by tests/fuzz/run.sh.
 *
 * The session's log lines would drown libFuzzer's output, so stderr points
 * to /dev/null while a session runs (a crash report inside one is lost
 * too): to see it, rerun the crashing input with TERN_FUZZ_LOG=1 set,
 *     TERN_FUZZ_LOG=1 build/fuzz/fuzz_smtpd_cmd crash-FILE
 */
// fuzz-sources: smtpd/smtpd.c smtpd/smtpd_bdat.c smtpd/smtpd_check.c smtpd/smtpd_cmd.c smtpd/smtpd_content.c
// fuzz-sources: smtpd/smtpd_data.c smtpd/smtpd_esmtp.c smtpd/smtpd_peer.c smtpd/smtpd_stream.c
// fuzz-sources: smtpd/smtpd_tls.c smtpd/smtpd_auth.c
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "../../smtpd/smtpd.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem {
	const uint8_t *p;
	size_t n, pos;
};

static ssize_t
mem_read(void *ctx, void *p, size_t n, int timeout_ms)
{
	struct mem *m = ctx;
	size_t take = m->n - m->pos;

	(void)timeout_ms;
	/* Small reads, so packet boundaries fall everywhere. */
	if (take > 97)
		take = 97;
	if (take > n)
		take = n;
	memcpy(p, m->p + m->pos, take);
	m->pos += take;
	return (ssize_t)take;
}

static ssize_t
mem_write(void *ctx, const void *p, size_t n, int timeout_ms)
{
	(void)ctx;
	(void)p;
	(void)timeout_ms;
	return (ssize_t)n;
}

static int devnull = -1, saved_stderr = -1;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const kv[] = { "myhostname=mx.test", "mydestination=$myhostname, localhost",
					  "queue_directory=/nonexistent/tern-fuzz", "alias_maps=",
					  "local_mailbox_base=/nonexistent/tern-fuzz-mail", "smtpd_peername_lookup=no",
					  "message_size_limit=100000" };
	char err[512];
	size_t i;

	(void)argc;
	(void)argv;
	if (getenv("TERN_FUZZ_LOG") == NULL) {
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		saved_stderr = dup(2);
	}
	log_open("fuzz_smtpd_cmd", LOG_TO_STDERR);
	conf_defaults();
	for (i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
		if (conf_override(kv[i], err, sizeof(err)) < 0)
			abort();
	if (conf_finish(err, sizeof(err)) < 0)
		abort();
	smtpd_init();
	return 0;
}

static void
parsers(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *p, *key, *value;
	unsigned long long n;
	int last, guard = 0;

	if (s == NULL)
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	smtpd_parse_bdat(s, &n, &last);
	smtpd_parse_notify(s);
	smtpd_orcpt_ok(s);
	smtpd_xtext_ok(s, 100);
	p = s;
	while (smtpd_next_param(&p, &key, &value) > 0) {
		/* What passes must be storable: no space or control in a value. */
		if (value != NULL && strpbrk(value, " \r\n\t") != NULL)
			__builtin_trap();
		if (++guard > 100000)
			__builtin_trap(); /* no progress */
	}
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpd_stream st;
	struct mem m = { data, size, 0 };

	parsers(data, size);
	stream_init(&st, mem_read, mem_write, &m, 1000);
	if (devnull >= 0 && saved_stderr >= 0)
		dup2(devnull, 2);
	smtpd_session_run(&st, "192.0.2.1", "unknown");
	if (devnull >= 0 && saved_stderr >= 0)
		dup2(saved_stderr, 2);
	stream_free(&st);
	return 0;
}
