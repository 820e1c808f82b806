/*
 * test_resolve — address → transport and next hop, the rules smtpd and the
 * queue manager share.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdbmap.h"
#include "conf.h"
#include "resolve.h"

static char dir[256], src[300], map[310];

static void write_table(const char *text)
{
	char err[256] = "";
	FILE *f = fopen(src, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_msg(cdbmap_compile(src, map, err, sizeof(err)) == 0, "compile: %s", err);
}

static void setup(void)
{
	char err[256] = "";

	strcpy(dir, "/tmp/tern-resolve-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/transport", dir);
	snprintf(map, sizeof(map), "%s/transport.cdb", dir);
	write_table("relay.test     smtp:[127.0.0.1]:2526\n"
		    ".sub.test      smtp:mx.sub.test\n"
		    "special@other.test  local:\n"
		    "dead.test      error:5.1.2 no mail for dead.test\n"
		    "void.test      discard:\n"
		    "default.test   smtp:\n");
	conf_defaults();
	ck_assert_int_eq(conf_override("mydestination=localhost, tern.test", err, sizeof(err)), 0);
	ck_assert_int_eq(conf_override("myhostname=tern.test", err, sizeof(err)), 0);
	{
		char kv[400];
		snprintf(kv, sizeof(kv), "transport_maps=%s", map);
		ck_assert_int_eq(conf_override(kv, err, sizeof(err)), 0);
	}
	ck_assert_msg(conf_finish(err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(resolve_init(err, sizeof(err)) == 0, "%s", err);
}

static void teardown(void)
{
	unlink(src);
	unlink(map);
	rmdir(dir);
}

static struct route route_of(const char *address)
{
	struct route rt;

	ck_assert_int_eq(resolve_address(address, &rt), 0);
	return rt;
}

START_TEST(local_domains)
{
	struct route rt = route_of("alice@localhost");

	ck_assert_int_eq(rt.transport, TR_LOCAL);
	rt = route_of("alice@TERN.test");
	ck_assert_int_eq(rt.transport, TR_LOCAL);
	rt = route_of("postmaster"); /* RFC 5321 4.5.1: no domain */
	ck_assert_int_eq(rt.transport, TR_LOCAL);
}
END_TEST

START_TEST(transport_map_entries)
{
	struct route rt = route_of("bob@relay.test");

	ck_assert_int_eq(rt.transport, TR_SMTP);
	ck_assert_str_eq(rt.nexthop, "[127.0.0.1]:2526");
	rt = route_of("bob@RELAY.TEST");
	ck_assert_str_eq(rt.nexthop, "[127.0.0.1]:2526");
	/* ".sub.test" matches subdomains, not sub.test itself */
	rt = route_of("x@a.b.sub.test");
	ck_assert_str_eq(rt.nexthop, "mx.sub.test");
	rt = route_of("x@sub.test");
	ck_assert_str_eq(rt.nexthop, "sub.test");
	/* a full-address entry wins over the domain's default */
	rt = route_of("special@other.test");
	ck_assert_int_eq(rt.transport, TR_LOCAL);
	rt = route_of("plain@other.test");
	ck_assert_int_eq(rt.transport, TR_SMTP);
	ck_assert_str_eq(rt.nexthop, "other.test");
	rt = route_of("x@dead.test");
	ck_assert_int_eq(rt.transport, TR_ERROR);
	ck_assert_str_eq(rt.error, "5.1.2 no mail for dead.test");
	rt = route_of("x@void.test");
	ck_assert_int_eq(rt.transport, TR_DISCARD);
	/* "smtp:" with no next hop means the default: the domain's MX */
	rt = route_of("x@default.test");
	ck_assert_int_eq(rt.transport, TR_SMTP);
	ck_assert_str_eq(rt.nexthop, "default.test");
}
END_TEST

START_TEST(relayhost_applies_to_remote_only)
{
	char err[256];
	struct route rt;

	ck_assert_int_eq(conf_override("relayhost=[192.0.2.25]:587", err, sizeof(err)), 0);
	rt = route_of("x@elsewhere.example");
	ck_assert_str_eq(rt.nexthop, "[192.0.2.25]:587");
	rt = route_of("x@localhost");
	ck_assert_int_eq(rt.transport, TR_LOCAL);
	rt = route_of("bob@relay.test"); /* the transport map wins */
	ck_assert_str_eq(rt.nexthop, "[127.0.0.1]:2526");
}
END_TEST

START_TEST(bad_values)
{
	struct route rt;

	ck_assert_int_eq(resolve_parse_value("bogus:x", "d", &rt), -1);
	ck_assert_int_eq(resolve_parse_value("smtp:a b", "d", &rt), -1);
	ck_assert_int_eq(resolve_parse_value("", "d", &rt), -1);
	ck_assert_int_eq(resolve_parse_value("local", "d", &rt), 0);
	ck_assert_int_eq(rt.transport, TR_LOCAL);
}
END_TEST

START_TEST(bad_table_value_is_temporary)
{
	struct route rt;

	write_table("broken.test   nonsense:value\n");
	sleep(1); /* the map re-checks its file at most once a second */
	usleep(100000);
	ck_assert_int_eq(resolve_address("x@broken.test", &rt), -1);
}
END_TEST

/* virtual_alias_maps: recursion, self-maps, duplicates, loops, @domain
 * catch-alls, virtual_alias_domains, and the RCPT verdicts. */
START_TEST(virtual_aliases)
{
	char vsrc[400], vmap[410], kv[500], err[256] = "";
	struct valias_list vl;
	struct route rt;
	FILE *f;

	snprintf(vsrc, sizeof(vsrc), "%s/virtual", dir);
	snprintf(vmap, sizeof(vmap), "%s/virtual.cdb", dir);
	f = fopen(vsrc, "w");
	ck_assert_ptr_nonnull(f);
	fputs("list@virt.test   a@local.test, group@virt.test  b@remote.test\n"
	      "group@virt.test  c@remote.test,b@remote.test\n"
	      "self@virt.test   self@virt.test, copy@remote.test\n"
	      "loop1@virt.test  loop2@virt.test\n"
	      "loop2@virt.test  x@remote.test loop1@virt.test\n"
	      "@catch.test      postmaster@remote.test\n", f);
	fclose(f);
	ck_assert_msg(cdbmap_compile(vsrc, vmap, err, sizeof(err)) == 0, "%s", err);
	snprintf(kv, sizeof(kv), "virtual_alias_maps=%s", vmap);
	ck_assert_int_eq(conf_override(kv, err, sizeof(err)), 0);
	ck_assert_int_eq(conf_override("virtual_alias_domains=virt.test", err, sizeof(err)), 0);
	ck_assert_msg(resolve_init(err, sizeof(err)) == 0, "%s", err);

	ck_assert_int_eq(resolve_virtual("List@Virt.test", &vl), VALIAS_EXPANDED);
	ck_assert_uint_eq(vl.n, 3); /* b@remote.test only once */
	ck_assert_str_eq(vl.addr[0], "a@local.test");
	ck_assert_str_eq(vl.addr[1], "c@remote.test");
	ck_assert_str_eq(vl.addr[2], "b@remote.test");
	valias_list_free(&vl);

	ck_assert_int_eq(resolve_virtual("self@virt.test", &vl), VALIAS_EXPANDED);
	ck_assert_uint_eq(vl.n, 2);
	ck_assert_str_eq(vl.addr[0], "self@virt.test");
	valias_list_free(&vl);

	ck_assert_int_eq(resolve_virtual("loop1@virt.test", &vl), VALIAS_LOOP);
	ck_assert_uint_eq(vl.n, 0);
	ck_assert_int_eq(resolve_virtual("anyone@catch.test", &vl), VALIAS_EXPANDED);
	ck_assert_str_eq(vl.addr[0], "postmaster@remote.test");
	valias_list_free(&vl);
	ck_assert_int_eq(resolve_virtual("someone@else.test", &vl), VALIAS_NONE);

	/* An address of a virtual alias domain without an entry. */
	ck_assert_int_eq(resolve_address("nobody@virt.test", &rt), 0);
	ck_assert_int_eq(rt.transport, TR_ERROR);
	ck_assert_int_eq(strncmp(rt.error, "5.1.1", 5), 0);
	ck_assert_int_eq(resolve_rcpt_check("nobody@virt.test"), RCPT_UNKNOWN);
	ck_assert_int_eq(resolve_rcpt_check("list@virt.test"), RCPT_ACCEPT);
	ck_assert_int_eq(resolve_rcpt_check("loop1@virt.test"), RCPT_UNKNOWN);
	ck_assert_int_eq(resolve_rcpt_check("x@remote.test"), RCPT_ACCEPT);
	unlink(vsrc);
	unlink(vmap);
}
END_TEST

/* A chain deeper than VALIAS_MAX_DEPTH is refused like a loop. */
START_TEST(virtual_alias_depth_limit)
{
	char vsrc[400], vmap[410], kv[500], err[256] = "";
	struct valias_list vl;
	FILE *f;
	int i;

	snprintf(vsrc, sizeof(vsrc), "%s/virtual", dir);
	snprintf(vmap, sizeof(vmap), "%s/virtual.cdb", dir);
	f = fopen(vsrc, "w");
	ck_assert_ptr_nonnull(f);
	for (i = 0; i < VALIAS_MAX_DEPTH + 5; i++)
		fprintf(f, "a%d@chain.test a%d@chain.test\n", i, i + 1);
	fclose(f);
	ck_assert_msg(cdbmap_compile(vsrc, vmap, err, sizeof(err)) == 0, "%s", err);
	snprintf(kv, sizeof(kv), "virtual_alias_maps=%s", vmap);
	ck_assert_int_eq(conf_override(kv, err, sizeof(err)), 0);
	ck_assert_msg(resolve_init(err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(resolve_virtual("a0@chain.test", &vl), VALIAS_LOOP);
	ck_assert_int_eq(resolve_virtual("a10@chain.test", &vl), VALIAS_EXPANDED);
	ck_assert_str_eq(vl.addr[0], "a105@chain.test");
	valias_list_free(&vl);
	unlink(vsrc);
	unlink(vmap);
}
END_TEST

static Suite *resolve_suite(void)
{
	Suite *s = suite_create("resolve");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, local_domains);
	tcase_add_test(tc, transport_map_entries);
	tcase_add_test(tc, relayhost_applies_to_remote_only);
	tcase_add_test(tc, bad_values);
	tcase_add_test(tc, bad_table_value_is_temporary);
	tcase_add_test(tc, virtual_aliases);
	tcase_add_test(tc, virtual_alias_depth_limit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(resolve_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
