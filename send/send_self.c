/*
 * send_self — "mail for DOMAIN loops back to myself".
 *
 * Myself is where tern's own smtpd listens: each smtpd_listen entry is an
 * address and a port.  A specific address matches only that address and
 * port; a wildcard entry (":25", "0.0.0.0:25", "[::]:25") matches any
 * address of this host with that port: the interfaces' addresses
 * (getifaddrs), all of 127.0.0.0/8, ::1 and the unspecified addresses.
 * Comparing the port too is what lets tests (and odd setups) run a peer on
 * another port of the same host: an MX on 127.0.0.1 reached on port 2526
 * is not myself when smtpd listens on 127.0.0.1:2525.  IPv4-mapped IPv6
 * addresses compare as IPv4.
 *
 * Like Postfix, an MX host that is myself cuts the list: every MX at or
 * above the best preference that is myself is dropped (those would send
 * the mail back here or further away).  Nothing left: 5.4.6 bounce, or a
 * 4.4.6 deferral for a domain in relay_domains (we are its backup MX and
 * its better MX hosts may come back).  [host] nexthops are not checked: an
 * operator who routes mail explicitly means it.
 *
 * Public: send_is_self, send_drop_self.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "send.h"
#include "sock.h"
#include "strutil.h"

/* sa as an IPv4 or IPv6 address (mapped IPv4 unmapped) and port. */
struct ipport {
	int family;
	unsigned char a[16];
	unsigned port;
};

static int to_ipport(const struct sockaddr *sa, struct ipport *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		ip->family = AF_INET;
		memcpy(ip->a, &s4->sin_addr, 4);
		ip->port = ntohs(s4->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		ip->port = ntohs(s6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			ip->family = AF_INET;
			memcpy(ip->a, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			ip->family = AF_INET6;
			memcpy(ip->a, &s6->sin6_addr, 16);
		}
		return 0;
	}
	return -1;
}

static int same_addr(const struct ipport *x, const struct ipport *y)
{
	return x->family == y->family && memcmp(x->a, y->a, x->family == AF_INET ? 4 : 16) == 0;
}

/* An address of this host whatever the interfaces say. */
static int always_local(const struct ipport *ip)
{
	static const unsigned char zero[16];
	static const unsigned char one6[16] = { [15] = 1 };
	if (ip->family == AF_INET)
		return ip->a[0] == 127 || memcmp(ip->a, zero, 4) == 0;
	return memcmp(ip->a, zero, 16) == 0 || memcmp(ip->a, one6, 16) == 0;
}

static int interface_addr(const struct ipport *ip)
{
	struct ifaddrs *ifa, *i;
	int found = 0;
	if (getifaddrs(&ifa) < 0)
		return 0;
	for (i = ifa; i && !found; i = i->ifa_next) {
		struct ipport x;
		if (i->ifa_addr && to_ipport(i->ifa_addr, &x) == 0 && same_addr(&x, ip))
			found = 1;
	}
	freeifaddrs(ifa);
	return found;
}

/* Does one smtpd_listen entry ("host:port", "[v6]:port", ":port") match? */
static int listen_matches(const char *entry, const struct ipport *ip)
{
	char host[256], port[16];
	unsigned long long p;
	if (sock_split_hostport(entry, host, sizeof(host), port, sizeof(port)) < 0 ||
	    parse_ull(port, 65535, &p) < 0 || p != ip->port)
		return 0;
	if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || strcmp(host, "*") == 0)
		return always_local(ip) || interface_addr(ip);
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return 0;
	int found = 0;
	for (struct addrinfo *ai = res; ai && !found; ai = ai->ai_next) {
		struct ipport x;
		if (to_ipport(ai->ai_addr, &x) == 0 && same_addr(&x, ip))
			found = 1;
	}
	freeaddrinfo(res);
	return found;
}

int send_is_self(const struct sockaddr *sa, socklen_t salen)
{
	struct ipport ip;
	char entry[300];
	const char *p = cf.smtpd_listen ? cf.smtpd_listen : "";
	int r;
	(void)salen;
	if (to_ipport(sa, &ip) < 0)
		return 0;
	while ((r = list_next(&p, entry, sizeof(entry))) != 0)
		if (r > 0 && listen_matches(entry, &ip))
			return 1;
	return 0;
}

int send_drop_self(const char *domain, struct send_targets *t, struct send_error *err)
{
	int found = 0;
	unsigned best = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (send_is_self((const struct sockaddr *)&t->t[i].sa, t->t[i].salen) && (!found || t->t[i].pref < best)) {
			best = t->t[i].pref;
			found = 1;
		}
	}
	if (!found)
		return 0;
	size_t k = 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->t[i].pref < best)
			t->t[k++] = t->t[i];
	t->n = k;
	if (k > 0)
		return 0;
	int relay = cf.relay_domains && list_has_domain(cf.relay_domains, domain);
	err->status = relay ? DELIVER_TEMP : DELIVER_PERM;
	snprintf(err->dsn, sizeof(err->dsn), "%s", relay ? "4.4.6" : "5.4.6");
	snprintf(err->text, sizeof(err->text), "mail for %s loops back to myself", domain);
	return -1;
}
