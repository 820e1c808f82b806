/*
 * send_dns — from a nexthop to the ordered list of addresses to try.
 *
 * "[host]" nexthops skip the MX lookup.  Otherwise the MX records of the
 * domain are looked up with glibc's resolver (res_nquery; it retries a
 * truncated UDP answer over TCP, RES_IGNTC is cleared to be sure), parsed
 * defensively with ns_parse (a malformed answer is an error, never a
 * crash), sorted by preference with equal preferences shuffled (RFC 5321
 * 5.1), and each MX host's addresses appended up to SEND_MAX_ADDRS.  A
 * domain without MX records is its own mail exchanger (A/AAAA).  An answer
 * that is only a CNAME is followed (SEND_CNAME_MAX links).
 *
 * The `resolver` setting ("ip:port") points res_nquery at one nameserver
 * (res_ninit, then nsaddr_list[0] and nscount = 1) and makes every lookup,
 * A and AAAA included, a DNS query to it.  Without it host addresses come
 * from getaddrinfo (so /etc/hosts counts), then smtp_address_preference
 * puts one family first.
 *
 * Results: NXDOMAIN → perm 5.1.2; a null MX (RFC 7505) → perm 5.1.10; a
 * host without addresses → perm 5.4.4; SERVFAIL, timeouts, malformed
 * answers and other resolver failures → temp 4.4.3.  MX and CNAME targets
 * must be plain host names (letters, digits, '-', '_', '.'); others are
 * skipped as hostile data.  An MX host written as an IPv4 address is not
 * a host name (RFC 1035 3.3.9) but works with other mailers: like Postfix,
 * it is used as that address with a warning; loop detection still applies.
 * An MX host that is a CNAME is followed like any other host name.  A
 * nameserver that answers the MX query and then stalls would cost two
 * timed-out queries per MX host, up to SEND_MAX_MX of them: once
 * SEND_MX_LOOKUP_MS have passed no further MX host is looked up, and
 * without any address the delivery is deferred 4.4.3.  The MX
 * hosts that are this host are dropped by send_drop_self (send_self.c).
 *
 * Public: send_dns_parse_mx, send_dns_parse_addrs, send_dns_parse_cname,
 * send_dns_shuffle, send_resolver_parse, send_order_family, send_resolve.
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
#include <sys/random.h>

#include "clock.h"
#include "conf.h"
#include "log.h"
#include "send.h"
#include "sock.h"
#include "strutil.h"
#include "xalloc.h"

/* A plain host name: LDH labels (underscore tolerated), no empty label. */
static int host_name_ok(const char *n)
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

/* The domain name at rd (inside msg's rdata of rdlen bytes from off) into
 * name without its final dot; 0, or -1 when malformed or not exactly
 * filling the rest of the rdata. */
static int rdata_name(const ns_msg *msg, const unsigned char *rd, size_t left, char *name, size_t size)
{
	char tmp[NS_MAXDNAME];
	int used = ns_name_uncompress(ns_msg_base(*msg), ns_msg_end(*msg), rd, tmp, sizeof(tmp));
	if (used < 0 || (size_t)used != left)
		return -1;
	size_t nl = strlen(tmp);
	if (nl > 0 && tmp[nl - 1] == '.')
		tmp[--nl] = '\0';
	if (nl >= size)
		return -1;
	memcpy(name, tmp, nl + 1);
	return 0;
}

/* Start parsing; the number of answer records or -1. */
static int parse_start(const unsigned char *ans, size_t len, ns_msg *msg)
{
	if (len > NS_MAXMSG || len < NS_HFIXEDSZ || ns_initparse(ans, (int)len, msg) < 0)
		return -1;
	return ns_msg_count(*msg, ns_s_an);
}

int send_dns_parse_cname(const unsigned char *ans, size_t len, char *cname, size_t cnamesize)
{
	ns_msg msg;
	ns_rr rr;
	int count = parse_start(ans, len, &msg);
	if (cnamesize == 0 || count < 0)
		return -1;
	cname[0] = '\0';
	for (int i = 0; i < count; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			return -1;
		if (ns_rr_class(rr) != ns_c_in || ns_rr_type(rr) != ns_t_cname)
			continue;
		char name[SEND_HOST_MAX];
		if (rdata_name(&msg, ns_rr_rdata(rr), ns_rr_rdlen(rr), name, sizeof(name)) < 0)
			return -1;
		if (!host_name_ok(name)) {
			log_warning("ignoring CNAME record with a malformed target");
			continue;
		}
		if (strlen(name) >= cnamesize)
			return -1;
		memcpy(cname, name, strlen(name) + 1);
		break;
	}
	return 0;
}

int send_dns_parse_mx(const unsigned char *ans, size_t len, struct send_mx *mx, size_t max, int *null_mx)
{
	ns_msg msg;
	ns_rr rr;
	size_t n = 0;
	char name[NS_MAXDNAME];

	*null_mx = 0;
	int count = parse_start(ans, len, &msg);
	if (max == 0 || count < 0)
		return -1;
	for (int i = 0; i < count; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			return -1;
		if (ns_rr_class(rr) != ns_c_in || ns_rr_type(rr) != ns_t_mx)
			continue; /* a CNAME leading to the MX records, or noise */
		const unsigned char *rd = ns_rr_rdata(rr);
		if (ns_rr_rdlen(rr) < 3)
			return -1;
		unsigned pref = ns_get16(rd);
		if (rdata_name(&msg, rd + 2, (size_t)ns_rr_rdlen(rr) - 2, name, sizeof(name)) < 0)
			return -1;
		if (name[0] == '\0') {
			*null_mx = 1;
			continue;
		}
		if (strlen(name) >= SEND_HOST_MAX || !host_name_ok(name)) {
			log_warning("ignoring MX record with a malformed host name");
			continue;
		}
		mx_insert(mx, max, &n, pref, name);
	}
	return (int)n;
}

int send_dns_parse_addrs(const unsigned char *ans, size_t len, int qtype, unsigned port, struct sockaddr_storage *sa,
			 size_t max, char *cname, size_t cnamesize)
{
	ns_msg msg;
	ns_rr rr;
	size_t n = 0;
	int count = parse_start(ans, len, &msg);
	if (count < 0 || (qtype != ns_t_a && qtype != ns_t_aaaa))
		return -1;
	if (send_dns_parse_cname(ans, len, cname, cnamesize) < 0)
		return -1;
	for (int i = 0; i < count; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			return -1;
		if (ns_rr_class(rr) != ns_c_in || (int)ns_rr_type(rr) != qtype)
			continue;
		size_t want = qtype == ns_t_a ? 4 : 16;
		if (ns_rr_rdlen(rr) != want)
			return -1;
		if (n == max)
			continue;
		memset(&sa[n], 0, sizeof(sa[n]));
		if (qtype == ns_t_a) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&sa[n];
			sin->sin_family = AF_INET;
			sin->sin_port = htons((unsigned short)port);
			memcpy(&sin->sin_addr, ns_rr_rdata(rr), 4);
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&sa[n];
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons((unsigned short)port);
			memcpy(&sin6->sin6_addr, ns_rr_rdata(rr), 16);
		}
		n++;
	}
	return (int)n;
}

/* A uniform random number below n (n >= 1); getrandom, else random(). */
static size_t random_below(size_t n)
{
	unsigned long v;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = (unsigned long)random();
	return (size_t)(v % n); /* n <= SEND_MAX_MX: the bias is negligible */
}

void send_dns_shuffle(struct send_mx *mx, size_t n)
{
	size_t start = 0;
	while (start < n) {
		size_t end = start + 1;
		while (end < n && mx[end].pref == mx[start].pref)
			end++;
		for (size_t i = end - 1; i > start; i--) { /* Fisher-Yates on [start, end) */
			size_t j = start + random_below(i - start + 1);
			struct send_mx tmp = mx[i];
			mx[i] = mx[j];
			mx[j] = tmp;
		}
		start = end;
	}
}

int send_resolver_parse(const char *s, struct sockaddr_in *sin)
{
	char host[64], port[16];
	unsigned long long p = 53;
	if (strchr(s, ':') != NULL) {
		if (sock_split_hostport(s, host, sizeof(host), port, sizeof(port)) < 0 ||
		    parse_ull(port, 65535, &p) < 0 || p == 0)
			return -1;
	} else if (str_copy(host, sizeof(host), s) < 0) {
		return -1;
	}
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((unsigned short)p);
	return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

static int family_rank(int family, int first)
{
	return family == first ? 0 : 1;
}

void send_order_family(struct send_target *t, size_t n)
{
	const char *p = cf.smtp_address_preference ? cf.smtp_address_preference : "any";
	int first;
	if (strcasecmp(p, "ipv4") == 0)
		first = AF_INET;
	else if (strcasecmp(p, "ipv6") == 0)
		first = AF_INET6;
	else
		return;
	/* stable insertion sort within each MX host (same name and preference) */
	for (size_t i = 1; i < n; i++) {
		struct send_target cur = t[i];
		size_t j = i;
		while (j > 0 && t[j - 1].pref == cur.pref && strcmp(t[j - 1].name, cur.name) == 0 &&
		       family_rank(t[j - 1].sa.ss_family, first) > family_rank(cur.sa.ss_family, first)) {
			t[j] = t[j - 1];
			j--;
		}
		t[j] = cur;
	}
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

/* A resolver set up for one lookup: resolv.conf, or the `resolver` server. */
static int res_open(struct __res_state *st, struct send_error *err)
{
	memset(st, 0, sizeof(*st));
	if (res_ninit(st) < 0) {
		set_error(err, DELIVER_TEMP, "4.4.3", "cannot initialise the resolver");
		return -1;
	}
	st->options &= ~(unsigned long)RES_IGNTC; /* a truncated answer is retried over TCP */
	if (cf.resolver && cf.resolver[0]) {
		struct sockaddr_in sin;
		if (send_resolver_parse(cf.resolver, &sin) < 0) {
			res_nclose(st);
			set_error(err, DELIVER_TEMP, "4.3.5", "malformed resolver setting \"%s\"", cf.resolver);
			return -1;
		}
		st->nsaddr_list[0] = sin;
		st->nscount = 1;
		st->retry = 2;
		if (st->retrans > 3)
			st->retrans = 3;
	}
	return 0;
}

enum qres { Q_OK, Q_NXDOMAIN, Q_NODATA, Q_TEMP };

/* One query into ans (NS_MAXMSG bytes); *len the answer's length. */
static enum qres query(const char *name, int type, unsigned char *ans, int *len, struct send_error *err)
{
	struct __res_state st;
	if (res_open(&st, err) < 0)
		return Q_TEMP;
	*len = res_nquery(&st, name, ns_c_in, type, ans, NS_MAXMSG);
	int h = st.res_h_errno;
	res_nclose(&st);
	if (*len >= 0)
		return Q_OK;
	if (h == HOST_NOT_FOUND)
		return Q_NXDOMAIN;
	if (h == NO_DATA)
		return Q_NODATA;
	set_error(err, DELIVER_TEMP, "4.4.3", "Host or domain name not found. Name service error for name=%s type=%s: %s",
		  name, type == ns_t_mx ? "MX" : type == ns_t_a ? "A" : "AAAA",
		  h == TRY_AGAIN ? "Host not found, try again" : "lookup failed");
	return Q_TEMP;
}

/* MX lookup with CNAMEs followed.  Returns the number of MX hosts (0: none,
 * use the domain itself) or -1 with err set. */
static int lookup_mx(const char *domain, struct send_mx *mx, size_t max, struct send_error *err)
{
	unsigned char *ans = xmalloc(NS_MAXMSG);
	char name[SEND_HOST_MAX], cname[SEND_HOST_MAX];
	int null_mx = 0, n = -1, len;

	snprintf(name, sizeof(name), "%s", domain);
	for (int hop = 0; hop <= SEND_CNAME_MAX; hop++) {
		enum qres q = query(name, ns_t_mx, ans, &len, err);
		if (q == Q_NXDOMAIN) {
			set_error(err, DELIVER_PERM, "5.1.2",
				  "Host or domain name not found. Name service error for name=%s type=MX: Host not found",
				  name);
			break;
		}
		if (q == Q_NODATA) {
			n = 0;
			break;
		}
		if (q == Q_TEMP)
			break;
		n = send_dns_parse_mx(ans, (size_t)len, mx, max, &null_mx);
		if (n < 0 || send_dns_parse_cname(ans, (size_t)len, cname, sizeof(cname)) < 0) {
			set_error(err, DELIVER_TEMP, "4.4.3", "malformed DNS reply for name=%s type=MX", name);
			n = -1;
			break;
		}
		if (n > 0 || null_mx || cname[0] == '\0' || strcasecmp(cname, name) == 0)
			break;
		if (hop == SEND_CNAME_MAX) { /* a CNAME chain too long (or a loop) */
			set_error(err, DELIVER_TEMP, "4.4.3", "CNAME chain too long for name=%s type=MX", domain);
			n = -1;
			break;
		}
		snprintf(name, sizeof(name), "%s", cname); /* the answer held only a CNAME */
	}
	free(ans);
	if (n == 0 && null_mx) {
		set_error(err, DELIVER_PERM, "5.1.10", "Domain %s does not accept mail (nullMX)", domain);
		return -1;
	}
	if (n > 1)
		send_dns_shuffle(mx, (size_t)n);
	return n;
}

/* A and AAAA of host by DNS, appended to out.  0 when one was added, -1
 * with err set. */
static int add_host_dns(const char *host, unsigned pref, unsigned port, struct send_targets *out,
			struct send_error *err)
{
	static const int types[2] = { ns_t_aaaa, ns_t_a };
	unsigned char *ans = xmalloc(NS_MAXMSG);
	struct sockaddr_storage sa[SEND_MAX_ADDRS];
	int nx = 0, temp = 0;
	size_t before = out->n;

	for (int k = 0; k < 2; k++) {
		char name[SEND_HOST_MAX], cname[SEND_HOST_MAX];
		snprintf(name, sizeof(name), "%s", host);
		for (int hop = 0; hop <= SEND_CNAME_MAX; hop++) {
			int len;
			enum qres q = query(name, types[k], ans, &len, err);
			if (q == Q_NXDOMAIN)
				nx++;
			if (q == Q_TEMP)
				temp = 1;
			if (q != Q_OK)
				break;
			int n = send_dns_parse_addrs(ans, (size_t)len, types[k], port, sa, SEND_MAX_ADDRS, cname,
						     sizeof(cname));
			if (n < 0) {
				set_error(err, DELIVER_TEMP, "4.4.3", "malformed DNS reply for name=%s", name);
				temp = 1;
				break;
			}
			for (int i = 0; i < n && out->n < SEND_MAX_ADDRS; i++) {
				struct send_target *t = &out->t[out->n++];
				snprintf(t->name, sizeof(t->name), "%s", host);
				t->pref = pref;
				t->sa = sa[i];
				t->salen = types[k] == ns_t_a ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
			}
			if (n > 0 || cname[0] == '\0' || strcasecmp(cname, name) == 0)
				break;
			snprintf(name, sizeof(name), "%s", cname);
		}
	}
	free(ans);
	if (out->n > before)
		return 0;
	if (temp)
		return -1; /* err holds the failure */
	if (nx == 2)
		set_error(err, DELIVER_PERM, "5.1.2",
			  "Host or domain name not found. Name service error for name=%s type=A: Host not found", host);
	else
		set_error(err, DELIVER_PERM, "5.4.4", "Host found but no address record: %s", host);
	return -1;
}

/* The addresses of host through getaddrinfo, appended to out. */
static int add_host_gai(const char *host, unsigned pref, const char *port, int numeric_only, struct send_targets *out,
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
		t->pref = pref;
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

static int add_host(const char *host, unsigned pref, const char *port, struct send_targets *out,
		    struct send_error *err)
{
	int rc;
	if (is_ip_literal(host))
		return add_host_gai(host, pref, port, 1, out, err);
	if (cf.resolver && cf.resolver[0]) {
		unsigned long long p = 25;
		(void)parse_ull(port, 65535, &p); /* checked by send_nexthop_parse */
		rc = add_host_dns(host, pref, (unsigned)p, out, err);
	} else {
		rc = add_host_gai(host, pref, port, 0, out, err);
	}
	return rc;
}

int send_resolve(const struct send_nexthop *nh, struct send_targets *out, struct send_error *err)
{
	out->n = 0;
	if (nh->literal || is_ip_literal(nh->host)) {
		if (add_host(nh->host, 0, nh->port, out, err) < 0)
			return -1;
		send_order_family(out->t, out->n);
		return 0;
	}

	struct send_mx *mx = xcalloc(SEND_MAX_MX, sizeof(*mx));
	int n = lookup_mx(nh->host, mx, SEND_MAX_MX, err);
	int ret;
	if (n < 0) {
		ret = -1;
	} else if (n == 0) {
		ret = add_host(nh->host, 0, nh->port, out, err); /* implicit MX */
	} else {
		struct send_error last;
		int temp = 0;
		long long start = clock_ms();
		memset(&last, 0, sizeof(last));
		for (int i = 0; i < n && out->n < SEND_MAX_ADDRS; i++) {
			if (i > 0 && clock_ms() - start >= SEND_MX_LOOKUP_MS) {
				log_warning("%s: MX host lookups stopped after %d s, %d of %d MX hosts not looked up",
					    nh->host, SEND_MX_LOOKUP_MS / 1000, n - i, n);
				temp = 1;
				break;
			}
			if (is_ip_literal(mx[i].name))
				log_warning("numeric domain name in MX record for %s: %s", nh->host, mx[i].name);
			if (add_host(mx[i].name, mx[i].pref, nh->port, out, &last) < 0) {
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
	if (ret == 0) {
		send_order_family(out->t, out->n);
		ret = send_drop_self(nh->host, out, err);
	}
	return ret;
}
