/*
 * fuzz_maildrop — libFuzzer target for the maildrop reader (maildrop.h),
 * in both modes: the first byte picks MD_STREAM or MD_FILE, the rest is
 * the input.  A header that reads must format again (md_format) and the
 * formatted text must read back to the same envelope; recipients are
 * 1..MD_MAX_RCPT, the flags within MD_F_KNOWN, no control characters.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maildrop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem {
	const uint8_t *p;
	size_t n, pos;
};

static ssize_t
mem_read(void *ctx, void *p, size_t n)
{
	struct mem *m = ctx;
	size_t take = m->n - m->pos;

	if (take > 61)
		take = 61; /* small reads: record boundaries fall anywhere */
	if (take > n)
		take = n;
	memcpy(p, m->p + m->pos, take);
	m->pos += take;
	return (ssize_t)take;
}

static int
read_env(const uint8_t *p, size_t n, enum md_mode mode, struct md_env *e)
{
	struct linereader lr;
	struct mem m = { p, n, 0 };
	char err[256];
	int rc;

	lr_init(&lr, mem_read, &m, MD_MAX_LINE, 0);
	/* md_read initialises e itself (an md_env_init before it would leak). */
	rc = md_read(&lr, mode, e, err, sizeof(err));
	lr_free(&lr);
	return rc;
}

static void
no_ctl(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum md_mode mode;
	struct md_env e, e2;
	struct buf out;
	size_t i;

	if (size == 0)
		return 0;
	mode = (data[0] & 1) ? MD_FILE : MD_STREAM;
	if (read_env(data + 1, size - 1, mode, &e) == 0) {
		if (e.nrcpt == 0 || e.nrcpt > MD_MAX_RCPT || (e.flags & ~(unsigned)MD_F_KNOWN))
			__builtin_trap();
		no_ctl(e.sender);
		no_ctl(e.envid);
		for (i = 0; i < e.nrcpt; i++)
			no_ctl(e.rcpt[i].address);
		buf_init(&out, MD_MAX_HEADER);
		if (md_format(&out, &e, mode) != 0)
			__builtin_trap();
		if (read_env((const uint8_t *)out.data, out.len, mode, &e2) != 0)
			__builtin_trap();
		if (e2.nrcpt != e.nrcpt || e2.flags != e.flags || e2.length != e.length || strcmp(e2.sender, e.sender) ||
		    strcmp(e2.envid, e.envid))
			__builtin_trap();
		for (i = 0; i < e.nrcpt; i++)
			if (strcmp(e.rcpt[i].address, e2.rcpt[i].address) || e.rcpt[i].notify != e2.rcpt[i].notify)
				__builtin_trap();
		md_env_free(&e2);
		buf_free(&out);
	}
	md_env_free(&e);
	return 0;
}
