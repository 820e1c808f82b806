/*
 * ctl_aliases — newaliases: compile the aliases file into its cdb table.
 *
 *   ternctl [-c config] [-o key=value] newaliases
 *   newaliases [-c config] [-o key=value]     (ternctl installed under that name)
 *
 * Reads alias_maps from the configuration (FILE, or FILE.cdb: both name
 * the source FILE), compiles it with aliases_compile (common/aliases.h:
 * FILE.cdb.tmp, fsync, atomic rename, so the local agent and smtpd see the
 * old table or the new one) and prints how many aliases it wrote.  Errors
 * go to stderr as "FILE:LINE: reason"; the old table stays in place.
 * Exit codes: 0 done, 1 error, 64 usage (as ternctl).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aliases.h"
#include "conf.h"
#include "ctl_aliases.h"

#ifndef TERN_SYSCONFDIR
#define TERN_SYSCONFDIR "/etc/tern"
#endif

int ctl_newaliases(void)
{
	char src[4096], dst[4100], err[1024];
	size_t n = strlen(cf.alias_maps), count = 0;

	if (n == 0) {
		fprintf(stderr, "newaliases: alias_maps is empty: no aliases file configured\n");
		return 1;
	}
	if (n >= sizeof(src)) {
		fprintf(stderr, "newaliases: alias_maps is too long\n");
		return 1;
	}
	memcpy(src, cf.alias_maps, n + 1);
	if (n > 4 && strcmp(src + n - 4, ".cdb") == 0)
		src[n - 4] = '\0'; /* the admin may name either file */
	snprintf(dst, sizeof(dst), "%s.cdb", src);
	if (aliases_compile(src, dst, &count, err, sizeof(err)) < 0) {
		fprintf(stderr, "newaliases: %s\n", err);
		return 1;
	}
	printf("newaliases: %s: %zu aliases\n", dst, count);
	return 0;
}

int ctl_newaliases_main(int argc, char **argv)
{
	const char *config = TERN_SYSCONFDIR "/tern.conf";
	char err[1024];
	int ch;
	char *ov[64];
	int nov = 0;

	while ((ch = getopt(argc, argv, "c:o:")) != -1) {
		if (ch == 'c') {
			config = optarg;
		} else if (ch == 'o' && nov < 64) {
			ov[nov++] = optarg;
		} else {
			fprintf(stderr, "usage: newaliases [-c config] [-o key=value]\n");
			return 64;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: newaliases [-c config] [-o key=value]\n");
		return 64;
	}
	/* A missing configuration file means the defaults (/etc/aliases). */
	if (access(config, F_OK) == 0 ? conf_load(config, err, sizeof(err)) < 0
				      : conf_load_string("", config, err, sizeof(err)) < 0)
		goto fail;
	for (int i = 0; i < nov; i++)
		if (conf_override(ov[i], err, sizeof(err)) < 0)
			goto fail;
	if (conf_finish(err, sizeof(err)) < 0)
		goto fail;
	return ctl_newaliases();
fail:
	fprintf(stderr, "newaliases: %s\n", err);
	return 1;
}
