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
	char *setgid_group;      /* group of postdrop; owns maildrop/ and public/; default: ternpost */

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
	long long delay_warning_time;     /* time; default 0 (no delay DSNs) */
	long long qmgr_message_active_limit; /* int; default 1000 */
	char *virtual_alias_maps;         /* table (FILE, opened as FILE.cdb); default "" */
	char *virtual_alias_domains;      /* list; default "" */
	long long default_destination_concurrency_limit; /* int; default 20 */
	long long local_destination_concurrency_limit;   /* int; default 2 */
	long long default_destination_recipient_limit;   /* int; default 50 */

	/* local delivery */
	char *home_mailbox;        /* default: "Maildir/" */
	char *recipient_delimiter; /* default: "+" */
	char *local_mailbox_base;  /* default: "" ; set: every local recipient gets base/USER/Maildir/ without Unix accounts */
	char *mail_spool_directory; /* default: /var/mail (mbox when home_mailbox is empty) */
	long long mailbox_size_limit; /* size; default 51200000; 0: none */
	long long deliver_lock_attempts; /* int; default 40 (250 ms apart) */
	long long stale_lock_time;    /* time; default 300s */
	char *default_privs;       /* user for alias commands/files; default: nobody */
	char *forward_path;        /* .forward file relative to home; default ".forward"; "" off */
	char *allow_mail_to_commands; /* list of alias, forward, include; default "alias, forward" */
	char *allow_mail_to_files;    /* list of alias, forward, include; default "alias, forward" */
	long long command_time_limit; /* time; default 1000s */
	char *virtual_mailbox_base;   /* default "" */
	char *virtual_mailbox_maps;   /* table FILE (FILE.cdb): address -> path under the base */
	char *virtual_mailbox_domains; /* list; default "" */
	char *virtual_uid_maps;       /* "static:N"; default "" */
	char *virtual_gid_maps;       /* "static:N"; default "" */

	/* remote delivery */
	long long smtp_connect_timeout; /* time; default 30s */
	long long smtp_helo_timeout;    /* time; default 300s: greeting and EHLO/HELO replies */
	long long smtp_mail_timeout;    /* time; default 300s */
	long long smtp_rcpt_timeout;    /* time; default 300s */
	long long smtp_data_init_timeout; /* time; default 120s: reply to DATA */
	long long smtp_data_xfer_timeout; /* time; default 180s: each content write */
	long long smtp_data_done_timeout; /* time; default 600s: reply to "." */
	long long smtp_quit_timeout;    /* time; default 300s */
	long long smtp_rset_timeout;    /* time; default 20s */
	long long smtp_connection_reuse_count_limit; /* int; default 100 */
	long long smtp_connection_reuse_time_limit;  /* time; default 300s */
	char *smtp_address_preference;  /* any | ipv4 | ipv6; default any */
	char *resolver;                 /* "ip:port" nameserver for send; default "" (resolv.conf) */
	char *debug_peer_list;          /* list of domains/hosts/IPs whose SMTP conversation is logged */

	/* address syntax (added after the first draft; kept last) */
	int smtputf8_enable;            /* bool; default yes: offer SMTPUTF8 */
	int strict_rfc821_envelopes;    /* bool; default no: tolerate MAIL FROM:user@dom without < > */

	/* smtpd limits and policy (issue 3) */
	char *bare_newline;               /* "normalize" (default) or "reject" */
	int disable_vrfy_command;         /* bool; default no */
	int smtpd_peername_lookup;        /* bool; default yes: reverse + forward-confirmed client name */
	long long smtpd_greet_pause;      /* time; default 0s: wait before the 220, reject early talkers */
	long long smtpd_hard_error_limit; /* int; default 20: errors before 421 4.7.0 */
	long long smtpd_junk_command_limit; /* int; default 100: NOOP/RSET/VRFY/HELP before they count as errors */
	long long smtpd_text_line_limit;  /* int; default 1000: message line octets with CRLF, 0 = none */
	long long header_size_limit;      /* size; default 102400 */
	long long hopcount_limit;         /* int; default 50: Received: headers */
	long long smtpd_min_data_rate;    /* int; default 500 bytes/s, 0 = only smtpd_timeout */

	/* TLS and AUTH (issue 9; docs/config.md) */
	char *submission_listen;          /* list of host:port for submission (AUTH required); default "" */
	char *smtps_listen;               /* list of host:port for implicit TLS + AUTH; default "" */
	char *smtpd_tls_cert_file;        /* PEM chain; "" = no TLS */
	char *smtpd_tls_key_file;         /* PEM key; "" = in smtpd_tls_cert_file */
	char *smtpd_tls_security_level;   /* none | may | encrypt; default may */
	char *smtpd_tls_min_version;      /* default TLSv1.2 */
	char *smtpd_tls_cipherlist;       /* TLS 1.2 ciphers (OpenSSL syntax) */
	char *smtpd_tls_ciphersuites;     /* TLS 1.3 suites; "" = OpenSSL's */
	long long smtpd_tls_ticket_lifetime; /* time; default 12h: session ticket key rotation */
	int smtpd_sasl_auth_enable;       /* bool; default no (submission/smtps: always) */
	int smtpd_tls_auth_only;          /* bool; default yes */
	int smtpd_sasl_plaintext_loopback; /* bool; default no: AUTH without TLS from 127/8, ::1 */
	char *smtpd_sasl_password_maps;   /* table: user -> crypt(3) hash */
	char *smtpd_sender_login_maps;    /* table: sender address or @domain -> logins */
	long long smtpd_auth_failure_limit; /* int; default 3 */
	long long smtpd_auth_failure_delay; /* time; default 1s */
	char *smtp_tls_security_level;    /* none | may | encrypt | verify; default may */
	char *smtp_tls_policy_maps;       /* table: nexthop -> level */
	char *smtp_tls_CAfile;            /* "" = system store */
	char *smtp_sasl_password_maps;    /* table: nexthop -> user:password */

	/* per-client connection cap (issue 11; smtpd/smtpd_peer.c) */
	long long smtpd_client_connection_count_limit; /* int; default 50; 0 = no cap */
	char *smtpd_client_event_limit_exceptions;     /* list; default "$mynetworks" */

	/* the master's service table: repeatable "service = ..." lines (master/master_services.c) */
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
/* Name of the file last loaded (for messages about repeatable keys). */
const char *conf_file(void);
/* 1 if name is a known key. */
int conf_known(const char *name);
/* Write "name = value" of one key to fd; -1 when the key is unknown. */
int conf_dump_key(int fd, const char *name);

#endif
