/*
 * resolve — address → transport and next hop (rules in resolve.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "buf.h"
#include "cdbmap.h"
#include "conf.h"
#include "localrcpt.h"
#include "log.h"
#include "resolve.h"
#include "strutil.h"
#include "xalloc.h"

static struct cdbmap *transport_map;
static struct cdbmap *valias_map;

int resolve_init(char *err, size_t errsize)
{
	if (transport_map) {
		cdbmap_close(transport_map);
		transport_map = NULL;
	}
	if (valias_map) {
		cdbmap_close(valias_map);
		valias_map = NULL;
	}
	if (*cf.transport_maps && !(transport_map = cdbmap_open_table(cf.transport_maps))) {
		snprintf(err, errsize, "transport_maps %s: %s", cf.transport_maps, strerror(errno));
		return -1;
	}
	if (*cf.virtual_alias_maps && !(valias_map = cdbmap_open_table(cf.virtual_alias_maps))) {
		snprintf(err, errsize, "virtual_alias_maps %s: %s", cf.virtual_alias_maps, strerror(errno));
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
	if (*domain && list_has_domain(cf.virtual_alias_domains, domain)) {
		rt->transport = TR_ERROR;
		str_copy(rt->error, sizeof(rt->error), "5.1.1 User unknown in virtual alias table");
		return 0;
	}
	/* Virtual mailbox domains are delivered by local too (issue 5). */
	if (!*domain || list_has_domain(cf.mydestination, domain) ||
	    (*cf.virtual_mailbox_domains && list_has_domain(cf.virtual_mailbox_domains, domain))) {
		rt->transport = TR_LOCAL;
		str_copy(rt->nexthop, sizeof(rt->nexthop), "local");
		return 0;
	}
	default_smtp(domain, rt);
	return 0;
}

void valias_list_free(struct valias_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->addr[i]);
	free(l->addr);
	l->addr = NULL;
	l->n = 0;
}

/* The table's value for address (lower-cased key, then "@domain"):
 * 1 found, 0 none, -1 error. */
static int valias_lookup(const char *address, struct buf *value)
{
	char key[ADDR_SIZE + 1];
	const char *at;
	int r;

	if (str_copy(key, sizeof(key), address) < 0)
		return 0;
	str_lower(key);
	if ((r = cdbmap_lookup(valias_map, key, value)) != 0)
		return r;
	at = strrchr(key, '@');
	if (!at || !at[1])
		return 0;
	return cdbmap_lookup(valias_map, at, value);
}

static int valias_has(const struct valias_list *l, const char *a)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcasecmp(l->addr[i], a) == 0)
			return 1;
	return 0;
}

static void valias_push(struct valias_list *l, const char *a)
{
	l->addr = xreallocarray(l->addr, l->n + 1, sizeof(*l->addr));
	l->addr[l->n++] = xstrdup(a);
}

/* Expand address into out; stack holds its ancestors (for loops). */
static enum valias_result valias_expand(const char *address, struct valias_list *stack, struct valias_list *out)
{
	enum valias_result res = VALIAS_EXPANDED;
	struct buf value;
	char *p, *tok, *save = NULL;
	int r;

	if (stack->n >= VALIAS_MAX_DEPTH)
		return VALIAS_LOOP;
	buf_init(&value, 65536);
	r = valias_lookup(address, &value);
	if (r < 0) {
		buf_free(&value);
		return VALIAS_TEMP;
	}
	if (r == 0) { /* a final address */
		buf_free(&value);
		if (out->n >= VALIAS_MAX_LEAVES)
			return VALIAS_LOOP;
		if (!valias_has(out, address))
			valias_push(out, address);
		return VALIAS_EXPANDED;
	}
	valias_push(stack, address);
	for (p = value.data; res == VALIAS_EXPANDED && (tok = strtok_r(p, ", \t", &save)) != NULL; p = NULL) {
		if (strcasecmp(tok, address) == 0) {
			/* maps to itself: deliver it as it is */
			if (out->n >= VALIAS_MAX_LEAVES)
				res = VALIAS_LOOP;
			else if (!valias_has(out, tok))
				valias_push(out, tok);
		} else if (valias_has(stack, tok)) {
			res = VALIAS_LOOP;
		} else if (strlen(tok) >= ADDR_SIZE) {
			res = VALIAS_LOOP; /* cannot be a valid address; treat as a broken entry */
		} else {
			res = valias_expand(tok, stack, out);
		}
	}
	free(stack->addr[--stack->n]);
	buf_free(&value);
	return res;
}

enum valias_result resolve_virtual(const char *address, struct valias_list *out)
{
	struct valias_list stack = { NULL, 0 };
	struct buf value;
	enum valias_result res;
	int r;

	out->addr = NULL;
	out->n = 0;
	if (!valias_map)
		return VALIAS_NONE;
	buf_init(&value, 65536);
	r = valias_lookup(address, &value);
	buf_free(&value);
	if (r < 0)
		return VALIAS_TEMP;
	if (r == 0)
		return VALIAS_NONE;
	res = valias_expand(address, &stack, out);
	valias_list_free(&stack);
	if (res == VALIAS_EXPANDED && out->n == 0)
		res = VALIAS_LOOP; /* an empty value: nowhere to go */
	if (res != VALIAS_EXPANDED)
		valias_list_free(out);
	return res;
}

enum rcpt_verdict resolve_rcpt_check(const char *address)
{
	struct valias_list vl;
	struct route rt;
	char local[ADDR_SIZE];
	const char *at;
	size_t n;

	switch (resolve_virtual(address, &vl)) {
	case VALIAS_EXPANDED:
		valias_list_free(&vl);
		return RCPT_ACCEPT; /* each result is checked when it is delivered */
	case VALIAS_LOOP:
		return RCPT_UNKNOWN;
	case VALIAS_TEMP:
		return RCPT_TEMPFAIL;
	case VALIAS_NONE:
		break;
	}
	at = strrchr(address, '@');
	if (at && list_has_domain(cf.virtual_alias_domains, at + 1))
		return RCPT_UNKNOWN; /* its addresses exist only as alias keys */
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
	switch (localrcpt_check_address(address)) { /* virtual mailboxes need the domain */
	case LOCALRCPT_YES: return RCPT_ACCEPT;
	case LOCALRCPT_NO: return RCPT_UNKNOWN;
	default: return RCPT_TEMPFAIL;
	}
}
