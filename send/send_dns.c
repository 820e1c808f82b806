/*
 * send_dns — from a nexthop to the ordered list of addresses to try.
 *
 * "[host]" nexthops skip the MX lookup.  Otherwise the MX records of the
 * domain are looked up with glibc's resolver (res_nquery, which retries a
 * truncated UDP answer over TCP), parsed defensively with ns_parse
 * (send_dns_parse_mx: a malformed answer is an error, never a crash),
 * sorted by preference, and each MX host's addresses appended (getaddrinfo,
 * in its RFC 6724 order) up to SEND_MAX_ADDRS.  A domain without MX records
 * is its own mail exchanger (A/AAAA).
 *
 * Results: NXDOMAIN → perm 5.1.2; a null MX (RFC 7505) → perm 5.1.10; a
 * host without addresses → perm 5.4.4; SERVFAIL, timeouts, malformed
 * answers and other resolver failures → temp 4.4.3.  MX host names must
 * be plain host names (letters, digits, '-', '_', '.'); others are skipped
 * as hostile data.
 *
 * Public: send_dns_parse_mx, send_resolve.
 * Issue 6: shuffling of equal preferences, the `resolver` setting, loop
 * detection against our own addresses, IPv4/IPv6 preference.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "send.h"
#include "xalloc.h"

/* A plain host name: LDH labels (underscore tolerated), no empty label. */
static int mx_name_ok(const char *n)
{
	size_t label = 0;
	if (*n == '\0')
		return 0;
	for (const unsigned char *p = (const unsigned char *)n; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

/* Keep the max lowest preferences: insert in order, dropping the worst. */
static void mx_insert(struct send_mx *mx, size_t max, size_t *n, unsigned pref, const char *name)
{
	size_t i, len = strlen(name);
	if (len >= SEND_HOST_MAX)
		return;
	for (i = 0; i < *n; i++)
		if (strcasecmp(mx[i].name, name) == 0)
			return; /* duplicate */
	if (*n == max) {
		if (pref >= mx[max - 1].pref)
			return;
		(*n)--;
	}
	i = *n;
	while (i > 0 && mx[i - 1].pref > pref) {
		mx[i] = mx[i - 1];
		i--;
	}
	mx[i].pref = pref;
	memcpy(mx[i].name, name, len + 1);
	(*n)++;
}

int send_dns_parse_mx(const unsigned char *ans, size_t len, struct send_mx *mx, size_t max, int *null_mx)
{
	ns_msg msg;
	ns_rr rr;
	size_t n = 0;
	char name[NS_MAXDNAME];

	*null_mx = 0;
	if (len > NS_MAXMSG || max == 0 || ns_initparse(ans, (int)len, &msg) < 0)
		return -1;
	int count = ns_msg_count(msg, ns_s_an);
	for (int i = 0; i < count; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			return -1;
		if (ns_rr_class(rr) != ns_c_in || ns_rr_type(rr) != ns_t_mx)
			continue; /* a CNAME leading to the MX records, or noise */
		const unsigned char *rd = ns_rr_rdata(rr);
		if (ns_rr_rdlen(rr) < 3)
			return -1;
		unsigned pref = ns_get16(rd);
		int used = ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd + 2, name, sizeof(name));
		if (used < 0 || used != (int)ns_rr_rdlen(rr) - 2)
			return -1;
		if (name[0] == '\0' || strcmp(name, ".") == 0) {
			*null_mx = 1;
			continue;
		}
		size_t nl = strlen(name);
		if (nl > 0 && name[nl - 1] == '.')
			name[nl - 1] = '\0';
		if (nl >= SEND_HOST_MAX || !mx_name_ok(name)) {
			log_warning("ignoring MX record with a malformed host name");
			continue;
		}
		mx_insert(mx, max, &n, pref, name);
	}
	return (int)n;
}

static void set_error(struct send_error *err, enum deliver_status st, const char *dsn, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void set_error(struct send_error *err, enum deliver_status st, const char *dsn, const char *fmt, ...)
{
	va_list ap;
	err->status = st;
	snprintf(err->dsn, sizeof(err->dsn), "%s", dsn);
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
}

/*
 * Append the addresses of host to out.  0 when at least one was added,
 * otherwise -1 with err set (perm for a name that does not exist or has no
 * addresses, temp for a resolver failure).
 */
static int add_host(const char *host, const char *port, int numeric_only, struct send_targets *out,
		    struct send_error *err)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = AI_NUMERICSERV | (numeric_only ? AI_NUMERICHOST : 0);
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		if (rc == EAI_NONAME)
			set_error(err, DELIVER_PERM, "5.1.2", "Host or domain name not found. Name service error for name=%s type=A: Host not found", host);
		else if (rc == EAI_NODATA || rc == EAI_ADDRFAMILY)
			set_error(err, DELIVER_PERM, "5.4.4", "Host found but no address record: %s", host);
		else
			set_error(err, DELIVER_TEMP, "4.4.3", "Host or domain name lookup failed for %s: %s", host,
				  rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	size_t before = out->n;
	for (struct addrinfo *ai = res; ai && out->n < SEND_MAX_ADDRS; ai = ai->ai_next) {
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof(out->t[0].sa))
			continue;
		struct send_target *t = &out->t[out->n++];
		snprintf(t->name, sizeof(t->name), "%s", host);
		memcpy(&t->sa, ai->ai_addr, ai->ai_addrlen);
		t->salen = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	if (out->n == before) {
		set_error(err, DELIVER_PERM, "5.4.4", "Host found but no usable address record: %s", host);
		return -1;
	}
	return 0;
}

/* 1 when host is an IPv4 or IPv6 address literal (no lookup needed). */
static int is_ip_literal(const char *host)
{
	unsigned char tmp[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
}

/* MX lookup.  Returns the number of MX hosts (0: none, use the domain
 * itself) or -1 with err set. */
static int lookup_mx(const char *domain, struct send_mx *mx, size_t max, struct send_error *err)
{
	struct __res_state st;
	unsigned char *ans = xmalloc(NS_MAXMSG);
	int null_mx = 0, n;

	memset(&st, 0, sizeof(st));
	if (res_ninit(&st) < 0) {
		free(ans);
		set_error(err, DELIVER_TEMP, "4.4.3", "cannot initialise the resolver");
		return -1;
	}
	int len = res_nquery(&st, domain, ns_c_in, ns_t_mx, ans, NS_MAXMSG);
	if (len < 0) {
		int h = st.res_h_errno;
		res_nclose(&st);
		free(ans);
		if (h == HOST_NOT_FOUND) {
			set_error(err, DELIVER_PERM, "5.1.2",
				  "Host or domain name not found. Name service error for name=%s type=MX: Host not found",
				  domain);
			return -1;
		}
		if (h == NO_DATA)
			return 0;
		set_error(err, DELIVER_TEMP, "4.4.3", "Host or domain name not found. Name service error for name=%s type=MX: %s",
			  domain, h == TRY_AGAIN ? "Host not found, try again" : "lookup failed");
		return -1;
	}
	res_nclose(&st);
	n = send_dns_parse_mx(ans, (size_t)len, mx, max, &null_mx);
	free(ans);
	if (n < 0) {
		set_error(err, DELIVER_TEMP, "4.4.3", "malformed DNS reply for name=%s type=MX", domain);
		return -1;
	}
	if (n == 0 && null_mx) {
		set_error(err, DELIVER_PERM, "5.1.10", "Domain %s does not accept mail (nullMX)", domain);
		return -1;
	}
	return n;
}

int send_resolve(const struct send_nexthop *nh, struct send_targets *out, struct send_error *err)
{
	out->n = 0;
	if (nh->literal || is_ip_literal(nh->host))
		return add_host(nh->host, nh->port, is_ip_literal(nh->host), out, err);

	struct send_mx *mx = xcalloc(SEND_MAX_MX, sizeof(*mx));
	int n = lookup_mx(nh->host, mx, SEND_MAX_MX, err);
	int ret;
	if (n < 0) {
		ret = -1;
	} else if (n == 0) {
		ret = add_host(nh->host, nh->port, 0, out, err); /* implicit MX */
	} else {
		struct send_error last;
		int temp = 0;
		memset(&last, 0, sizeof(last));
		for (int i = 0; i < n && out->n < SEND_MAX_ADDRS; i++) {
			if (add_host(mx[i].name, nh->port, 0, out, &last) < 0) {
				if (last.status == DELIVER_TEMP)
					temp = 1;
				log_info("MX host %s of %s: %s", mx[i].name, nh->host, last.text);
			}
		}
		ret = out->n > 0 ? 0 : -1;
		if (ret < 0)
			set_error(err, DELIVER_TEMP, temp ? "4.4.3" : "4.4.4", "no usable address for the MX hosts of %s (%s)",
				  nh->host, last.text);
	}
	free(mx);
	return ret;
}
