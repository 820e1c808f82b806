/*
 * log — tern's logging, with fixed meanings for each level.
 *
 *   log_info     normal events (one line per message and per recipient).
 *   log_warning  something is wrong but the process goes on.
 *   log_fatal    the environment failed (config, disk, resources): log and exit(1).
 *   log_panic    a bug in tern: log and abort() so a core is left.
 *
 * Output goes to syslog with the mail facility, or to stderr (foreground and
 * development mode) as "ident[pid]: level: text".  Messages are single lines:
 * control characters in the formatted text are replaced by '?' so no input
 * can forge a log line.
 */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <stdarg.h>

enum log_dest { LOG_TO_SYSLOG, LOG_TO_STDERR };

/* Set the ident ("tern/smtpd") and destination; may be called again. */
void log_open(const char *ident, enum log_dest dest);
/* Also send log_info lines to stderr when verbose is set (debug aid). */
void log_set_verbose(int verbose);
int log_verbose(void);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* only when verbose */
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
