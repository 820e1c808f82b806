/*
 * Unit tests for common/aliases: the aliases(5) parser (entries,
 * continuation lines, comments, quoting, each target kind, errors with
 * file:line), the list parser used for :include: and .forward files, and
 * the compiler (a real cdb read back through cdbmap, duplicate names
 * refused, the old table untouched on error).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aliases.h"
#include "cdbmap.h"

struct got {
	char text[4096];
	int n;
};

static int collect(void *ctx, const char *name, const char *value, size_t vlen, int line)
{
	struct got *g = ctx;
	size_t o = strlen(g->text);
	snprintf(g->text + o, sizeof(g->text) - o, "%d|%s=%.*s;", line, name, (int)vlen, value);
	g->n++;
	return 0;
}

static int parse(const char *text, struct got *g, char *err)
{
	memset(g, 0, sizeof(*g));
	return aliases_parse(text, strlen(text), "aliases", collect, g, err, 256);
}

START_TEST(entries_continuations_comments)
{
	struct got g;
	char err[256];
	const char *t = "# comment\n"
			"Postmaster: root\n"
			"\n"
			"list: alice, bob@example.org,\n"
			"\tcarol\n"
			"# inside\n"
			"  , \\dave\n"
			"cmd: \"|/usr/bin/prog -x, y\", /var/log/mail.file\n"
			"inc: :include:/etc/tern/list.inc\r\n";
	ck_assert_int_eq(parse(t, &g, err), 0);
	ck_assert_int_eq(g.n, 4);
	ck_assert_str_eq(g.text, "2|postmaster=root\n;"
				 "4|list=alice\nbob@example.org\ncarol\n\\dave\n;"
				 "8|cmd=|/usr/bin/prog -x, y\n/var/log/mail.file\n;"
				 "9|inc=:include:/etc/tern/list.inc\n;");
}
END_TEST

START_TEST(quoted_local_part_and_brackets)
{
	struct got g;
	char err[256];
	ck_assert_int_eq(parse("a: \"john doe\"@example.org, <b@c.d>\n", &g, err), 0);
	ck_assert_str_eq(g.text, "1|a=\"john doe\"@example.org\nb@c.d\n;");
}
END_TEST

START_TEST(errors_name_file_and_line)
{
	struct got g;
	char err[256];
	ck_assert_int_eq(parse("ok: a\nbad line without colon\n", &g, err), -1);
	ck_assert_str_eq(err, "aliases:2: missing ':' after the alias name");
	ck_assert_int_eq(parse("a: b\n  c\nempty:\n", &g, err), -1);
	ck_assert_str_eq(err, "aliases:3: empty: no targets");
	ck_assert_int_eq(parse("  x\n", &g, err), -1);
	ck_assert_str_eq(err, "aliases:1: continuation line without an entry");
	ck_assert_int_eq(parse("a: \"|cmd\n", &g, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "unterminated quote"));
	ck_assert_int_eq(parse("a: b c\n", &g, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "blank inside an address"));
	ck_assert_int_eq(parse("a: :include:relative\n", &g, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "absolute"));
	ck_assert_int_eq(parse("a@b: c\n", &g, err), -1);
	ck_assert_int_eq(parse("a: |\n", &g, err), -1);
	ck_assert_int_eq(parse("a: x@\n", &g, err), -1);
	char nul[] = "a: b\0c\n";
	memset(&g, 0, sizeof(g));
	ck_assert_int_eq(aliases_parse(nul, sizeof(nul) - 1, "f", collect, &g, err, 256), -1);
	ck_assert_str_eq(err, "f:1: NUL byte");
}
END_TEST

START_TEST(list_files)
{
	struct buf out;
	char err[256];
	buf_init(&out, 4096);
	const char *t = "# my forward\n\\alice, bob@example.org\n\"|/bin/true arg\"\n\n/tmp/x\n";
	ck_assert_int_eq(alias_parse_list(t, strlen(t), &out, err, sizeof(err)), 0);
	ck_assert_str_eq(out.data, "\\alice\nbob@example.org\n|/bin/true arg\n/tmp/x\n");
	ck_assert_int_eq(alias_kind("|x"), ALIAS_PIPE);
	ck_assert_int_eq(alias_kind("/x"), ALIAS_FILE);
	ck_assert_int_eq(alias_kind(":INCLUDE:/x"), ALIAS_INCLUDE);
	ck_assert_int_eq(alias_kind("x@y"), ALIAS_ADDR);
	buf_reset(&out);
	ck_assert_int_eq(alias_parse_list("\"a\x01\"", 4, &out, err, sizeof(err)), -1);
	buf_free(&out);
}
END_TEST

START_TEST(overlong_target_refused)
{
	struct got g;
	char err[256];
	size_t n = ALIAS_TARGET_MAX + 100;
	char *t = malloc(n + 16);
	memcpy(t, "a: |", 4);
	memset(t + 4, 'x', n);
	t[n + 4] = '\n';
	t[n + 5] = '\0';
	ck_assert_int_eq(parse(t, &g, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	free(t);
}
END_TEST

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(compile_roundtrip)
{
	char dir[] = "/tmp/tern-aliases-XXXXXX", src[256], dst[256], err[256];
	size_t count = 0;
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/aliases", dir);
	snprintf(dst, sizeof(dst), "%s/aliases.cdb", dir);
	write_file(src, "root: alice\nList: a, b\n  c\n");
	ck_assert_int_eq(aliases_compile(src, dst, &count, err, sizeof(err)), 0);
	ck_assert_int_eq((int)count, 2);
	struct cdbmap *m = cdbmap_open(dst);
	ck_assert_ptr_nonnull(m);
	struct buf v;
	buf_init(&v, ALIAS_VALUE_MAX);
	ck_assert_int_eq(cdbmap_lookup(m, "LIST", &v), 1);
	ck_assert_str_eq(v.data, "a\nb\nc\n");
	ck_assert_int_eq(cdbmap_lookup(m, "nobody", &v), 0);
	cdbmap_close(m);

	/* An error leaves the old table in place and no temp file. */
	write_file(src, "root: alice\nroot: bob\n");
	ck_assert_int_eq(aliases_compile(src, dst, NULL, err, sizeof(err)), -1);
	ck_assert_str_eq(err + strlen(dir) + 1, "aliases:2: duplicate alias \"root\"");
	char tmp[300];
	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	ck_assert_int_eq(access(tmp, F_OK), -1);
	m = cdbmap_open(dst);
	ck_assert_int_eq(cdbmap_lookup(m, "root", &v), 1);
	ck_assert_str_eq(v.data, "alice\n");
	cdbmap_close(m);
	buf_free(&v);
	unlink(dst);
	unlink(src);
	rmdir(dir);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("aliases");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, entries_continuations_comments);
	tcase_add_test(tc, quoted_local_part_and_brackets);
	tcase_add_test(tc, errors_name_file_and_line);
	tcase_add_test(tc, list_files);
	tcase_add_test(tc, overlong_target_refused);
	tcase_add_test(tc, compile_roundtrip);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
