/*
 * Unit tests for send/send_dns.c and send/send_nexthop.c without any DNS
 * traffic: the MX reply parser on hand-built wire-format replies (sorting,
 * duplicates, null MX, a CNAME before the MX records, hostile host names,
 * more records than kept, truncated and inconsistent replies, compression
 * loops), the nexthop parser, and send_resolve on address literals; A/AAAA
 * and CNAME parsing, shuffling of equal preferences, the resolver setting,
 * "loops back to myself" (address and port) and the address preference;
 * a nameserver that never answers (a loopback UDP socket nobody reads):
 * deferred 4.4.3 after a bounded number of queries.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "../../../send/send.h"
#include "conf.h"
#include "log.h"

struct pkt {
	unsigned char b[8192];
	size_t n;
	size_t ancount_at;
	unsigned ancount;
};

static void put8(struct pkt *p, unsigned v)
{
	ck_assert_uint_lt(p->n, sizeof(p->b));
	p->b[p->n++] = (unsigned char)v;
}

static void put16(struct pkt *p, unsigned v)
{
	put8(p, (v >> 8) & 0xff);
	put8(p, v & 0xff);
}

/* A name in wire format (no compression); "" is the root. */
static void put_name(struct pkt *p, const char *name)
{
	const char *s = name;
	while (*s) {
		const char *dot = strchr(s, '.');
		size_t len = dot ? (size_t)(dot - s) : strlen(s);
		put8(p, (unsigned)len);
		for (size_t i = 0; i < len; i++)
			put8(p, (unsigned char)s[i]);
		s += len;
		if (*s == '.')
			s++;
	}
	put8(p, 0);
}

/* Header and the question "example.com MX IN"; the question name sits at offset 12. */
static void start(struct pkt *p)
{
	memset(p, 0, sizeof(*p));
	put16(p, 0x1234);
	put16(p, 0x8180);
	put16(p, 1);
	p->ancount_at = p->n;
	put16(p, 0);
	put16(p, 0);
	put16(p, 0);
	put_name(p, "example.com");
	put16(p, ns_t_mx);
	put16(p, ns_c_in);
}

static void bump(struct pkt *p)
{
	p->ancount++;
	p->b[p->ancount_at] = (unsigned char)(p->ancount >> 8);
	p->b[p->ancount_at + 1] = (unsigned char)(p->ancount & 0xff);
}

static void add_mx(struct pkt *p, unsigned pref, const char *host)
{
	put16(p, 0xc00c); /* owner: pointer to the question name */
	put16(p, ns_t_mx);
	put16(p, ns_c_in);
	put16(p, 0);
	put16(p, 300);
	size_t rdlen_at = p->n;
	put16(p, 0);
	size_t start_rd = p->n;
	put16(p, pref);
	put_name(p, host);
	size_t rdlen = p->n - start_rd;
	p->b[rdlen_at] = (unsigned char)(rdlen >> 8);
	p->b[rdlen_at + 1] = (unsigned char)(rdlen & 0xff);
	bump(p);
}

START_TEST(test_mx_sorted_dedup)
{
	struct pkt p;
	struct send_mx mx[10];
	int null_mx = -1;
	start(&p);
	add_mx(&p, 20, "mx3.example.com");
	add_mx(&p, 10, "mx1.example.com");
	add_mx(&p, 15, "MX2.example.com");
	add_mx(&p, 30, "mx1.example.com"); /* duplicate host: first one counts */
	int n = send_dns_parse_mx(p.b, p.n, mx, 10, &null_mx);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(null_mx, 0);
	ck_assert_str_eq(mx[0].name, "mx1.example.com");
	ck_assert_uint_eq(mx[0].pref, 10);
	ck_assert_str_eq(mx[1].name, "MX2.example.com");
	ck_assert_str_eq(mx[2].name, "mx3.example.com");
	ck_assert_uint_eq(mx[2].pref, 20);
}
END_TEST

START_TEST(test_null_mx_and_empty)
{
	struct pkt p;
	struct send_mx mx[4];
	int null_mx = 0;
	start(&p);
	add_mx(&p, 0, "");
	ck_assert_int_eq(send_dns_parse_mx(p.b, p.n, mx, 4, &null_mx), 0);
	ck_assert_int_eq(null_mx, 1);

	start(&p);
	ck_assert_int_eq(send_dns_parse_mx(p.b, p.n, mx, 4, &null_mx), 0);
	ck_assert_int_eq(null_mx, 0);
}
END_TEST

START_TEST(test_cname_then_mx)
{
	struct pkt p;
	struct send_mx mx[4];
	int null_mx;
	start(&p);
	/* example.com CNAME other.example */
	put16(&p, 0xc00c);
	put16(&p, ns_t_cname);
	put16(&p, ns_c_in);
	put16(&p, 0);
	put16(&p, 300);
	put16(&p, 15);
	put_name(&p, "other.example"); /* 1+5+1+7+1 = 15 bytes */
	bump(&p);
	add_mx(&p, 5, "mail.other.example");
	ck_assert_int_eq(send_dns_parse_mx(p.b, p.n, mx, 4, &null_mx), 1);
	ck_assert_str_eq(mx[0].name, "mail.other.example");
}
END_TEST

START_TEST(test_hostile_names_skipped)
{
	struct pkt p;
	struct send_mx mx[4];
	int null_mx;
	start(&p);
	add_mx(&p, 10, "a b;rm -rf.example.com");
	add_mx(&p, 20, "$(reboot).example.com");
	add_mx(&p, 30, "good.example.com");
	ck_assert_int_eq(send_dns_parse_mx(p.b, p.n, mx, 4, &null_mx), 1);
	ck_assert_str_eq(mx[0].name, "good.example.com");
}
END_TEST

START_TEST(test_keeps_lowest_preferences)
{
	struct pkt p;
	struct send_mx *mx = calloc(SEND_MAX_MX, sizeof(*mx));
	int null_mx;
	ck_assert_ptr_nonnull(mx);
	start(&p);
	for (unsigned i = 0; i < 150; i++) {
		char name[32];
		snprintf(name, sizeof(name), "m%u.example.com", i);
		add_mx(&p, 1000 - i, name); /* worst first */
	}
	ck_assert_int_eq(send_dns_parse_mx(p.b, p.n, mx, SEND_MAX_MX, &null_mx), SEND_MAX_MX);
	ck_assert_uint_eq(mx[0].pref, 1000 - 149);
	ck_assert_str_eq(mx[0].name, "m149.example.com");
	ck_assert_uint_eq(mx[SEND_MAX_MX - 1].pref, 1000 - 50);
	for (size_t i = 1; i < SEND_MAX_MX; i++)
		ck_assert_uint_le(mx[i - 1].pref, mx[i].pref);
	free(mx);
}
END_TEST

START_TEST(test_malformed_replies)
{
	struct pkt p;
	struct send_mx mx[4];
	int null_mx;

	/* truncated in the middle of the answer */
	start(&p);
	add_mx(&p, 10, "mx.example.com");
	for (size_t cut = 12; cut < p.n; cut++)
		ck_assert_int_lt(send_dns_parse_mx(p.b, cut, mx, 4, &null_mx), 1);
	ck_assert_int_eq(send_dns_parse_mx(p.b, p.n - 1, mx, 4, &null_mx), -1);

	/* rdlength longer than the name inside */
	start(&p);
	add_mx(&p, 10, "mx.example.com");
	size_t rdlen_at = p.n - (2 + 16) - 2;
	p.b[rdlen_at + 1] = (unsigned char)(p.b[rdlen_at + 1] + 2);
	put16(&p, 0);
	ck_assert_int_eq(send_dns_parse_mx(p.b, p.n, mx, 4, &null_mx), -1);

	/* rdlength too short for a preference and a name */
	start(&p);
	put16(&p, 0xc00c);
	put16(&p, ns_t_mx);
	put16(&p, ns_c_in);
	put16(&p, 0);
	put16(&p, 300);
	put16(&p, 2);
	put16(&p, 10);
	bump(&p);
	ck_assert_int_eq(send_dns_parse_mx(p.b, p.n, mx, 4, &null_mx), -1);

	/* a compression pointer that points at itself */
	start(&p);
	put16(&p, 0xc00c);
	put16(&p, ns_t_mx);
	put16(&p, ns_c_in);
	put16(&p, 0);
	put16(&p, 300);
	put16(&p, 4);
	put16(&p, 10);
	size_t self = p.n;
	put16(&p, 0xc000 | (unsigned)self);
	bump(&p);
	ck_assert_int_eq(send_dns_parse_mx(p.b, p.n, mx, 4, &null_mx), -1);

	/* garbage */
	unsigned char junk[5] = { 1, 2, 3, 4, 5 };
	ck_assert_int_eq(send_dns_parse_mx(junk, sizeof(junk), mx, 4, &null_mx), -1);
	ck_assert_int_eq(send_dns_parse_mx(junk, 0, mx, 4, &null_mx), -1);
}
END_TEST

START_TEST(test_nexthop_parse)
{
	struct send_nexthop nh;
	ck_assert_int_eq(send_nexthop_parse("[127.0.0.1]:2525", &nh), 0);
	ck_assert_str_eq(nh.host, "127.0.0.1");
	ck_assert_str_eq(nh.port, "2525");
	ck_assert_int_eq(nh.literal, 1);

	ck_assert_int_eq(send_nexthop_parse("[ipv6:::1]", &nh), 0);
	ck_assert_str_eq(nh.host, "::1");
	ck_assert_str_eq(nh.port, "25");
	ck_assert_int_eq(nh.literal, 1);

	ck_assert_int_eq(send_nexthop_parse("[2001:db8::1]:26", &nh), 0);
	ck_assert_str_eq(nh.host, "2001:db8::1");
	ck_assert_str_eq(nh.port, "26");

	ck_assert_int_eq(send_nexthop_parse("[smtp.example.org]", &nh), 0);
	ck_assert_str_eq(nh.host, "smtp.example.org");
	ck_assert_int_eq(nh.literal, 1);

	ck_assert_int_eq(send_nexthop_parse("example.com", &nh), 0);
	ck_assert_str_eq(nh.host, "example.com");
	ck_assert_str_eq(nh.port, "25");
	ck_assert_int_eq(nh.literal, 0);

	ck_assert_int_eq(send_nexthop_parse("example.com:587", &nh), 0);
	ck_assert_str_eq(nh.port, "587");
	ck_assert_int_eq(nh.literal, 0);

	static const char *const bad[] = { "",        "[",           "[]",        "[x]junk",   "host:0",
					   "host:65536", "host:abc", "a:b:c",      "ho st",     "host;rm",
					   ":25",     "[1.2.3.4]:", "host:",     "-host",     "host:000025" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(send_nexthop_parse(bad[i], &nh) == -1, "\"%s\" accepted", bad[i]);
}
END_TEST

START_TEST(test_resolve_literal)
{
	struct send_nexthop nh;
	struct send_targets *t = malloc(sizeof(*t));
	struct send_error err;
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(send_nexthop_parse("[127.0.0.1]:2525", &nh), 0);
	ck_assert_int_eq(send_resolve(&nh, t, &err), 0);
	ck_assert_uint_eq(t->n, 1);
	ck_assert_int_eq(t->t[0].sa.ss_family, AF_INET);
	ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&t->t[0].sa)->sin_port), 2525);
	ck_assert_str_eq(t->t[0].name, "127.0.0.1");

	ck_assert_int_eq(send_nexthop_parse("[::1]:25", &nh), 0);
	ck_assert_int_eq(send_resolve(&nh, t, &err), 0);
	ck_assert_uint_eq(t->n, 1);
	ck_assert_int_eq(t->t[0].sa.ss_family, AF_INET6);
	free(t);
}
END_TEST


/* One record of type t with raw rdata, owner = the question name. */
static void add_raw(struct pkt *p, unsigned t, const unsigned char *rd, size_t rdlen)
{
	put16(p, 0xc00c);
	put16(p, t);
	put16(p, ns_c_in);
	put16(p, 0);
	put16(p, 300);
	put16(p, (unsigned)rdlen);
	for (size_t i = 0; i < rdlen; i++)
		put8(p, rd[i]);
	bump(p);
}

START_TEST(test_parse_addrs)
{
	struct pkt p;
	struct sockaddr_storage sa[4];
	char cname[256];
	static const unsigned char a1[4] = { 192, 0, 2, 1 }, a2[4] = { 192, 0, 2, 2 };
	static const unsigned char a6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 };
	start(&p);
	add_raw(&p, ns_t_a, a1, 4);
	add_raw(&p, ns_t_aaaa, a6, 16); /* another type: skipped */
	add_raw(&p, ns_t_a, a2, 4);
	ck_assert_int_eq(send_dns_parse_addrs(p.b, p.n, ns_t_a, 2525, sa, 4, cname, sizeof(cname)), 2);
	ck_assert_str_eq(cname, "");
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&sa[1];
	ck_assert_int_eq(s4->sin_family, AF_INET);
	ck_assert_uint_eq(ntohs(s4->sin_port), 2525);
	ck_assert(memcmp(&s4->sin_addr, a2, 4) == 0);
	ck_assert_int_eq(send_dns_parse_addrs(p.b, p.n, ns_t_aaaa, 25, sa, 4, cname, sizeof(cname)), 1);
	ck_assert_int_eq(sa[0].ss_family, AF_INET6);
	/* at most max kept */
	ck_assert_int_eq(send_dns_parse_addrs(p.b, p.n, ns_t_a, 25, sa, 1, cname, sizeof(cname)), 1);
	/* an A record with 5 bytes of rdata is malformed */
	static const unsigned char bad[5] = { 1, 2, 3, 4, 5 };
	start(&p);
	add_raw(&p, ns_t_a, bad, 5);
	ck_assert_int_eq(send_dns_parse_addrs(p.b, p.n, ns_t_a, 25, sa, 4, cname, sizeof(cname)), -1);
	/* a header only, or less */
	ck_assert_int_eq(send_dns_parse_addrs(p.b, 11, ns_t_a, 25, sa, 4, cname, sizeof(cname)), -1);
	/* an unsupported query type */
	ck_assert_int_eq(send_dns_parse_addrs(p.b, p.n, ns_t_mx, 25, sa, 4, cname, sizeof(cname)), -1);
}
END_TEST

START_TEST(test_parse_cname_only)
{
	struct pkt p;
	struct sockaddr_storage sa[4];
	char cname[256];
	start(&p);
	put16(&p, 0xc00c);
	put16(&p, ns_t_cname);
	put16(&p, ns_c_in);
	put16(&p, 0);
	put16(&p, 300);
	put16(&p, 15);
	put_name(&p, "other.example");
	bump(&p);
	ck_assert_int_eq(send_dns_parse_addrs(p.b, p.n, ns_t_a, 25, sa, 4, cname, sizeof(cname)), 0);
	ck_assert_str_eq(cname, "other.example");
	ck_assert_int_eq(send_dns_parse_cname(p.b, p.n, cname, sizeof(cname)), 0);
	ck_assert_str_eq(cname, "other.example");
	/* a CNAME whose rdlen does not match its name is malformed */
	p.b[p.n - 16] = 14; /* low byte of rdlen */
	ck_assert_int_eq(send_dns_parse_cname(p.b, p.n, cname, sizeof(cname)), -1);
	/* too small a buffer for the target */
	p.b[p.n - 16] = 15;
	ck_assert_int_eq(send_dns_parse_cname(p.b, p.n, cname, 5), -1);
}
END_TEST

/* Equal preferences come out in varying orders, preferences stay sorted. */
START_TEST(test_shuffle_equal_prefs)
{
	int first_seen[3] = { 0, 0, 0 };
	for (int round = 0; round < 200; round++) {
		struct send_mx mx[5] = { { 5, "a" }, { 10, "b0" }, { 10, "b1" }, { 10, "b2" }, { 20, "c" } };
		send_dns_shuffle(mx, 5);
		ck_assert_str_eq(mx[0].name, "a");
		ck_assert_str_eq(mx[4].name, "c");
		for (int i = 1; i < 4; i++) {
			ck_assert_uint_eq(mx[i].pref, 10);
			ck_assert(mx[i].name[0] == 'b');
		}
		first_seen[mx[1].name[1] - '0']++;
	}
	for (int i = 0; i < 3; i++)
		ck_assert_msg(first_seen[i] > 20, "b%d first only %d times of 200", i, first_seen[i]);
}
END_TEST

START_TEST(test_resolver_setting)
{
	struct sockaddr_in sin;
	ck_assert_int_eq(send_resolver_parse("127.0.0.1:5353", &sin), 0);
	ck_assert_uint_eq(ntohs(sin.sin_port), 5353);
	ck_assert_uint_eq(ntohl(sin.sin_addr.s_addr), 0x7f000001);
	ck_assert_int_eq(send_resolver_parse("192.0.2.9", &sin), 0);
	ck_assert_uint_eq(ntohs(sin.sin_port), 53);
	ck_assert_int_eq(send_resolver_parse("127.0.0.1:0", &sin), -1);
	ck_assert_int_eq(send_resolver_parse("127.0.0.1:99999", &sin), -1);
	ck_assert_int_eq(send_resolver_parse("ns.example:53", &sin), -1);
	ck_assert_int_eq(send_resolver_parse("", &sin), -1);
}
END_TEST

static void target(struct send_targets *t, const char *ip, int port, unsigned pref, const char *name)
{
	struct send_target *x = &t->t[t->n++];
	memset(x, 0, sizeof(*x));
	snprintf(x->name, sizeof(x->name), "%s", name);
	x->pref = pref;
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&x->sa;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((unsigned short)port);
		ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
		x->salen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&x->sa;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)port);
		ck_assert_int_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
		x->salen = sizeof(*s4);
	}
}

static void set(const char *kv)
{
	char err[256];
	ck_assert_msg(conf_override(kv, err, sizeof(err)) == 0, "%s", err);
}

START_TEST(test_loops_back_to_myself)
{
	struct send_targets t;
	struct send_error err;
	conf_defaults();
	set("smtpd_listen=127.0.0.1:2525");
	/* the same address on another port (a test sink) is not myself */
	t.n = 0;
	target(&t, "127.0.0.1", 2526, 10, "mx.test");
	ck_assert_int_eq(send_drop_self("d.test", &t, &err), 0);
	ck_assert_uint_eq(t.n, 1);
	/* the listener itself: bounce */
	t.n = 0;
	target(&t, "127.0.0.1", 2525, 10, "mx.test");
	ck_assert_int_eq(send_drop_self("d.test", &t, &err), -1);
	ck_assert_int_eq(err.status, DELIVER_PERM);
	ck_assert_str_eq(err.dsn, "5.4.6");
	ck_assert_str_eq(err.text, "mail for d.test loops back to myself");
	/* a relay domain: defer instead */
	set("relay_domains=d.test");
	t.n = 0;
	target(&t, "127.0.0.1", 2525, 10, "mx.test");
	ck_assert_int_eq(send_drop_self("d.test", &t, &err), -1);
	ck_assert_int_eq(err.status, DELIVER_TEMP);
	ck_assert_str_eq(err.dsn, "4.4.6");
	/* a better MX stays; myself and every worse MX go */
	t.n = 0;
	target(&t, "192.0.2.1", 2525, 5, "better.test");
	target(&t, "127.0.0.1", 2525, 10, "me.test");
	target(&t, "192.0.2.3", 2525, 10, "same.test");
	target(&t, "192.0.2.4", 2525, 20, "worse.test");
	ck_assert_int_eq(send_drop_self("d.test", &t, &err), 0);
	ck_assert_uint_eq(t.n, 1);
	ck_assert_str_eq(t.t[0].name, "better.test");
	/* a wildcard listener: every loopback address with that port, IPv6 and mapped too */
	set("smtpd_listen=:2600, [::1]:2700");
	target(&t, "127.0.0.5", 2600, 0, "x");
	ck_assert(send_is_self((struct sockaddr *)&t.t[t.n - 1].sa, t.t[t.n - 1].salen));
	target(&t, "::ffff:127.0.0.1", 2600, 0, "x");
	ck_assert(send_is_self((struct sockaddr *)&t.t[t.n - 1].sa, t.t[t.n - 1].salen));
	target(&t, "::1", 2700, 0, "x");
	ck_assert(send_is_self((struct sockaddr *)&t.t[t.n - 1].sa, t.t[t.n - 1].salen));
	target(&t, "127.0.0.1", 2700, 0, "x");
	ck_assert(!send_is_self((struct sockaddr *)&t.t[t.n - 1].sa, t.t[t.n - 1].salen));
	target(&t, "192.0.2.1", 2600, 0, "x");
	ck_assert(!send_is_self((struct sockaddr *)&t.t[t.n - 1].sa, t.t[t.n - 1].salen));
}
END_TEST

START_TEST(test_address_preference)
{
	struct send_targets t;
	conf_defaults();
	set("smtp_address_preference=ipv4");
	t.n = 0;
	target(&t, "2001:db8::1", 25, 10, "a.test");
	target(&t, "192.0.2.1", 25, 10, "a.test");
	target(&t, "2001:db8::2", 25, 20, "b.test");
	target(&t, "192.0.2.2", 25, 20, "b.test");
	send_order_family(t.t, t.n);
	ck_assert_int_eq(t.t[0].sa.ss_family, AF_INET);
	ck_assert_str_eq(t.t[0].name, "a.test");
	ck_assert_int_eq(t.t[1].sa.ss_family, AF_INET6);
	ck_assert_int_eq(t.t[2].sa.ss_family, AF_INET);
	ck_assert_str_eq(t.t[2].name, "b.test"); /* MX order is kept */
	set("smtp_address_preference=ipv6");
	send_order_family(t.t, t.n);
	ck_assert_int_eq(t.t[0].sa.ss_family, AF_INET6);
	ck_assert_int_eq(t.t[2].sa.ss_family, AF_INET6);
	ck_assert_str_eq(t.t[3].name, "b.test");
}
END_TEST

/* The MX question of one query datagram, or -1 when it is none. */
static int question_is_mx(const unsigned char *b, size_t n, const char *want)
{
	ns_msg msg;
	ns_rr q;
	if (ns_initparse(b, (int)n, &msg) < 0 || ns_msg_count(msg, ns_s_qd) != 1 ||
	    ns_parserr(&msg, ns_s_qd, 0, &q) < 0)
		return -1;
	return ns_rr_type(q) == ns_t_mx && strcasecmp(ns_rr_name(q), want) == 0 ? 0 : -1;
}

START_TEST(test_resolver_never_answers)
{
	/* A bound socket that is never read: queries arrive, no answer leaves. */
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char kv[64];
	ck_assert_int_ge(fd, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	conf_defaults();
	snprintf(kv, sizeof(kv), "resolver=127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
	set(kv);

	struct send_nexthop nh;
	struct send_targets *t = malloc(sizeof(*t));
	struct send_error err;
	ck_assert_ptr_nonnull(t);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(send_nexthop_parse("silent.test:2525", &nh), 0);
	ck_assert_int_eq(send_resolve(&nh, t, &err), -1);
	ck_assert_int_eq(err.status, DELIVER_TEMP);
	ck_assert_str_eq(err.dsn, "4.4.3");
	ck_assert_msg(strstr(err.text, "name=silent.test type=MX: Host not found, try again") != NULL, "%s", err.text);

	/* The MX query was sent and retried a bounded number of times (the
	 * resolver's retry count); no A/AAAA fallback after a failed MX lookup. */
	unsigned char b[NS_PACKETSZ];
	int queries = 0;
	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
		if (n < 0)
			break;
		ck_assert_msg(question_is_mx(b, (size_t)n, "silent.test") == 0, "query %d is not MX silent.test", i);
		queries++;
	}
	ck_assert_int_ge(queries, 1);
	ck_assert_int_le(queries, 2);
	close(fd);
	free(t);
}
END_TEST

static Suite *dns_suite(void)
{
	Suite *s = suite_create("send_dns");
	TCase *tc = tcase_create("dns");
	tcase_add_test(tc, test_mx_sorted_dedup);
	tcase_add_test(tc, test_null_mx_and_empty);
	tcase_add_test(tc, test_cname_then_mx);
	tcase_add_test(tc, test_hostile_names_skipped);
	tcase_add_test(tc, test_keeps_lowest_preferences);
	tcase_add_test(tc, test_malformed_replies);
	tcase_add_test(tc, test_nexthop_parse);
	tcase_add_test(tc, test_resolve_literal);
	tcase_add_test(tc, test_parse_addrs);
	tcase_add_test(tc, test_parse_cname_only);
	tcase_add_test(tc, test_shuffle_equal_prefs);
	tcase_add_test(tc, test_resolver_setting);
	tcase_add_test(tc, test_loops_back_to_myself);
	tcase_add_test(tc, test_address_preference);
	suite_add_tcase(s, tc);
	/* waits out the resolver's timeouts (two tries of at most 3 s) */
	TCase *slow = tcase_create("silent resolver");
	tcase_set_timeout(slow, 20);
	tcase_add_test(slow, test_resolver_never_answers);
	suite_add_tcase(s, slow);
	return s;
}

int main(void)
{
	log_open("test_send_dns", LOG_TO_STDERR);
	conf_defaults();
	SRunner *sr = srunner_create(dns_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
