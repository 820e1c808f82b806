/*
 * smtpd_peer.c — the client's name (forward-confirmed reverse DNS) and how
 * many sessions it holds (the per-client connection cap).
 *
 * Public: smtpd_peername, smtpd_peer_init, smtpd_peer_enter,
 * smtpd_peer_over_limit, smtpd_peer_leave.
 *
 * The name shown in logs and in the Received: header is the PTR name of the
 * client's address only when that name resolves back to the same address
 * (a PTR record alone is whatever the address owner wants it to be);
 * otherwise, or when smtpd_peername_lookup = no, it is "unknown", as in
 * Postfix.  A name with anything but letters, digits, '-' and '.' is
 * refused, so it can go into a header or a log line as it is.
 *
 * A process serves many sessions (max_use), often of the same few clients,
 * so a verified name is kept for PEER_CACHE_TTL_MS in a small per-process
 * cache: the same client reconnecting costs no lookups (with /etc/hosts,
 * two opens and parses of the file per connection).  Failures are not kept:
 * a DNS server that was down a moment ago may answer now.
 *
 * Bounded: smtpd_init sets the resolver to one retry with a 2 s timeout
 * (RES_OPTIONS style, through _res), so a dead DNS server costs a session
 * a few seconds at most, not the glibc default of half a minute or more.
 *
 * The cap (smtpd_client_connection_count_limit, Postfix's name): every
 * session puts its client's address into this process's slot of the
 * service's scoreboard (common/scoreboard.h, set up by the master) as soon
 * as it is accepted, and takes it out when it ends; at the greeting the
 * session counts the slots holding the same address, itself included, and a
 * client over the limit and not in smtpd_client_event_limit_exceptions
 * (default: mynetworks) gets 421 4.7.0.  The address is entered even when
 * the cap is 0, so a reload that turns the cap on counts the sessions already
 * running.  Two sessions of one client starting at the same instant may both
 * be refused or, rarely, both admitted (scoreboard.h): a slack of one.
 * Without a scoreboard (smtpd not started by the master) nothing is counted.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cidr.h"
#include "clock.h"
#include "conf.h"
#include "log.h"
#include "proto_master.h"
#include "scoreboard.h"
#include "smtpd.h"
#include "strutil.h"
#include "xalloc.h"

static struct scoreboard *board;          /* NULL: no cap */
static int entered;                       /* our slot holds client */
static unsigned char client[SB_ADDR_LEN]; /* the current session's client */
static struct cidr_list *exempt;          /* smtpd_client_event_limit_exceptions */
static char *exempt_text;                 /* the text exempt was parsed from */

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

#define PEER_CACHE_SIZE 8
#define PEER_CACHE_TTL_MS 60000

static struct {
	char ip[INET6_ADDRSTRLEN];
	char name[NI_MAXHOST];
	long long at_ms; /* 0: empty */
} peer_cache[PEER_CACHE_SIZE];

int smtpd_peer_cache_get(const char *ip, long long now_ms, char *name, size_t size)
{
	int i;

	for (i = 0; i < PEER_CACHE_SIZE; i++)
		if (peer_cache[i].at_ms != 0 && now_ms - peer_cache[i].at_ms < PEER_CACHE_TTL_MS &&
		    now_ms >= peer_cache[i].at_ms && strcmp(peer_cache[i].ip, ip) == 0)
			return str_copy(name, size, peer_cache[i].name) < 0 ? 0 : 1;
	return 0;
}

void smtpd_peer_cache_put(const char *ip, const char *name, long long now_ms)
{
	int i, slot = 0;

	/* The same address again, else an empty or the oldest slot. */
	for (i = 0; i < PEER_CACHE_SIZE; i++) {
		if (strcmp(peer_cache[i].ip, ip) == 0 && peer_cache[i].at_ms != 0) {
			slot = i;
			break;
		}
		if (peer_cache[i].at_ms < peer_cache[slot].at_ms)
			slot = i;
	}
	if (str_copy(peer_cache[slot].ip, sizeof(peer_cache[slot].ip), ip) < 0 ||
	    str_copy(peer_cache[slot].name, sizeof(peer_cache[slot].name), name) < 0) {
		peer_cache[slot].at_ms = 0;
		return;
	}
	peer_cache[slot].at_ms = now_ms > 0 ? now_ms : 1;
}

void
smtpd_peername(const struct sockaddr *peer, socklen_t len, const char *ip, char *name, size_t size)
{
	char host[NI_MAXHOST];
	long long now = clock_ms();

	str_copy(name, size, "unknown");
	if (!cf.smtpd_peername_lookup || peer == NULL)
		return;
	if (smtpd_peer_cache_get(ip, now, name, size))
		return;
	if (getnameinfo(peer, len, host, sizeof(host), NULL, 0, NI_NAMEREQD) != 0)
		return;
	if (!name_ok(host) || !forward_confirms(host, ip))
		return;
	if (str_copy(name, size, host) < 0)
		str_copy(name, size, "unknown");
	else
		smtpd_peer_cache_put(ip, host, now);
}

void
smtpd_peer_init(void)
{
	const char *v = getenv(MASTER_SCOREBOARD_ENV);
	unsigned long long slot;
	char err[256];

	if (v == NULL)
		return;
	if (parse_ull(v, SB_SLOTS_MAX - 1, &slot) < 0)
		log_warning("%s=%.32s: not a slot number; smtpd_client_connection_count_limit is not enforced",
			    MASTER_SCOREBOARD_ENV, v);
	else if ((board = sb_attach(MASTER_SCOREBOARD_FD, (unsigned)slot, err, sizeof(err))) == NULL)
		log_warning("%s; smtpd_client_connection_count_limit is not enforced", err);
	/* The mapping outlives the descriptor; an idle smtpd holds fds 0-4 only. */
	close(MASTER_SCOREBOARD_FD);
	unsetenv(MASTER_SCOREBOARD_ENV);
}

void
smtpd_peer_enter(const struct sockaddr *peer, socklen_t len)
{
	entered = 0;
	if (board == NULL || sb_addr(peer, len, client) < 0)
		return;
	sb_enter(board, client);
	entered = 1;
}

/* 1 when ip is in smtpd_client_event_limit_exceptions (parsed again only
 * when the text changes; a list that does not parse exempts nobody). */
static int
exempted(const char *ip)
{
	const char *text = cf.smtpd_client_event_limit_exceptions ? cf.smtpd_client_event_limit_exceptions : "";

	if (exempt_text == NULL || strcmp(exempt_text, text) != 0) {
		char err[256];

		cidr_list_free(exempt);
		free(exempt_text);
		exempt_text = xstrdup(text);
		exempt = cidr_list_parse(text, err, sizeof(err));
		if (exempt == NULL)
			log_warning("smtpd_client_event_limit_exceptions: %s; no client is exempt", err);
	}
	return exempt != NULL && cidr_list_match(exempt, ip);
}

unsigned
smtpd_peer_over_limit(const char *ip)
{
	unsigned n;

	if (!entered || cf.smtpd_client_connection_count_limit <= 0)
		return 0;
	n = sb_count(board, client);
	if (n <= (unsigned long long)cf.smtpd_client_connection_count_limit || exempted(ip))
		return 0;
	return n;
}

void
smtpd_peer_leave(void)
{
	if (entered)
		sb_leave(board);
	entered = 0;
}
