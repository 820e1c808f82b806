/*
 * fuzz_sendmail_hdr — libFuzzer target for `sendmail -t` header handling:
 * the address-list parser (sm_addr_list) and the header fix-up
 * (sm_fix_headers) behind it, fed as tern-sendmail feeds them.
 *
 * The first byte picks the mode: bit 0 the lone-dot rule of
 * sm_read_message (without -i), bit 1 whether the rest is a whole message
 * (read through sm_read_message from a memfd, then sm_fix_headers with -t)
 * or one header value (sm_addr_list alone).  Properties:
 *   - sm_addr_list reads only s[0..n) (the value is copied into a buffer of
 *     exactly n bytes, no terminator: AddressSanitizer sees any overread);
 *     it returns -1 or the number of callbacks; every address it hands out
 *     is non-empty, shorter than MD_ADDR_MAX, and holds no NUL (no silent
 *     truncation) and no unquoted white space;
 *   - what tern-sendmail keeps (sm_add_rcpt: addr_parse_mailbox) has no
 *     control character, and the kept mailboxes written as a list
 *     "a, b, ..." parse back to exactly the same list (round trip);
 *   - sm_fix_headers: the output's header section has no Bcc or
 *     Resent-Bcc field and has From, Date and Message-ID; the output ends
 *     with an empty line or a body; fixing the output again changes nothing
 *     (idempotent, so nothing is added or dropped twice); every recipient
 *     of a Bcc field was handed to the callback.
 */
// fuzz-sources: sendmail/sendmail_hdr.c sendmail/sendmail_msg.c sendmail/sendmail_post.c
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "addr.h"
#include "buf.h"
#include "conf.h"
#include "maildrop.h"
#include "../../sendmail/sendmail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_MSG (1 << 20)

struct got {
	struct buf all;    /* kept mailboxes, each followed by '\n' */
	size_t calls;      /* callbacks */
	size_t kept;       /* addresses addr_parse_mailbox accepted */
};

static void check_raw(const char *a)
{
	size_t n = strlen(a), i;
	int quoted = 0, literal = 0;

	if (n == 0 || n >= MD_ADDR_MAX)
		__builtin_trap();
	for (i = 0; i < n; i++) {
		char c = a[i];

		if (quoted) {
			if (c == '\\')
				i++;
			else if (c == '"')
				quoted = 0;
		} else if (literal) {
			if (c == '\\')
				i++;
			else if (c == ']')
				literal = 0;
		} else if (c == '"') {
			quoted = 1;
		} else if (c == '[') {
			literal = 1;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '(') {
			__builtin_trap(); /* white space and comments are dropped outside quotes */
		}
	}
}

static int collect(void *ctx, const char *addr)
{
	struct got *g = ctx;
	struct addr a;
	const unsigned char *p;

	g->calls++;
	check_raw(addr);
	/* What sm_add_rcpt keeps (without its message on stderr). */
	if (addr_parse_mailbox(addr, ADDR_NO_BRACKETS | ADDR_ALLOW_NO_DOMAIN | ADDR_UTF8, &a) != ADDR_OK || a.is_null)
		return 0;
	for (p = (const unsigned char *)a.mailbox; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			__builtin_trap();
	if (a.mailbox[0] == 0)
		__builtin_trap();
	g->kept++;
	if (buf_puts(&g->all, a.mailbox) < 0 || buf_putc(&g->all, '\n') < 0)
		__builtin_trap();
	return 0;
}

/* Parse s[0..n) from an exact-size copy; the count, or -1. */
static int parse_exact(const char *s, size_t n, struct got *g)
{
	char *copy = malloc(n ? n : 1);
	int r;

	if (!copy)
		abort();
	memcpy(copy, s, n);
	r = sm_addr_list(copy, n, collect, g);
	free(copy);
	if (r >= 0 && (size_t)r != g->calls)
		__builtin_trap();
	if (r > (int)n)
		__builtin_trap();
	return r;
}

/* The kept list "a\nb\n" written as "a, b" must parse back to itself. */
static void round_trip(const struct got *g)
{
	struct buf list;
	struct got g2;
	size_t i;
	int r;

	if (g->kept == 0)
		return;
	buf_init(&list, g->all.len * 2 + 16);
	for (i = 0; i < g->all.len; i++) {
		if (g->all.data[i] == '\n') {
			if (i + 1 < g->all.len && buf_puts(&list, ", ") < 0)
				__builtin_trap();
		} else if (buf_putc(&list, g->all.data[i]) < 0) {
			__builtin_trap();
		}
	}
	memset(&g2, 0, sizeof(g2));
	buf_init(&g2.all, g->all.max);
	r = parse_exact(list.data, list.len, &g2);
	if (r != (int)g->kept || g2.kept != g->kept || g2.all.len != g->all.len ||
	    memcmp(g2.all.data, g->all.data, g->all.len) != 0)
		__builtin_trap();
	buf_free(&g2.all);
	buf_free(&list);
}

/* Is the line at p (length n) the header field `name`? */
static int field_is(const char *p, size_t n, const char *name)
{
	size_t l = strlen(name);

	return n > l && p[l] == ':' && strncasecmp(p, name, l) == 0;
}

/* The header section of a fixed message: no Bcc, From/Date/Message-ID
 * present, ended by an empty line. */
static void check_output(const struct buf *out)
{
	const char *d = out->data;
	size_t pos = 0;
	int from = 0, date = 0, msgid = 0;

	for (;;) {
		const char *nl = memchr(d + pos, '\n', out->len - pos);
		size_t len;

		if (!nl)
			__builtin_trap(); /* the header section must end with an empty line */
		len = (size_t)(nl - (d + pos));
		if (len == 0)
			break;
		if (field_is(d + pos, len, "Bcc") || field_is(d + pos, len, "Resent-Bcc"))
			__builtin_trap();
		from |= field_is(d + pos, len, "From");
		date |= field_is(d + pos, len, "Date");
		msgid |= field_is(d + pos, len, "Message-ID");
		pos += len + 1;
	}
	if (!from || !date || !msgid)
		__builtin_trap();
}

/* Length of the field name at p (line of n bytes) with its colon, or 0:
 * the rule of sendmail_msg.c, written again here on purpose. */
static size_t name_len(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == ':')
			return i;
		if (c <= 32 || c >= 127)
			return 0;
	}
	return 0;
}

/* Is every mailbox of part also in all? (both lists "a\nb\n") */
static int subset(const struct buf *part, const struct buf *all)
{
	size_t i = 0;

	while (i < part->len) {
		const char *nl = memchr(part->data + i, '\n', part->len - i);
		size_t l = (size_t)(nl - (part->data + i)) + 1, j = 0;
		int found = 0;

		while (!found && j < all->len) {
			const char *nl2 = memchr(all->data + j, '\n', all->len - j);
			size_t l2 = (size_t)(nl2 - (all->data + j)) + 1;

			found = l2 == l && memcmp(all->data + j, part->data + i, l) == 0;
			j += l2;
		}
		if (!found)
			return 0;
		i += l;
	}
	return 1;
}

/* Every address of a dropped Bcc (or Resent-Bcc) field was handed out:
 * the field's value is found again in the header section of msg. */
static void check_bcc_extracted(const struct buf *msg, const struct got *g)
{
	const char *d = msg->data;
	size_t pos;
	int resent = 0, pass;

	for (pass = 0; pass < 2; pass++) {
		pos = 0;
		while (pos < msg->len) {
			const char *nl = memchr(d + pos, '\n', msg->len - pos);
			size_t end = nl ? (size_t)(nl - d) + 1 : msg->len, start = pos;
			size_t nl0 = name_len(d + pos, end - pos);

			if (nl0 == 0)
				break;
			while (end < msg->len && (d[end] == ' ' || d[end] == '\t')) {
				nl = memchr(d + end, '\n', msg->len - end);
				end = nl ? (size_t)(nl - d) + 1 : msg->len;
			}
			pos = end;
			if (pass == 0) {
				resent |= field_is(d + start, end - start, "Resent-To") ||
					  field_is(d + start, end - start, "Resent-Cc") ||
					  field_is(d + start, end - start, "Resent-Bcc");
			} else if (field_is(d + start, end - start, resent ? "Resent-Bcc" : "Bcc")) {
				struct got b;

				memset(&b, 0, sizeof(b));
				buf_init(&b.all, MD_MAX_HEADER);
				if (parse_exact(d + start + nl0 + 1, end - start - nl0 - 1, &b) < 0 || !subset(&b.all, &g->all))
					__builtin_trap();
				buf_free(&b.all);
			}
		}
	}
}

static void whole_message(const uint8_t *data, size_t size, int dot_ends)
{
	static struct sm_opts o;
	struct buf msg, out, out2;
	struct got g, g2;
	char err[256];
	int fd, r;

	fd = memfd_create("fuzz_sendmail_hdr", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
	buf_init(&msg, MAX_MSG);
	r = sm_read_message(fd, dot_ends, &msg);
	close(fd);
	if (r != 0)
		__builtin_trap(); /* a short input can never be too big or unreadable */
	if (msg.len > 0 && msg.data[msg.len - 1] != '\n')
		__builtin_trap();
	if (msg.len > size + 1)
		__builtin_trap();

	memset(&g, 0, sizeof(g));
	buf_init(&g.all, MD_MAX_HEADER);
	buf_init(&out, MAX_MSG * 2);
	if (sm_fix_headers(&msg, 1, &o, collect, &g, &out, err, sizeof(err)) == 0) {
		check_output(&out);
		check_bcc_extracted(&msg, &g);
		round_trip(&g);
		/* Idempotent: the fixed message is fixed already.  The second run
		 * extracts nothing, so it cannot fail on a list the first one
		 * (Resent- rules) did not parse. */
		memset(&g2, 0, sizeof(g2));
		buf_init(&g2.all, MD_MAX_HEADER);
		buf_init(&out2, MAX_MSG * 2);
		if (sm_fix_headers(&out, 0, &o, collect, &g2, &out2, err, sizeof(err)) != 0 || g2.calls != 0 ||
		    out2.len != out.len || memcmp(out2.data, out.data, out.len) != 0)
			__builtin_trap();
		buf_free(&out2);
		buf_free(&g2.all);
	} else if (err[0] == 0) {
		__builtin_trap(); /* a failure always names its reason */
	}
	buf_free(&out);
	buf_free(&g.all);
	buf_free(&msg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];

	(void)argc;
	(void)argv;
	conf_defaults();
	if (conf_override("myhostname=fuzz.example", err, sizeof(err)) < 0 || conf_finish(err, sizeof(err)) < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct got g;
	int r;

	if (size == 0)
		return 0;
	if (data[0] & 2) {
		whole_message(data + 1, size - 1, data[0] & 1);
		return 0;
	}
	memset(&g, 0, sizeof(g));
	buf_init(&g.all, MD_MAX_HEADER);
	r = parse_exact((const char *)data + 1, size - 1, &g);
	if (r >= 0)
		round_trip(&g);
	buf_free(&g.all);
	return 0;
}
