/*
 * fuzz_deliver — libFuzzer target for the delivery protocol decoders
 * (proto_deliver.h): deliver_decode_request, and deliver_decode_response
 * against the request the same input decoded to (or a fixed one).
 *
 * The first byte picks the decoder.  A request that decodes must encode
 * again, and the encoding must decode to the same request (round trip);
 * every decoded field stays within its bounds.  A broken promise traps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto_deliver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
same_request(const struct deliver_request *a, const struct deliver_request *b)
{
	size_t i;

	if (strcmp(a->queue_id, b->queue_id) || strcmp(a->sender, b->sender) || strcmp(a->nexthop, b->nexthop) ||
	    a->offset != b->offset || a->length != b->length || a->arrival != b->arrival || a->flags != b->flags ||
	    strcmp(a->envid, b->envid) || a->nrcpt != b->nrcpt)
		__builtin_trap();
	for (i = 0; i < a->nrcpt; i++)
		if (a->rcpt[i].idx != b->rcpt[i].idx || a->rcpt[i].notify != b->rcpt[i].notify ||
		    strcmp(a->rcpt[i].address, b->rcpt[i].address) || strcmp(a->rcpt[i].orcpt, b->rcpt[i].orcpt))
			__builtin_trap();
}

static const char fixed_request[] = "tern-deliver 1\nqueue_id 0123456789ABCDEF0123\nsender a@b\nnexthop local\n"
				    "offset 10\nlength 20\narrival 1\nflags 0\nenvid \n"
				    "rcpt 0 0 - x@y\nrcpt 1 2 rfc822;z@w z@w\nend\n";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct deliver_request r, r2, base;
	struct buf out;
	char err[256];

	if (size == 0)
		return 0;
	deliver_request_init(&r);
	if ((data[0] & 1) == 0) {
		if (deliver_decode_request((const char *)data + 1, size - 1, &r, err, sizeof(err)) == 0) {
			if (r.nrcpt == 0 || r.nrcpt > DELIVER_MAX_RCPT)
				__builtin_trap();
			buf_init(&out, DELIVER_MAX_REQUEST);
			if (deliver_encode_request(&r, &out) != 0)
				__builtin_trap();
			deliver_request_init(&r2);
			if (deliver_decode_request(out.data, out.len, &r2, err, sizeof(err)) != 0)
				__builtin_trap();
			same_request(&r, &r2);
			deliver_request_free(&r2);
			buf_free(&out);
		}
		deliver_request_free(&r);
		return 0;
	}
	/* A response, against a fixed two-recipient request. */
	deliver_request_init(&base);
	if (deliver_decode_request(fixed_request, sizeof(fixed_request) - 1, &base, err, sizeof(err)) != 0)
		__builtin_trap();
	if (deliver_decode_response((const char *)data + 1, size - 1, &base, err, sizeof(err)) == 0) {
		size_t i;

		for (i = 0; i < base.nrcpt; i++) {
			const struct deliver_rcpt *rc = &base.rcpt[i];

			if (rc->status > DELIVER_RELAYED || !memchr(rc->dsn, '\0', sizeof(rc->dsn)) ||
			    !memchr(rc->text, '\0', sizeof(rc->text)) || !memchr(rc->mta, '\0', sizeof(rc->mta)))
				__builtin_trap();
		}
		buf_init(&out, DELIVER_MAX_REQUEST);
		if (deliver_encode_response(&base, &out) != 0)
			__builtin_trap();
		buf_free(&out);
	}
	deliver_request_free(&base);
	deliver_request_free(&r);
	return 0;
}
