/*
 * resolve — address → transport and next hop (rules in resolve.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "buf.h"
#include "cdbmap.h"
#include "conf.h"
#include "localrcpt.h"
#include "log.h"
#include "resolve.h"
#include "strutil.h"

static struct cdbmap *transport_map;

int resolve_init(char *err, size_t errsize)
{
	if (transport_map) {
		cdbmap_close(transport_map);
		transport_map = NULL;
	}
	if (!*cf.transport_maps)
		return 0;
	transport_map = cdbmap_open_table(cf.transport_maps);
	if (!transport_map) {
		snprintf(err, errsize, "transport_maps %s: %s", cf.transport_maps, strerror(errno));
		return -1;
	}
	return 0;
}

const char *transport_name(enum transport t)
{
	switch (t) {
	case TR_LOCAL: return "local";
	case TR_SMTP: return "smtp";
	case TR_ERROR: return "error";
	case TR_DISCARD: return "discard";
	}
	return "?";
}

static void default_smtp(const char *domain, struct route *rt)
{
	rt->transport = TR_SMTP;
	str_copy(rt->nexthop, sizeof(rt->nexthop), *cf.relayhost ? cf.relayhost : domain);
}

int resolve_parse_value(const char *value, const char *domain, struct route *rt)
{
	const char *colon = strchr(value, ':');
	const char *hop;
	size_t tlen;

	memset(rt, 0, sizeof(*rt));
	tlen = colon ? (size_t)(colon - value) : strlen(value);
	hop = colon ? colon + 1 : "";
	if (tlen == 5 && strncmp(value, "local", 5) == 0) {
		rt->transport = TR_LOCAL;
		str_copy(rt->nexthop, sizeof(rt->nexthop), "local");
	} else if (tlen == 4 && strncmp(value, "smtp", 4) == 0) {
		if (!*hop)
			default_smtp(domain, rt);
		else if (str_copy(rt->nexthop, sizeof(rt->nexthop), hop) < 0 || strchr(hop, ' '))
			return -1;
		rt->transport = TR_SMTP;
	} else if (tlen == 5 && strncmp(value, "error", 5) == 0) {
		rt->transport = TR_ERROR;
		if (!*hop)
			hop = "5.0.0 mail for this address is rejected by the transport table";
		if (str_copy(rt->error, sizeof(rt->error), hop) < 0)
			return -1;
	} else if (tlen == 7 && strncmp(value, "discard", 7) == 0) {
		rt->transport = TR_DISCARD;
	} else {
		return -1;
	}
	return 0;
}

/* 1 found (rt set), 0 absent, -1 table error. */
static int map_lookup(const char *key, const char *domain, struct route *rt)
{
	struct buf value;
	int r;

	if (!transport_map)
		return 0;
	buf_init(&value, 1024);
	r = cdbmap_lookup(transport_map, key, &value);
	if (r == 1 && resolve_parse_value(value.data, domain, rt) < 0) {
		log_warning("transport_maps %s: bad value for %s: %s", cf.transport_maps, key, value.data);
		errno = EINVAL;
		r = -1;
	}
	buf_free(&value);
	return r;
}

static int lookup_transport(const char *address, const char *domain, struct route *rt)
{
	char key[ADDR_DOMAIN_MAX + 2];
	const char *p;
	int r;

	if ((r = map_lookup(address, domain, rt)) != 0)
		return r;
	if (!*domain)
		return 0;
	if ((r = map_lookup(domain, domain, rt)) != 0)
		return r;
	for (p = strchr(domain, '.'); p; p = strchr(p + 1, '.')) {
		if (str_copy(key, sizeof(key), p) < 0)
			return 0;
		if ((r = map_lookup(key, domain, rt)) != 0)
			return r;
	}
	return 0;
}

int resolve_address(const char *address, struct route *rt)
{
	const char *at = strrchr(address, '@');
	const char *domain = at ? at + 1 : "";
	char lower[ADDR_SIZE];
	int r;

	memset(rt, 0, sizeof(*rt));
	if (str_copy(lower, sizeof(lower), address) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	r = lookup_transport(str_lower(lower), domain, rt);
	if (r < 0)
		return -1;
	if (r > 0)
		return 0;
	if (!*domain || list_has_domain(cf.mydestination, domain)) {
		rt->transport = TR_LOCAL;
		str_copy(rt->nexthop, sizeof(rt->nexthop), "local");
		return 0;
	}
	default_smtp(domain, rt);
	return 0;
}

enum rcpt_verdict resolve_rcpt_check(const char *address)
{
	struct route rt;
	char local[ADDR_SIZE];
	const char *at;
	size_t n;

	if (resolve_address(address, &rt) < 0)
		return RCPT_TEMPFAIL;
	if (rt.transport != TR_LOCAL)
		return RCPT_ACCEPT;
	at = strrchr(address, '@');
	n = at ? (size_t)(at - address) : strlen(address);
	if (n >= sizeof(local))
		return RCPT_UNKNOWN;
	memcpy(local, address, n);
	local[n] = '\0';
	switch (localrcpt_check(local, NULL)) {
	case LOCALRCPT_YES: return RCPT_ACCEPT;
	case LOCALRCPT_NO: return RCPT_UNKNOWN;
	default: return RCPT_TEMPFAIL;
	}
}
