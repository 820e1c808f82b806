/*
 * ternctl — the administrator's command-line tool.
 *
 *   ternctl [-c config] makemap FILE          compile FILE into FILE.cdb
 *   ternctl [-c config] [-o key=value] check  validate the configuration and
 *                                             the queue tree's owners/modes
 *   ternctl [-c config] start|stop|reload|status   control the master
 *   ternctl [-c config] [-o key=value] config [key ...]
 *                                             print the effective values
 *
 * Exit codes: 0 success, 1 failure (the reason on stderr as "file:line:
 * reason"), 64 usage error (EX_USAGE).  ternctl never needs the daemons to
 * be running and never writes anything but the map it was asked to build.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdbmap.h"
#include "conf.h"
#include "ctl_master.h"
#include "ctl_aliases.h"
#include "ctl_queue.h"
#include "ctl_passwd.h"
#include "log.h"
#include "xalloc.h"

#ifndef TERN_SYSCONFDIR
#define TERN_SYSCONFDIR "/etc/tern"
#endif

#define EX_USAGE_CODE 64
#define MAX_OVERRIDES 64

static void usage(void)
{
	fprintf(stderr, "usage: ternctl [-c config] [-o key=value] command [args]\n"
			"commands:\n"
			"  makemap FILE     compile the text table FILE into FILE.cdb\n"
			"  check            validate the configuration and the queue tree's owners and modes\n"
			"  start | stop     start tern-master in the background / stop it\n"
			"  reload           re-read the configuration (SIGHUP to the master)\n"
			"  status           say whether tern runs (exit 0) or not (exit 3)\n"
			"  newaliases       compile alias_maps into its .cdb table\n"
			"  passwd USER      set USER's password in smtpd_sasl_password_maps\n"
			"  list [--json]    the mail queue (as mailq)\n"
			"  show ID          one message: envelope, recipients, content\n"
			"  flush [DOMAIN]   retry deferred mail now (all, or for DOMAIN)\n"
			"  delete|hold|release|requeue ID|ALL\n"
			"  config [key...]  print the effective configuration\n");
	exit(EX_USAGE_CODE);
}

/* Load path, apply the -o overrides and finish; 0 or -1 (reported). */
static int load_config(const char *path, char **overrides, int noverrides)
{
	char err[1024];

	if (conf_load(path, err, sizeof(err)) < 0)
		goto fail;
	for (int i = 0; i < noverrides; i++)
		if (conf_override(overrides[i], err, sizeof(err)) < 0)
			goto fail;
	if (conf_finish(err, sizeof(err)) < 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "ternctl: %s\n", err);
	return -1;
}

static int cmd_makemap(int argc, char **argv)
{
	char err[1024];
	char *dst;
	int rc;

	if (argc != 2)
		usage();
	dst = xmalloc(strlen(argv[1]) + 5);
	/* NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.strcpy): dst was sized strlen(argv[1]) + 5 just above */
	strcpy(dst, argv[1]);
	/* NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.strcpy): dst was sized strlen(argv[1]) + 5 just above */
	strcat(dst, ".cdb");
	rc = cdbmap_compile(argv[1], dst, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "ternctl: %s\n", err);
	free(dst);
	return rc < 0 ? 1 : 0;
}

static int cmd_config(int argc, char **argv)
{
	int rc = 0;

	if (argc == 1) {
		conf_dump(STDOUT_FILENO);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		if (conf_dump_key(STDOUT_FILENO, argv[i]) < 0) {
			fprintf(stderr, "ternctl: unknown key \"%s\"\n", argv[i]);
			rc = 1;
		}
	}
	return rc;
}

int main(int argc, char **argv)
{
	const char *config = TERN_SYSCONFDIR "/tern.conf";
	char *overrides[MAX_OVERRIDES];
	int noverrides = 0, ch;

	log_open("ternctl", LOG_TO_STDERR);
	/* Installed (linked) as "newaliases": the sendmail-compatible command. */
	const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	if (strcmp(base, "newaliases") == 0)
		return ctl_newaliases_main(argc, argv);
	if (strcmp(base, "mailq") == 0) { /* sendmail-compatible: mailq [--json] */
		static char list[] = "list";
		argv[0] = list;
		/* TERN_CONFIG names another configuration (Postfix: MAIL_CONFIG);
		 * ternctl is never setuid, so the environment is the caller's own. */
		if (getenv("TERN_CONFIG"))
			config = getenv("TERN_CONFIG");
		return load_config(config, NULL, 0) < 0 ? 1 : ctl_queue(argc, argv);
	}
	while ((ch = getopt(argc, argv, "+c:o:")) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'o':
			if (noverrides == MAX_OVERRIDES) {
				fprintf(stderr, "ternctl: more than %d -o options\n", MAX_OVERRIDES);
				return EX_USAGE_CODE;
			}
			overrides[noverrides++] = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	if (strcmp(argv[0], "makemap") == 0)
		return cmd_makemap(argc, argv);
	if (strcmp(argv[0], "newaliases") == 0) /* issue 5: ctl/ctl_aliases.c */
		return argc != 1 ? (usage(), 64) : load_config(config, overrides, noverrides) < 0 ? 1 : ctl_newaliases();
	if (strcmp(argv[0], "passwd") == 0) /* issue 9: ctl/ctl_passwd.c */
		return argc != 2 ? (usage(), 64) : load_config(config, overrides, noverrides) < 0 ? 1 : ctl_passwd(argc, argv);
	if (strcmp(argv[0], "check") == 0) {
		if (argc != 1)
			usage();
		if (load_config(config, overrides, noverrides) < 0)
			return 1;
		return ctl_check_queue();
	}
	if (strcmp(argv[0], "start") == 0 || strcmp(argv[0], "stop") == 0 || strcmp(argv[0], "reload") == 0 ||
	    strcmp(argv[0], "status") == 0) {
		if (argc != 1)
			usage();
		if (load_config(config, overrides, noverrides) < 0)
			return 1;
		return ctl_master(argv[0], config, overrides, noverrides);
	}
	if (ctl_queue_is_command(argv[0])) { /* issue 4: ctl/ctl_queue.c */
		if (load_config(config, overrides, noverrides) < 0)
			return 1;
		int qrc = ctl_queue(argc, argv);
		if (qrc == EX_USAGE_CODE)
			usage();
		return qrc;
	}
	if (strcmp(argv[0], "config") == 0) {
		if (load_config(config, overrides, noverrides) < 0)
			return 1;
		fflush(stdout);
		return cmd_config(argc, argv);
	}
	fprintf(stderr, "ternctl: unknown command \"%s\"\n", argv[0]);
	usage();
}
