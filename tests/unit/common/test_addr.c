/*
 * test_addr — RFC 5321 path parser: a table of paths with their expected
 * result (error class, canonical mailbox, what follows the path), covering
 * hostile-inputs.md A.2 and A.3, plus the length limits, address literals,
 * UTF-8 with and without SMTPUTF8, and the helper functions.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

struct pcase {
	const char *in;
	int flags;
	enum addr_error want;
	const char *mailbox; /* expected canonical mailbox when ADDR_OK */
	const char *rest;    /* expected *end when ADDR_OK (NULL: don't care) */
};

#define U ADDR_UTF8
#define NB ADDR_NO_BRACKETS

static const struct pcase cases[] = {
	/* basics and what follows the path */
	{ "<u@d>", 0, ADDR_OK, "u@d", "" },
	{ "<u@d> SIZE=10 BODY=8BITMIME", 0, ADDR_OK, "u@d", " SIZE=10 BODY=8BITMIME" },
	{ " <u@d>", 0, ADDR_OK, "u@d", "" },
	{ "<User.Name+tag@Example.COM>", 0, ADDR_OK, "User.Name+tag@Example.COM", "" },
	/* null path */
	{ "<>", 0, ADDR_ERR_NULL_NOT_ALLOWED, NULL, NULL },
	{ "<> SIZE=1", ADDR_ALLOW_NULL, ADDR_OK, "", " SIZE=1" },
	{ "< >", ADDR_ALLOW_NULL, ADDR_ERR_SYNTAX, NULL, NULL },
	/* source routes are accepted and stripped */
	{ "<@a,@b:u@d>", 0, ADDR_OK, "u@d", "" },
	{ "<@a.example:u@d>", 0, ADDR_OK, "u@d", "" },
	{ "<@[1.2.3.4]:u@d>", 0, ADDR_OK, "u@d", "" },
	{ "<@a,b:u@d>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<@a:>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<@:u@d>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<@a u@d>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<@-a:u@d>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	/* quoted local parts: unquoted when possible, minimal escapes */
	{ "<\"a b\"@d>", 0, ADDR_OK, "\"a b\"@d", "" },
	{ "<\"ab\"@d>", 0, ADDR_OK, "ab@d", "" },
	{ "<\"a\\b\"@d>", 0, ADDR_OK, "ab@d", "" },
	{ "<\"a.b\"@d>", 0, ADDR_OK, "a.b@d", "" },
	{ "<\"a..b\"@d>", 0, ADDR_OK, "\"a..b\"@d", "" },
	{ "<\".a\"@d>", 0, ADDR_OK, "\".a\"@d", "" },
	{ "<\"\\\\\"@d>", 0, ADDR_OK, "\"\\\\\"@d", "" },
	{ "<\"a\\\"b\"@d>", 0, ADDR_OK, "\"a\\\"b\"@d", "" },
	{ "<\"\"@d>", 0, ADDR_OK, "\"\"@d", "" },
	{ "<\"a>b\"@d>", 0, ADDR_OK, "\"a>b\"@d", "" },
	{ "<\"a@b\"@d>", 0, ADDR_OK, "\"a@b\"@d", "" },
	{ "<\"ab@d>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<\"a\"b@d>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	/* trailing backslash */
	{ "<u\\>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<\"u\\>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<\"u\\", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "u\\", NB, ADDR_ERR_SYNTAX, NULL, NULL },
	/* dot-string rules */
	{ "<.u@d>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<u.@d>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<u..v@d>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<u v@d>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<u@d", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<u@d>>", 0, ADDR_OK, "u@d", ">" },
	{ "<<u@d>>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<u@@d>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	/* empty domain: OpenSMTPD CVE-2020-7247 */
	{ "<u@>", 0, ADDR_ERR_EMPTY_DOMAIN, NULL, NULL },
	{ "<u@", 0, ADDR_ERR_EMPTY_DOMAIN, NULL, NULL },
	{ "u@", NB, ADDR_ERR_EMPTY_DOMAIN, NULL, NULL },
	{ "<u@> SIZE=1", 0, ADDR_ERR_EMPTY_DOMAIN, NULL, NULL },
	/* domains */
	{ "<u@-d.com>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@d-.com>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@d..com>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@.d.com>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@d.com.>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@d_x.com>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@d x>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@a-b.c-d9.com>", 0, ADDR_OK, "u@a-b.c-d9.com", "" },
	/* address literals */
	{ "<u@[1.2.3.4]>", 0, ADDR_OK, "u@[1.2.3.4]", "" },
	{ "<u@[1.2.3.256]>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@[1.2.3]>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@[01.2.3.4]>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@[IPv6:::1]>", 0, ADDR_OK, "u@[IPv6:::1]", "" },
	{ "<u@[ipv6:2001:db8::1]>", 0, ADDR_OK, "u@[ipv6:2001:db8::1]", "" },
	{ "<u@[IPv6:::g]>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@[IPv6:1.2.3.4]>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@[::1]>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@[x-tag:stuff]>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@[1.2.3.4>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<u@[1.2.3.4]x>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<u@[1.2.3.4\\]>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@[]>", 0, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	/* no angle brackets */
	{ "u@d", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "u@d", NB, ADDR_OK, "u@d", "" },
	{ "u@d SIZE=1", NB, ADDR_OK, "u@d", " SIZE=1" },
	{ "<u@d>", NB, ADDR_OK, "u@d", "" },
	/* bare local parts */
	{ "<postmaster>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<Postmaster>", ADDR_ALLOW_NO_DOMAIN, ADDR_OK, "Postmaster", "" },
	{ "root", NB | ADDR_ALLOW_NO_DOMAIN, ADDR_OK, "root", "" },
	/* control characters never pass */
	{ "<u\r@d>", 0, ADDR_ERR_CONTROL, NULL, NULL },
	{ "<u@d\n>", 0, ADDR_ERR_CONTROL, NULL, NULL },
	{ "<u\t@d>", 0, ADDR_ERR_CONTROL, NULL, NULL },
	{ "<u\x7f@d>", 0, ADDR_ERR_CONTROL, NULL, NULL },
	{ "<\"a\rb\"@d>", 0, ADDR_ERR_CONTROL, NULL, NULL },
	{ "<\"a\\\nb\"@d>", 0, ADDR_ERR_CONTROL, NULL, NULL },
	{ "<\"a\x01\"@d>", U, ADDR_ERR_CONTROL, NULL, NULL },
	{ "<u@[1.2.3.4\r]>", 0, ADDR_ERR_CONTROL, NULL, NULL },
	{ "<@a\r:u@d>", 0, ADDR_ERR_CONTROL, NULL, NULL },
	{ "<\x01u@d>", 0, ADDR_ERR_CONTROL, NULL, NULL },
	/* UTF-8 only with SMTPUTF8, and only well-formed */
	{ "<j\xc3\xb8rn@d>", 0, ADDR_ERR_UTF8, NULL, NULL },
	{ "<j\xc3\xb8rn@d>", U, ADDR_OK, "j\xc3\xb8rn@d", "" },
	{ "<u@\xc3\xa6\xc3\xb8.example>", 0, ADDR_ERR_UTF8, NULL, NULL },
	{ "<u@\xc3\xa6\xc3\xb8.example>", U, ADDR_OK, "u@\xc3\xa6\xc3\xb8.example", "" },
	{ "<\"\xc3\xb8 x\"@d>", U, ADDR_OK, "\"\xc3\xb8 x\"@d", "" },
	{ "<\"\xc3\xb8 x\"@d>", 0, ADDR_ERR_UTF8, NULL, NULL },
	{ "<\xf0\x9f\x98\x80@d>", U, ADDR_OK, "\xf0\x9f\x98\x80@d", "" },
	{ "<\xc3\x28@d>", U, ADDR_ERR_UTF8, NULL, NULL },         /* bad continuation */
	{ "<\xc0\xaf@d>", U, ADDR_ERR_UTF8, NULL, NULL },         /* overlong '/' */
	{ "<\xe0\x80\xaf@d>", U, ADDR_ERR_UTF8, NULL, NULL },     /* overlong, 3 bytes */
	{ "<\xed\xa0\x80@d>", U, ADDR_ERR_UTF8, NULL, NULL },     /* surrogate */
	{ "<\xf4\x90\x80\x80@d>", U, ADDR_ERR_UTF8, NULL, NULL }, /* past U+10FFFF */
	{ "<\xe2\x82@d>", U, ADDR_ERR_UTF8, NULL, NULL },         /* truncated */
	{ "<\x80@d>", U, ADDR_ERR_UTF8, NULL, NULL },             /* lone continuation */
	{ "<\xff@d>", U, ADDR_ERR_UTF8, NULL, NULL },
	{ "<\xc2\x85@d>", U, ADDR_ERR_CONTROL, NULL, NULL }, /* C1 control NEL */
	{ "<u@[\xc3\xb8]>", U, ADDR_ERR_BAD_DOMAIN, NULL, NULL },
	{ "<u@[\xc3\xb8]>", 0, ADDR_ERR_UTF8, NULL, NULL },
	/* shell and expansion metacharacters are inert data or rejected */
	{ "<a|b$c@d>", 0, ADDR_OK, "a|b$c@d", "" },
	{ "<${run{/bin/sh}}@d>", 0, ADDR_OK, "${run{/bin/sh}}@d", "" },
	{ "<-oQ/tmp@d>", 0, ADDR_OK, "-oQ/tmp@d", "" },
	{ "<a;b@d>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<$(id)@d>", 0, ADDR_ERR_SYNTAX, NULL, NULL },
	{ "<\"a;b\"@d>", 0, ADDR_OK, "\"a;b\"@d", "" },
};

START_TEST(test_table)
{
	const struct pcase *c = &cases[_i];
	struct addr a;
	const char *end = NULL;
	enum addr_error e;

	memset(&a, 'X', sizeof(a));
	e = addr_parse_path(c->in, c->flags, &a, &end);
	ck_assert_msg(e == c->want, "case %d \"%s\": got %d (%s), want %d", _i, c->in, e, addr_strerror(e),
		      c->want);
	if (e != ADDR_OK)
		return;
	ck_assert_str_eq(a.mailbox, c->mailbox);
	ck_assert_int_eq(a.is_null, c->mailbox[0] == '\0');
	if (c->rest != NULL)
		ck_assert_str_eq(end, c->rest);
}
END_TEST

/* A domain of exactly n octets made of 9-letter labels. */
static void make_domain(char *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (i % 10 == 9) ? '.' : 'a';
	if (out[n - 1] == '.')
		out[n - 1] = 'b';
	out[n] = '\0';
}

static enum addr_error parse(const char *s, int flags, struct addr *a)
{
	const char *end;

	return addr_parse_path(s, flags, a, &end);
}

START_TEST(test_local_limit)
{
	char in[200], local[100];
	struct addr a;

	memset(local, 'l', 64);
	local[64] = '\0';
	snprintf(in, sizeof(in), "<%s@d>", local);
	ck_assert_int_eq(parse(in, 0, &a), ADDR_OK);
	ck_assert_uint_eq(strlen(a.local), 64);
	local[64] = 'l';
	local[65] = '\0';
	snprintf(in, sizeof(in), "<%s@d>", local);
	ck_assert_int_eq(parse(in, 0, &a), ADDR_ERR_LOCAL_TOO_LONG);

	/* quoted: the canonical form (with quotes) is what is counted */
	memset(local, 'q', 61);
	local[61] = '\0';
	snprintf(in, sizeof(in), "<\"%s \"@d>", local); /* 64 with quotes */
	ck_assert_int_eq(parse(in, 0, &a), ADDR_OK);
	ck_assert_uint_eq(strlen(a.local), 64);
	snprintf(in, sizeof(in), "<\"q%s \"@d>", local); /* 65 */
	ck_assert_int_eq(parse(in, 0, &a), ADDR_ERR_LOCAL_TOO_LONG);
	/* needless quotes and escapes do not count */
	memset(local, 'q', 64);
	local[64] = '\0';
	snprintf(in, sizeof(in), "<\"%s\"@d>", local);
	ck_assert_int_eq(parse(in, 0, &a), ADDR_OK);
	ck_assert_str_eq(a.local, local);
}
END_TEST

START_TEST(test_domain_and_path_limits)
{
	char dom[400], in[600];
	struct addr a;

	make_domain(dom, 256);
	snprintf(in, sizeof(in), "<u@%s>", dom);
	ck_assert_int_eq(parse(in, 0, &a), ADDR_ERR_DOMAIN_TOO_LONG);
	/* 255 is a legal domain, but no path with it fits in 256 octets */
	make_domain(dom, 255);
	snprintf(in, sizeof(in), "<u@%s>", dom);
	ck_assert_int_eq(parse(in, 0, &a), ADDR_ERR_PATH_TOO_LONG);
	/* "<" + "u@" + 252 + ">" = 256: the longest path */
	make_domain(dom, 252);
	snprintf(in, sizeof(in), "<u@%s>", dom);
	ck_assert_int_eq(parse(in, 0, &a), ADDR_OK);
	ck_assert_uint_eq(strlen(a.mailbox), 254);
	make_domain(dom, 253);
	snprintf(in, sizeof(in), "<u@%s>", dom);
	ck_assert_int_eq(parse(in, 0, &a), ADDR_ERR_PATH_TOO_LONG);
	/* a 10 KB domain stops at the limit */
	char *big = malloc(10010);
	big[0] = '<';
	big[1] = 'u';
	big[2] = '@';
	make_domain(big + 3, 10000);
	strcat(big, ">");
	ck_assert_int_eq(parse(big, 0, &a), ADDR_ERR_DOMAIN_TOO_LONG);
	free(big);
}
END_TEST

START_TEST(test_label_limit)
{
	char label[80], in[200];
	struct addr a;

	memset(label, 'x', 63);
	label[63] = '\0';
	snprintf(in, sizeof(in), "<u@%s.com>", label);
	ck_assert_int_eq(parse(in, 0, &a), ADDR_OK);
	snprintf(in, sizeof(in), "<u@x%s.com>", label);
	ck_assert_int_eq(parse(in, 0, &a), ADDR_ERR_BAD_DOMAIN);
}
END_TEST

START_TEST(test_nul_inside)
{
	/* The NUL ends the string as far as C is concerned: the parser must
	 * stop there and never look at the bytes after it. */
	static const char in[] = "<a\0b@d>";
	static const char in2[] = "<a@d\0>";
	static const char in3[] = "<\"a\0\"@d>";
	struct addr a;

	ck_assert_int_ne(parse(in, 0, &a), ADDR_OK);
	ck_assert_int_ne(parse(in2, 0, &a), ADDR_OK);
	ck_assert_int_ne(parse(in3, 0, &a), ADDR_OK);
	ck_assert_int_ne(addr_parse_mailbox(in3, 0, &a), ADDR_OK);
}
END_TEST

START_TEST(test_long_route)
{
	/* A source route of thousands of hops is parsed in linear time and dropped. */
	size_t n = 4000;
	char *in = malloc(n * 3 + 20), *p = in;

	*p++ = '<';
	for (size_t i = 0; i < n; i++) {
		memcpy(p, "@a,", 3);
		p += 3;
	}
	p[-1] = ':';
	strcpy(p, "u@d>");
	struct addr a;
	ck_assert_int_eq(parse(in, 0, &a), ADDR_OK);
	ck_assert_str_eq(a.mailbox, "u@d");
	free(in);
}
END_TEST

START_TEST(test_fields)
{
	struct addr a;

	ck_assert_int_eq(parse("<\"a b\"@Example.COM>", 0, &a), ADDR_OK);
	ck_assert_str_eq(a.local, "\"a b\"");
	ck_assert_str_eq(a.domain, "Example.COM");
	ck_assert_int_eq(a.is_null, 0);
	ck_assert_int_eq(parse("<>", ADDR_ALLOW_NULL, &a), ADDR_OK);
	ck_assert_int_eq(a.is_null, 1);
	ck_assert_str_eq(a.mailbox, "");
	ck_assert_str_eq(a.local, "");
	ck_assert_str_eq(a.domain, "");
	ck_assert_int_eq(parse("<root>", ADDR_ALLOW_NO_DOMAIN, &a), ADDR_OK);
	ck_assert_str_eq(a.local, "root");
	ck_assert_str_eq(a.domain, "");
}
END_TEST

START_TEST(test_parse_mailbox)
{
	struct addr a;

	ck_assert_int_eq(addr_parse_mailbox("u@d", 0, &a), ADDR_OK);
	ck_assert_str_eq(a.mailbox, "u@d");
	ck_assert_int_eq(addr_parse_mailbox("<u@d>", 0, &a), ADDR_OK);
	ck_assert_str_eq(a.mailbox, "u@d");
	ck_assert_int_eq(addr_parse_mailbox("u@d x", 0, &a), ADDR_ERR_SYNTAX);
	ck_assert_int_eq(addr_parse_mailbox("<u@d> x", 0, &a), ADDR_ERR_SYNTAX);
	ck_assert_int_eq(addr_parse_mailbox("u@d\n", 0, &a), ADDR_ERR_CONTROL);
	ck_assert_int_eq(addr_parse_mailbox("", 0, &a), ADDR_ERR_SYNTAX);
	ck_assert_int_eq(addr_parse_mailbox("", ADDR_ALLOW_NULL, &a), ADDR_OK);
	ck_assert_int_eq(a.is_null, 1);
	ck_assert_int_eq(addr_parse_mailbox("<>", 0, &a), ADDR_ERR_NULL_NOT_ALLOWED);
	ck_assert_int_eq(addr_parse_mailbox("u@", 0, &a), ADDR_ERR_EMPTY_DOMAIN);
	ck_assert_int_eq(addr_parse_mailbox("postmaster", 0, &a), ADDR_ERR_SYNTAX);
	ck_assert_int_eq(addr_parse_mailbox("postmaster", ADDR_ALLOW_NO_DOMAIN, &a), ADDR_OK);
	ck_assert_str_eq(a.mailbox, "postmaster");
	/* sendmail -f '-oQ/tmp' style input is just a local part, never an option */
	ck_assert_int_eq(addr_parse_mailbox("-oQ/tmp", ADDR_ALLOW_NO_DOMAIN, &a), ADDR_OK);
	ck_assert_str_eq(a.mailbox, "-oQ/tmp");
	ck_assert_int_eq(addr_parse_mailbox("a\nX-Inj: y", ADDR_ALLOW_NO_DOMAIN, &a), ADDR_ERR_CONTROL);
}
END_TEST

START_TEST(test_strerror)
{
	for (int e = ADDR_OK; e <= ADDR_ERR_CONTROL; e++) {
		const char *s = addr_strerror((enum addr_error)e);
		ck_assert_ptr_nonnull(s);
		ck_assert_uint_gt(strlen(s), 0);
	}
	ck_assert_str_eq(addr_strerror(ADDR_ERR_LOCAL_TOO_LONG), "local part too long");
}
END_TEST

START_TEST(test_domain_eq)
{
	ck_assert(addr_domain_eq("Example.COM", "example.com"));
	ck_assert(addr_domain_eq("example.com.", "example.com"));
	ck_assert(addr_domain_eq("example.com", "EXAMPLE.com."));
	ck_assert(addr_domain_eq("", ""));
	ck_assert(!addr_domain_eq("example.com..", "example.com"));
	ck_assert(!addr_domain_eq("example.co", "example.com"));
	ck_assert(!addr_domain_eq("xexample.com", "example.com"));
	ck_assert(!addr_domain_eq("\xc3\x86.com", "\xc3\xa6.com")); /* ASCII folding only */
}
END_TEST

START_TEST(test_split_extension)
{
	char user[ADDR_SIZE], ext[ADDR_SIZE];

	ck_assert_int_eq(addr_split_extension("joe+list", "+", user, ext), 1);
	ck_assert_str_eq(user, "joe");
	ck_assert_str_eq(ext, "list");
	ck_assert_int_eq(addr_split_extension("joe+a+b", "+", user, ext), 1);
	ck_assert_str_eq(user, "joe");
	ck_assert_str_eq(ext, "a+b");
	ck_assert_int_eq(addr_split_extension("joe-x+y", "+-", user, ext), 1);
	ck_assert_str_eq(user, "joe");
	ck_assert_str_eq(ext, "x+y");
	ck_assert_int_eq(addr_split_extension("joe", "+", user, ext), 0);
	ck_assert_str_eq(user, "joe");
	ck_assert_str_eq(ext, "");
	ck_assert_int_eq(addr_split_extension("joe+", "+", user, ext), 1);
	ck_assert_str_eq(user, "joe");
	ck_assert_str_eq(ext, "");
	ck_assert_int_eq(addr_split_extension("+joe", "+", user, ext), 0);
	ck_assert_str_eq(user, "+joe");
	ck_assert_int_eq(addr_split_extension("joe+x", "", user, ext), 0);
	ck_assert_str_eq(user, "joe+x");
	ck_assert_int_eq(addr_split_extension("joe+x", NULL, user, ext), 0);
	/* quoted: split unquoted, as Postfix does, when the user part is a
	 * plain dot-string; escapes are undone in the extension */
	ck_assert_int_eq(addr_split_extension("\"a+b c\"", "+", user, ext), 1);
	ck_assert_str_eq(user, "a");
	ck_assert_str_eq(ext, "b c");
	ck_assert_int_eq(addr_split_extension("\"joe+x\\\"y\\\\z\"", "+", user, ext), 1);
	ck_assert_str_eq(user, "joe");
	ck_assert_str_eq(ext, "x\"y\\z");
	ck_assert_int_eq(addr_split_extension("\"a b+c\"", "+", user, ext), 0); /* the user needs quotes */
	ck_assert_str_eq(user, "\"a b+c\"");
	ck_assert_str_eq(ext, "");
	ck_assert_int_eq(addr_split_extension("\"a b\"", "+", user, ext), 0); /* no delimiter */
	ck_assert_str_eq(user, "\"a b\"");
	ck_assert_int_eq(addr_split_extension("\"+a b\"", "+", user, ext), 0); /* empty user */
	ck_assert_str_eq(user, "\"+a b\"");
	ck_assert_int_eq(addr_split_extension("\"a b\"", "", user, ext), 0);
}
END_TEST

static Suite *addr_suite(void)
{
	Suite *s = suite_create("addr");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, test_local_limit);
	tcase_add_test(tc, test_domain_and_path_limits);
	tcase_add_test(tc, test_label_limit);
	tcase_add_test(tc, test_nul_inside);
	tcase_add_test(tc, test_long_route);
	tcase_add_test(tc, test_fields);
	tcase_add_test(tc, test_parse_mailbox);
	tcase_add_test(tc, test_strerror);
	tcase_add_test(tc, test_domain_eq);
	tcase_add_test(tc, test_split_extension);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(addr_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
