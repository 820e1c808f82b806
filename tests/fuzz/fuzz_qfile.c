/*
 * fuzz_qfile — libFuzzer target for the queue file reader (qf_read).
 *
 * The input is written to a memfd and read back as a queue file.  On
 * success the envelope must keep the reader's promises (qfile.h): at least
 * one recipient, every state byte one of P D B S L X, state offsets and
 * the content inside the file, A-record parents earlier recipients, no
 * control characters in the fields.  qf_mark on the first recipient then
 * writes inside the file only.  A broken promise traps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	struct qf_envelope e;
	char err[256];
	int fd;
	size_t i;

	fd = memfd_create("qf", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	err[0] = '\0';
	if (qf_read(fd, &e, err, sizeof(err)) == 0) {
		if (e.nrcpt == 0 || e.content_off + e.content_len > size || e.trailer_end > size)
			__builtin_trap();
		no_ctl(e.sender);
		no_ctl(e.envid);
		no_ctl(e.client);
		for (i = 0; i < e.nrcpt; i++) {
			const struct qf_rcpt *r = &e.rcpt[i];

			if (!strchr("PDBSLX", r->state) || r->state == '\0')
				__builtin_trap();
			if (r->state_off < 0 || (size_t)r->state_off >= size || data[r->state_off] != (uint8_t)r->state)
				__builtin_trap();
			if (r->parent >= (long)i)
				__builtin_trap();
			no_ctl(r->address);
			no_ctl(r->orcpt);
		}
		if (qf_mark(fd, &e.rcpt[0], QF_DELIVERED) != 0)
			__builtin_trap();
		if ((size_t)lseek(fd, 0, SEEK_END) != size)
			__builtin_trap(); /* marking never grows the file */
		qf_envelope_free(&e);
	} else if (memchr(err, '\0', sizeof(err)) == NULL) {
		__builtin_trap();
	}
	close(fd);
	return 0;
}
