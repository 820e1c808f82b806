/*
 * sendmail_args — the sendmail command line, as Postfix's sendmail(1)
 * documents it.  Options tern implements change struct sm_opts; options
 * that mean nothing here (-oem, -odb, -odi, -L, -X, -G, -h, -U, ...) are
 * accepted and ignored (never interpreted: -X never opens a file, -oQ never
 * names a directory); an unknown option is EX_USAGE.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "addr.h"
#include "proto_deliver.h"
#include "sendmail.h"

static int usage(const char *why, const char *arg)
{
	fprintf(stderr, "sendmail: %s%s%.200s\n", why, arg ? ": " : "", arg ? arg : "");
	fprintf(stderr, "usage: sendmail [-t] [-i] [-f sender] [-F name] [-N dsn] [-R full|hdrs] [-V envid]\n"
			"                [-B 7bit|8bitmime] [-C config] [-v] [--] [recipient ...]\n"
			"       sendmail -bs | -bp | -bi | -q\n");
	return EX_USAGE;
}

static int parse_notify(const char *v, unsigned *out)
{
	char tok[16];
	const char *p = v;
	unsigned bits = 0;

	while (*p) {
		size_t n = strcspn(p, ",");

		if (n == 0 || n >= sizeof(tok))
			return -1;
		memcpy(tok, p, n);
		tok[n] = 0;
		if (strcasecmp(tok, "never") == 0)
			bits |= NOTIFY_NEVER;
		else if (strcasecmp(tok, "success") == 0)
			bits |= NOTIFY_SUCCESS;
		else if (strcasecmp(tok, "failure") == 0)
			bits |= NOTIFY_FAILURE;
		else if (strcasecmp(tok, "delay") == 0)
			bits |= NOTIFY_DELAY;
		else
			return -1;
		p += n;
		if (*p == ',')
			p++;
	}
	if (bits == 0 || ((bits & NOTIFY_NEVER) && bits != NOTIFY_NEVER))
		return -1;
	*out = bits;
	return 0;
}

/* -V: RFC 3461 xtext-safe printable ASCII, no spaces, at most 100. */
static int envid_ok(const char *v)
{
	const unsigned char *p;

	if (strlen(v) > MD_ENVID_MAX)
		return 0;
	for (p = (const unsigned char *)v; *p; p++)
		if (*p <= 32 || *p >= 127)
			return 0;
	return 1;
}

static int set_sender(struct sm_opts *o, const char *v)
{
	static struct addr a;

	if (strlen(v) >= ADDR_SIZE ||
	    addr_parse_mailbox(v, ADDR_ALLOW_NULL | ADDR_NO_BRACKETS | ADDR_ALLOW_NO_DOMAIN | ADDR_UTF8, &a) != ADDR_OK)
		return -1;
	o->sender = a.is_null ? "" : a.mailbox;
	return 0;
}

static int opt_b(struct sm_opts *o, const char *v)
{
	if (strcmp(v, "m") == 0)
		o->mode = SM_DELIVER;
	else if (strcmp(v, "s") == 0)
		o->mode = SM_SMTP;
	else if (strcmp(v, "p") == 0)
		o->mode = SM_MAILQ;
	else if (strcmp(v, "i") == 0)
		o->mode = SM_NEWALIASES;
	else
		return usage("unsupported -b mode", v);
	return 0;
}

int sm_parse_args(int argc, char **argv, struct sm_opts *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->dot_ends = 1;
	optind = 1;
	opterr = 0;
	while ((c = getopt(argc, argv, ":A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:q::r:tvx")) != -1) {
		switch (c) {
		case 'B':
			if (strcasecmp(optarg, "8bitmime") == 0)
				o->flags |= DELIVER_F_8BITMIME;
			else if (strcasecmp(optarg, "7bit") != 0)
				return usage("bad -B body type (7BIT or 8BITMIME)", optarg);
			break;
		case 'C': o->config = optarg; break;
		case 'F': o->fullname = optarg; break;
		case 'I': o->mode = SM_NEWALIASES; break;
		case 'N':
			if (parse_notify(optarg, &o->notify) < 0)
				return usage("bad -N (never, or success,delay,failure)", optarg);
			break;
		case 'R':
			if (strcasecmp(optarg, "hdrs") == 0)
				o->flags |= DELIVER_F_RET_HDRS;
			else if (strcasecmp(optarg, "full") != 0)
				return usage("bad -R (full or hdrs)", optarg);
			break;
		case 'V':
			if (!envid_ok(optarg))
				return usage("bad -V envelope id", optarg);
			o->envid = optarg;
			break;
		case 'b':
			if (opt_b(o, optarg) != 0)
				return EX_USAGE;
			break;
		case 'f':
		case 'r':
			if (set_sender(o, optarg) < 0)
				return usage("bad sender address", optarg);
			break;
		case 'i': o->dot_ends = 0; break;
		case 'o':
			if (strcmp(optarg, "i") == 0)
				o->dot_ends = 0; /* -oi; every other -oX is ignored */
			break;
		case 'q': o->mode = SM_FLUSH; break;
		case 't': o->extract = 1; break;
		case 'v': o->verbose = 1; break;
		case 'A': case 'G': case 'L': case 'O': case 'U': case 'X': case 'c': case 'e':
		case 'h': case 'm': case 'n': case 'p': case 'x':
			break; /* accepted for compatibility, ignored (as Postfix does) */
		case ':':
			return usage("option needs a value", argv[optind - 1]);
		default:
			return usage("unknown option", argv[optind - 1]);
		}
	}
	o->rcpts = argv + optind;
	o->nrcpts = argc - optind;
	return 0;
}
