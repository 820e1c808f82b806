/*
 * postdrop — main: make a hostile start safe, then postdrop_run.
 *
 *   postdrop [-c config] [-q]
 *
 * Installed setgid setgid_group (mode 2755), so everything the caller
 * controls is suspect: closed fds 0-2 are reopened on /dev/null before
 * anything can be opened onto them, the environment is cleared (no config
 * path, TZ or locale from it), the umask and working directory are reset.
 * -c is honoured only when it cannot gain anything: for root, when postdrop
 * is not running set-id (development builds), or when it names the
 * compiled-in default.  -q sends a flush request to pickup (sendmail -q).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "postdrop.h"

#ifndef TERN_SYSCONFDIR
#define TERN_SYSCONFDIR "/etc/tern"
#endif
#define DEFAULT_CONFIG TERN_SYSCONFDIR "/tern.conf"

/* fds 0, 1, 2 must exist, or a file we open could become "stderr". */
static void sane_fds(void)
{
	int fd;

	for (fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		if (open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
			_exit(EX_OSERR);
	}
}

/* May the caller choose this configuration file? */
static int config_allowed(const char *path)
{
	char a[PATH_MAX], b[PATH_MAX];

	if (getuid() == 0 || (getegid() == getgid() && geteuid() == getuid()))
		return 1;
	return realpath(path, a) && realpath(DEFAULT_CONFIG, b) && strcmp(a, b) == 0;
}

int main(int argc, char **argv)
{
	const char *config = DEFAULT_CONFIG;
	char err[1024];
	int ch, flush = 0;

	sane_fds();
	if (clearenv() != 0)
		_exit(EX_OSERR);
	umask(022);
	if (chdir("/") < 0)
		_exit(EX_OSERR);
	postdrop_signals();
	log_open("postdrop", LOG_TO_STDERR);
	while ((ch = getopt(argc, argv, "c:qv")) != -1) {
		switch (ch) {
		case 'c': config = optarg; break;
		case 'q': flush = 1; break;
		case 'v': break;
		default:
			fprintf(stderr, "usage: postdrop [-c config] [-q]\n");
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: postdrop [-c config] [-q]\n");
		return EX_USAGE;
	}
	if (!config_allowed(config)) {
		fprintf(stderr, "postdrop: -c %s: only root may choose another configuration\n", config);
		return EX_USAGE;
	}
	if (conf_load(config, err, sizeof(err)) < 0 || conf_finish(err, sizeof(err)) < 0) {
		fprintf(stderr, "postdrop: %s\n", err);
		return EX_CONFIG;
	}
	return flush ? postdrop_flush() : postdrop_run();
}
