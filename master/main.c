/*
 * tern-master — the supervisor (see master.h).
 *
 *   tern-master [-c config] [-o key=value]... [-f] [-v] [-D dir]
 *     -f  stay in the foreground and log to stderr
 *     -D  development mode: state under dir, SMTP on 127.0.0.1:2525,
 *         local mail in dir/mail/USER/Maildir (implies -f)
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "master.h"
#include "xalloc.h"

static void usage(void)
{
	fprintf(stderr, "usage: tern-master [-c config] [-o key=value]... [-f] [-v] [-D devdir]\n");
	exit(64);
}

int main(int argc, char **argv)
{
	struct master_opts o = { 0 };
	int c;

	o.config_path = TERN_SYSCONFDIR "/tern.conf";
	o.overrides = xcalloc((size_t)argc, sizeof(char *));
	while ((c = getopt(argc, argv, "c:o:fvD:")) != -1) {
		switch (c) {
		case 'c': o.config_path = optarg; break;
		case 'o': o.overrides[o.noverrides++] = optarg; break;
		case 'f': o.foreground = 1; break;
		case 'v': o.verbose = 1; break;
		case 'D': o.dev_dir = optarg; o.foreground = 1; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	if (o.dev_dir)
		o.config_path = dev_config_write(o.dev_dir);
	c = master_run(&o);
	free(o.overrides);
	return c;
}
