/*
 * send_nexthop — parse the nexthop of a delivery request.
 *
 *   [host]:port   connect to host (an address literal or a name resolved
 *   [host]        to A/AAAA), no MX lookup; port 25 by default
 *   host:port     MX lookup for host, port for every MX
 *   host
 *
 * "[ipv6:2001:db8::1]" and "[2001:db8::1]" both give the IPv6 address.
 * Host names may hold letters, digits, '.', '-' and '_'; literals also ':'.
 * Ports are decimal 1..65535 (no service names).
 *
 * Public: send_nexthop_parse.  Pure function, no side effects.
 */
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "send.h"
#include "strutil.h"

static int host_ok(const char *h, int literal)
{
	if (*h == '\0' || *h == '.' || *h == '-')
		return 0;
	for (const unsigned char *p = (const unsigned char *)h; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		    *p == '-' || *p == '_')
			continue;
		if (literal && *p == ':')
			continue;
		return 0;
	}
	return 1;
}

static int port_ok(const char *p)
{
	unsigned long long v;
	if (strlen(p) > 5 || parse_ull(p, 65535, &v) < 0 || v == 0)
		return 0;
	return 1;
}

int send_nexthop_parse(const char *s, struct send_nexthop *nh)
{
	const char *host, *port = NULL;
	size_t hlen;

	memset(nh, 0, sizeof(*nh));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL)
			return -1;
		host = s + 1;
		hlen = (size_t)(close - host);
		if (hlen >= 5 && strncasecmp(host, "ipv6:", 5) == 0) {
			host += 5;
			hlen -= 5;
		}
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return -1;
		nh->literal = 1;
	} else {
		const char *colon = strchr(s, ':');
		host = s;
		hlen = colon ? (size_t)(colon - s) : strlen(s);
		if (colon)
			port = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(nh->host))
		return -1;
	memcpy(nh->host, host, hlen);
	nh->host[hlen] = '\0';
	if (!host_ok(nh->host, nh->literal))
		return -1;
	if (port == NULL)
		port = "25";
	if (!port_ok(port))
		return -1;
	return str_copy(nh->port, sizeof(nh->port), port);
}
