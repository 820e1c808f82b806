/*
 * smtpd_peer.c — the client's name: forward-confirmed reverse DNS.
 *
 * Public: smtpd_peername.
 *
 * The name shown in logs and in the Received: header is the PTR name of the
 * client's address only when that name resolves back to the same address
 * (a PTR record alone is whatever the address owner wants it to be);
 * otherwise, or when smtpd_peername_lookup = no, it is "unknown", as in
 * Postfix.  A name with anything but letters, digits, '-' and '.' is
 * refused, so it can go into a header or a log line as it is.
 *
 * Bounded: smtpd_init sets the resolver to one retry with a 2 s timeout
 * (RES_OPTIONS style, through _res), so a dead DNS server costs a session
 * a few seconds at most, not the glibc default of half a minute or more.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "conf.h"
#include "smtpd.h"

static int
name_ok(const char *name)
{
	size_t n = strlen(name);
	const char *p;

	if (n == 0 || n > 255 || name[0] == '.' || name[0] == '-')
		return 0;
	for (p = name; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '.'))
			return 0;
	}
	return 1;
}

/* 1 when host resolves to ip (text form as smtpd shows it). */
static int
forward_confirms(const char *host, const char *ip)
{
	struct addrinfo hints, *res = NULL, *ai;
	int found = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = strchr(ip, ':') != NULL ? AF_INET6 : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return 0;
	for (ai = res; ai != NULL && !found; ai = ai->ai_next) {
		char text[INET6_ADDRSTRLEN];
		const void *bin;

		if (ai->ai_family == AF_INET)
			bin = &((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr;
		else if (ai->ai_family == AF_INET6)
			bin = &((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr;
		else
			continue;
		if (inet_ntop(ai->ai_family, bin, text, sizeof(text)) != NULL && strcasecmp(text, ip) == 0)
			found = 1;
	}
	freeaddrinfo(res);
	return found;
}

void
smtpd_peername(const struct sockaddr *peer, socklen_t len, const char *ip, char *name, size_t size)
{
	char host[NI_MAXHOST];

	str_copy(name, size, "unknown");
	if (!cf.smtpd_peername_lookup || peer == NULL)
		return;
	if (getnameinfo(peer, len, host, sizeof(host), NULL, 0, NI_NAMEREQD) != 0)
		return;
	if (!name_ok(host) || !forward_confirms(host, ip))
		return;
	if (str_copy(name, size, host) < 0)
		str_copy(name, size, "unknown");
}
