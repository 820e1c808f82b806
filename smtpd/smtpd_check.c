/*
 * smtpd_check.c — who may send mail to whom (recipient policy).
 *
 * Public: smtpd_check_client_trusted, smtpd_check_rcpt.
 *
 * A recipient may be accepted when its domain is local (mydestination),
 * when it is a relay domain (relay_domains), or when the client is trusted
 * (mynetworks).  Anything else is "554 5.7.1 Relay access denied".  Then
 * resolve_rcpt_check (shared with the queue manager) decides whether tern
 * would deliver it: a local recipient that does not exist is "550 5.1.1",
 * a table that cannot be read "451 4.3.0".  An untrusted client never gets a
 * local part that another mail system could read as a route to somewhere
 * else ("user%other", "other!user", "\"user@other\""), even at a local
 * domain: those are the classic open-relay tricks.
 *
 * The mynetworks list is parsed once per process and again only when the
 * configured text changes; a list that does not parse trusts nobody (and is
 * reported once).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "conf.h"
#include "log.h"
#include "resolve.h"
#include "smtpd.h"
#include "strutil.h"
#include "xalloc.h"

static struct cidr_list *mynets;
static char *mynets_text; /* the cf.mynetworks that mynets was parsed from */

int
smtpd_check_client_trusted(const char *ip)
{
	const char *text = cf.mynetworks != NULL ? cf.mynetworks : "";

	if (mynets_text == NULL || strcmp(mynets_text, text) != 0) {
		char err[256];

		cidr_list_free(mynets);
		free(mynets_text);
		mynets_text = xstrdup(text);
		mynets = cidr_list_parse(text, err, sizeof(err));
		if (mynets == NULL)
			log_warning("mynetworks: %s; no client is trusted", err);
	}
	return mynets != NULL && cidr_list_match(mynets, ip);
}

/* A local part that could route the mail onwards somewhere else. */
static int
has_route_chars(const char *local)
{
	return strpbrk(local, "%!@") != NULL;
}

int
smtpd_check_rcpt(const struct addr *rcpt, int trusted, char *reply, size_t replysize)
{
	const char *dest = cf.mydestination != NULL ? cf.mydestination : "";
	const char *relay = cf.relay_domains != NULL ? cf.relay_domains : "";

	int ok = trusted;

	if (!ok && !has_route_chars(rcpt->local) && rcpt->domain[0] != '\0')
		ok = list_has_domain(dest, rcpt->domain) || list_has_domain(relay, rcpt->domain);
	if (!ok) {
		snprintf(reply, replysize, "554 5.7.1 <%s>: Relay access denied", rcpt->mailbox);
		return -1;
	}
	/* The same routing and existence check the queue manager applies. */
	switch (resolve_rcpt_check(rcpt->mailbox)) {
	case RCPT_ACCEPT:
		return 0;
	case RCPT_UNKNOWN:
		snprintf(reply, replysize,
			 "550 5.1.1 <%s>: Recipient address rejected: User unknown in local recipient table",
			 rcpt->mailbox);
		return -1;
	case RCPT_TEMPFAIL:
		break;
	}
	snprintf(reply, replysize, "451 4.3.0 <%s>: Temporary lookup failure", rcpt->mailbox);
	return -1;
}
