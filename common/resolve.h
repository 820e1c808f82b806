/*
 * resolve — where a recipient goes.
 *
 * The one code path that maps an address to a transport and a next hop,
 * shared by smtpd (to decide at RCPT time whether tern is responsible) and
 * the queue manager (to route the delivery).  Order, as Postfix admins
 * expect:
 *   1. transport_maps: the full address, then the domain, then each parent
 *      domain as ".parent" (".example.com" matches a.b.example.com);
 *      values "local:", "smtp:", "smtp:[host]:port", "smtp:host",
 *      "error:5.x.y text", "discard:" (an empty next hop means the default);
 *   2. a domain in mydestination (or no domain at all) → local;
 *   3. everything else → smtp to relayhost, or to the domain (MX).
 * A domain in virtual_alias_domains routes to error 5.1.1 (its addresses
 * exist only as virtual alias keys, expanded before routing).
 *
 * Virtual aliases (virtual_alias_maps): resolve_virtual looks up the full
 * address, then "@domain"; a value is a list of addresses (comma and/or
 * space separated), each expanded again, depth first, up to
 * VALIAS_MAX_DEPTH levels and VALIAS_MAX_LEAVES results.  An address that
 * maps to itself (among others) is kept as it is; an address that comes
 * back below itself is a loop.  Duplicate results are dropped.
 */
#ifndef TERN_RESOLVE_H
#define TERN_RESOLVE_H

#include <stddef.h>

#include "proto_deliver.h"

enum transport { TR_LOCAL, TR_SMTP, TR_ERROR, TR_DISCARD };

struct route {
	enum transport transport;
	char nexthop[DELIVER_NEXTHOP_MAX]; /* TR_SMTP: domain, [host]:port...; TR_LOCAL: "local" */
	char error[256];                   /* TR_ERROR: "5.x.y text" */
};

/* Open the tables named in cf (transport_maps).  0 or -1 with err. */
int resolve_init(char *err, size_t errsize);
/* Route address.  0 on success; -1 on a temporary failure (a table could
 * not be read), with errno set. */
int resolve_address(const char *address, struct route *rt);
/* Parse a transport table value into rt (exposed for tests).  0 or -1. */
int resolve_parse_value(const char *value, const char *domain, struct route *rt);
/*
 * Would tern accept mail for this recipient (smtpd's RCPT check)?  The same
 * rules as delivery: the address is routed; a local recipient must exist
 * (localrcpt_check: users, aliases, virtual mailboxes).  Relay policy
 * (mynetworks, relay_domains) is smtpd's own business and is not decided
 * here.  localrcpt_init must have been called.
 */
enum rcpt_verdict { RCPT_ACCEPT, RCPT_UNKNOWN, RCPT_TEMPFAIL };
enum rcpt_verdict resolve_rcpt_check(const char *address);

#define VALIAS_MAX_DEPTH 100
#define VALIAS_MAX_LEAVES 1000

enum valias_result {
	VALIAS_NONE,     /* no entry: deliver the address as it is */
	VALIAS_EXPANDED, /* out holds the final addresses */
	VALIAS_LOOP,     /* a loop, or past the depth/size limits (5.4.6) */
	VALIAS_TEMP      /* the table could not be read */
};

struct valias_list {
	char **addr; /* owned */
	size_t n;
};

void valias_list_free(struct valias_list *l);
/* Expand address through virtual_alias_maps (out is initialised here and
 * must be freed with valias_list_free in every case). */
enum valias_result resolve_virtual(const char *address, struct valias_list *out);

/* Name of a transport for logs and agent selection ("local", "smtp", ...). */
const char *transport_name(enum transport t);

#endif
