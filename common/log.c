/*
 * log — syslog or stderr logging with fixed level meanings.
 *
 * Public: log_open, log_set_verbose, log_verbose, log_info, log_debug,
 * log_warning, log_fatal (exit 1), log_panic (abort).
 *
 * Each message becomes one bounded line (LOG_LINE_MAX bytes including the
 * "ident[pid]: level: " prefix; longer text is cut and marked with "...").
 * Control characters are replaced by '?' so that input quoted in a message
 * can never start a forged log line.  The stderr line is written with a
 * single write(2) so concurrent processes sharing stderr do not interleave
 * within a line.  Logging never allocates (xalloc's OOM path calls us) and
 * preserves errno.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "selfpid.h"

#define LOG_LINE_MAX 2048
#define LOG_IDENT_MAX 64
#define LOG_CUT_MARK "..."

static char log_ident[LOG_IDENT_MAX] = "tern";
static enum log_dest log_dest = LOG_TO_STDERR;
static int log_verbose_flag;
static int log_syslog_open;

void log_open(const char *ident, enum log_dest dest)
{
	size_t n = strlen(ident);

	if (n >= sizeof(log_ident))
		n = sizeof(log_ident) - 1;
	/* openlog() keeps the pointer: close first so it never sees a half-copied name. */
	if (log_syslog_open) {
		closelog();
		log_syslog_open = 0;
	}
	memcpy(log_ident, ident, n);
	log_ident[n] = '\0';
	log_dest = dest;
	if (dest == LOG_TO_SYSLOG) {
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
		log_syslog_open = 1;
	}
}

void log_set_verbose(int verbose)
{
	log_verbose_flag = verbose != 0;
}

int log_verbose(void)
{
	return log_verbose_flag;
}

/* Replace control characters (and DEL) so one message stays one line. */
static void log_scrub(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			s[i] = '?';
	}
}

static void log_write_stderr(const char *level, const char *text)
{
	char line[LOG_LINE_MAX];
	int n;

	n = snprintf(line, sizeof(line) - 1, "%s[%ld]: %s: %s", log_ident, (long)self_pid(), level, text);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1) {
		/* Cut: keep room for the marker and the newline. */
		n = (int)(sizeof(line) - 1 - 1 - strlen(LOG_CUT_MARK));
		/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): marker written into a line that gets its own newline and length */
		memcpy(line + n, LOG_CUT_MARK, strlen(LOG_CUT_MARK));
		n += (int)strlen(LOG_CUT_MARK);
	}
	line[n++] = '\n';
	/* One write; a short write or EINTR here is not worth a retry loop that could split the line. */
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

static void __attribute__((format(printf, 3, 0)))
log_emit(int prio, const char *level, const char *fmt, va_list ap)
{
	char text[LOG_LINE_MAX];
	int saved = errno;
	int n;

	n = vsnprintf(text, sizeof(text), fmt, ap);
	if (n < 0) {
		snprintf(text, sizeof(text), "(unformattable message: %s)", fmt);
		n = (int)strlen(text);
	} else if ((size_t)n >= sizeof(text)) {
		n = (int)(sizeof(text) - 1);
		/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): overwrites the tail of a terminated string; the NUL at text[n] stays */
		memcpy(text + n - strlen(LOG_CUT_MARK), LOG_CUT_MARK, strlen(LOG_CUT_MARK));
	}
	log_scrub(text, (size_t)n);

	if (log_dest == LOG_TO_SYSLOG) {
		if (!log_syslog_open) {
			openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
			log_syslog_open = 1;
		}
		syslog(prio, "%s", text);
		if (log_verbose_flag)
			log_write_stderr(level, text);
	} else {
		log_write_stderr(level, text);
	}
	errno = saved;
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_INFO, "info", fmt, ap);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_verbose_flag)
		return;
	va_start(ap, fmt);
	log_emit(LOG_DEBUG, "debug", fmt, ap);
	va_end(ap);
}

void log_warning(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_WARNING, "warning", fmt, ap);
	va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_CRIT, "fatal", fmt, ap);
	va_end(ap);
	exit(1);
}

void log_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_CRIT, "panic", fmt, ap);
	va_end(ap);
	abort();
}
