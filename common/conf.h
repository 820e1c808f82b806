/*
 * conf — tern.conf, the one configuration file.
 *
 * Syntax: "key = value" lines; '#' starts a comment line; blank lines are
 * ignored; a line that starts with whitespace continues the previous value
 * (joined with one space).  Keys are the names below (Postfix's names where
 * the meaning is the same).  An unknown key, a duplicate key, a missing '='
 * or a value of the wrong type is an error reported as "file:line: reason";
 * a file with errors is rejected whole.  Every key has a documented default
 * (docs/config.md), so an empty file is a valid configuration.
 *
 * Types: string; list (comma and/or whitespace separated, kept as the raw
 * string); int (decimal, >= 0); bool (yes/no); time (a number with an
 * optional unit s, m, h, d, w; default seconds); size (bytes, optional k/m/g
 * suffix, powers of 1024).
 *
 * The parsed values live in the global `cf`, read-only after conf_load.
 */
#ifndef TERN_CONF_H
#define TERN_CONF_H

#include <stddef.h>

/* The occurrences of a repeatable key, in file order. */
struct conf_line {
	char *value;
	int line; /* in conf_file(); 0 for a -o override */
};
struct conf_lines {
	struct conf_line *v;
	size_t n;
};

struct tern_conf {
	/* identity */
	char *myhostname;        /* default: gethostname() */
	char *mydomain;          /* default: myhostname minus its first label, or "localdomain" */
	char *myorigin;          /* default: myhostname */
	char *mydestination;     /* list; default: "$myhostname, localhost.$mydomain, localhost" */
	char *mynetworks;        /* list; default: "127.0.0.0/8, [::1]/128" */
	char *relay_domains;     /* list; default: "" */
	char *relayhost;         /* nexthop for all remote mail; default: "" (MX) */
	char *transport_maps;    /* table (FILE, opened as FILE.cdb); default: "" (none) */
	char *alias_maps;        /* aliases table (FILE, opened as FILE.cdb); default: /etc/aliases */

	/* where things are */
	char *queue_directory;   /* default: /var/spool/tern */
	char *daemon_directory;  /* default: $(PREFIX)/libexec/tern */
	char *mail_owner;        /* unprivileged user; default: tern */
	char *syslog_name;       /* default: tern */

	/* smtpd */
	char *smtpd_listen;      /* list of host:port; default: "0.0.0.0:25" */
	char *smtpd_banner;      /* text after "220 "; default: "$myhostname ESMTP tern" */
	long long smtpd_timeout;          /* time; default 300s */
	long long smtpd_recipient_limit;  /* int; default 1000 */
	long long smtpd_min_idle;         /* int; default 2 */
	long long message_size_limit;     /* size; default 10240000 */

	/* processes */
	long long default_process_limit;  /* int; default 100 */
	long long max_use;                /* int: connections per child before it exits; default 100 */
	long long max_idle;               /* time: idle child lifetime; default 100s */

	/* queue manager */
	long long queue_run_delay;        /* time; default 300s */
	long long minimal_backoff;        /* time; default 300s */
	long long maximal_backoff;        /* time; default 4000s */
	long long maximal_queue_lifetime; /* time; default 5d */
	long long bounce_queue_lifetime;  /* time; default 5d */
	long long default_destination_concurrency_limit; /* int; default 20 */
	long long local_destination_concurrency_limit;   /* int; default 2 */
	long long default_destination_recipient_limit;   /* int; default 50 */

	/* local delivery */
	char *home_mailbox;        /* default: "Maildir/" */
	char *recipient_delimiter; /* default: "+" */
	char *local_mailbox_base;  /* default: "" ; set: every local recipient gets base/USER/Maildir/ without Unix accounts */

	/* remote delivery */
	long long smtp_connect_timeout; /* time; default 30s */
	long long smtp_reply_timeout;   /* time; default 300s */

	/* address syntax (added after the first draft; kept last) */
	int smtputf8_enable;            /* bool; default yes: offer SMTPUTF8 */
	int strict_rfc821_envelopes;    /* bool; default no: tolerate MAIL FROM:user@dom without < > */
	struct conf_lines service;
};

extern struct tern_conf cf;

/* Set every key to its default (called by conf_load; exposed for tests). */
void conf_defaults(void);
/* Reset to defaults, then read path.  0 on success; -1 with "path:line: reason"
 * in err.  On error cf holds the defaults. */
int conf_load(const char *path, char *err, size_t errsize);
/* Same as conf_load for text held in memory; name is used in messages. */
int conf_load_string(const char *text, const char *name, char *err, size_t errsize);
/* Apply one "key=value" override (command line -o); 0 or -1 with err. */
int conf_override(const char *kv, char *err, size_t errsize);
/* Finish: fill the computed defaults ($myhostname expansion etc.) and check
 * cross-key constraints (minimal_backoff <= maximal_backoff...). 0 or -1. */
int conf_finish(char *err, size_t errsize);
/* Write every key = value (effective values) to fd, in table order. */
void conf_dump(int fd);
const char *conf_file(void);
/* 1 if name is a known key. */
int conf_known(const char *name);
/* Write "name = value" of one key to fd; -1 when the key is unknown. */
int conf_dump_key(int fd, const char *name);

#endif
