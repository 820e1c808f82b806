/*
 * scoreboard — the per-service table of client addresses (see scoreboard.h).
 *
 * Layout of the region: one 64-byte header (magic, version, slot count and
 * "high", the number of leading slots the master has handed out at some
 * point and children need to look at), then 32-byte slots.  Sizing: the
 * master makes every region as large as the most children it may ever run
 * (MAX_CHILDREN), whatever the service's process_limit, so a reload that
 * raises the limit needs no new region and the old generation's sessions stay
 * in the same table as the new one's.  Only the pages below "high" are ever
 * touched, so the unused part costs nothing.
 *
 * Each slot is written by one process at a time (see scoreboard.h) as a
 * sequence lock: the counter is odd while the writer changes the slot and
 * even when it is stable; a reader that sees it odd, or changed under its
 * feet, tries a few times and then treats the slot as empty (part of the
 * documented slack).  Every shared word is accessed with __atomic builtins.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "scoreboard.h"
#include "xalloc.h"

#define SB_MAGIC 0x7465726eU /* "tern" */
#define SB_VERSION 1U
#define SB_READ_TRIES 4

struct sb_header {
	uint32_t magic;
	uint32_t version;
	uint32_t nslots;
	uint32_t high; /* children look at slots [0, high) */
	uint32_t spare[12];
};

struct sb_slot {
	uint32_t seq;    /* odd while the owner rewrites the slot */
	uint32_t in_use; /* 1: a session with addr is in progress */
	uint32_t addr[SB_ADDR_LEN / 4];
	uint32_t spare[2];
};

struct scoreboard {
	void *map;
	size_t maplen;
	struct sb_header *hdr;
	struct sb_slot *slots;
	unsigned nslots;
	int fd;              /* master: the region; child: -1 */
	int slot;            /* child: its own slot; master: -1 */
	unsigned high;       /* master: private copy of hdr->high */
	unsigned char *taken; /* master: 1 for every slot handed out */
};

static size_t region_size(unsigned nslots)
{
	return sizeof(struct sb_header) + (size_t)nslots * sizeof(struct sb_slot);
}

/* Rewrite a slot as its only writer. */
static void slot_write(struct sb_slot *s, uint32_t in_use, const unsigned char addr[SB_ADDR_LEN])
{
	/* |1: a writer that died half-way left it odd already. */
	uint32_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED) | 1U;
	uint32_t words[SB_ADDR_LEN / 4];
	size_t i;

	memcpy(words, addr, sizeof(words));
	__atomic_store_n(&s->seq, seq, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (i = 0; i < SB_ADDR_LEN / 4; i++)
		__atomic_store_n(&s->addr[i], words[i], __ATOMIC_RELAXED);
	__atomic_store_n(&s->in_use, in_use, __ATOMIC_RELAXED);
	__atomic_store_n(&s->seq, seq + 1, __ATOMIC_RELEASE);
}

/* 1 when the slot is in use and holds addr; 0 when not, or when it kept
 * changing while we looked. */
static int slot_holds(const struct sb_slot *s, const uint32_t want[SB_ADDR_LEN / 4])
{
	int t;

	for (t = 0; t < SB_READ_TRIES; t++) {
		uint32_t s1 = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE), s2;
		uint32_t in_use, words[SB_ADDR_LEN / 4];
		size_t i;

		if (s1 & 1U)
			continue;
		in_use = __atomic_load_n(&s->in_use, __ATOMIC_RELAXED);
		for (i = 0; i < SB_ADDR_LEN / 4; i++)
			words[i] = __atomic_load_n(&s->addr[i], __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
		if (s1 != s2)
			continue;
		return in_use == 1 && memcmp(words, want, sizeof(words)) == 0;
	}
	return 0;
}

static struct scoreboard *sb_new(void *map, size_t len, unsigned nslots)
{
	struct scoreboard *sb = xcalloc(1, sizeof(*sb));

	sb->map = map;
	sb->maplen = len;
	sb->hdr = map;
	sb->slots = (struct sb_slot *)(void *)((char *)map + sizeof(struct sb_header));
	sb->nslots = nslots;
	sb->fd = -1;
	sb->slot = -1;
	return sb;
}

struct scoreboard *sb_create(unsigned nslots, char *err, size_t errsize)
{
	struct scoreboard *sb;
	size_t len;
	void *map;
	int fd;

	if (nslots == 0 || nslots > SB_SLOTS_MAX) {
		snprintf(err, errsize, "scoreboard: bad slot count %u", nslots);
		return NULL;
	}
	len = region_size(nslots);
	fd = memfd_create("tern-scoreboard", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		snprintf(err, errsize, "scoreboard: memfd_create: %s", strerror(errno));
		return NULL;
	}
	/* Sealed: a child (they all hold the descriptor) cannot shrink the
	 * region under the master's mapping, which would make it fault. */
	if (ftruncate(fd, (off_t)len) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		snprintf(err, errsize, "scoreboard: size %zu: %s", len, strerror(errno));
		close(fd);
		return NULL;
	}
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(err, errsize, "scoreboard: mmap: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	sb = sb_new(map, len, nslots);
	sb->fd = fd;
	sb->taken = xcalloc(nslots, 1);
	sb->hdr->magic = SB_MAGIC;
	sb->hdr->version = SB_VERSION;
	sb->hdr->nslots = nslots;
	__atomic_store_n(&sb->hdr->high, 0, __ATOMIC_RELEASE);
	return sb;
}

int sb_fd(const struct scoreboard *sb)
{
	return sb->fd;
}

/* Master: publish how many leading slots children must look at. */
static void set_high(struct scoreboard *sb, unsigned high)
{
	sb->high = high;
	__atomic_store_n(&sb->hdr->high, (uint32_t)high, __ATOMIC_RELEASE);
}

int sb_slot_take(struct scoreboard *sb)
{
	static const unsigned char zero[SB_ADDR_LEN];
	unsigned i;

	if (sb->taken == NULL)
		log_panic("sb_slot_take on a child's scoreboard");
	for (i = 0; i < sb->nslots; i++) {
		if (sb->taken[i])
			continue;
		sb->taken[i] = 1;
		slot_write(&sb->slots[i], 0, zero);
		if (i + 1 > sb->high)
			set_high(sb, i + 1);
		return (int)i;
	}
	return -1;
}

void sb_slot_release(struct scoreboard *sb, int slot)
{
	static const unsigned char zero[SB_ADDR_LEN];
	unsigned high;

	if (sb->taken == NULL || slot < 0 || (unsigned)slot >= sb->nslots || !sb->taken[slot])
		log_panic("sb_slot_release: slot %d was not handed out", slot);
	slot_write(&sb->slots[slot], 0, zero);
	sb->taken[slot] = 0;
	/* Children scan less after a burst: every slot past the new high is
	 * free and empty (a child reading the older, larger value is fine). */
	for (high = sb->high; high > 0 && !sb->taken[high - 1]; high--)
		;
	if (high != sb->high)
		set_high(sb, high);
}

void sb_free(struct scoreboard *sb)
{
	if (sb == NULL)
		return;
	munmap(sb->map, sb->maplen);
	if (sb->fd >= 0)
		close(sb->fd);
	free(sb->taken);
	free(sb);
}

struct scoreboard *sb_attach(int fd, unsigned slot, char *err, size_t errsize)
{
	struct scoreboard *sb;
	struct stat st;
	const struct sb_header *h;
	unsigned nslots;
	void *map;
	size_t len;

	if (fstat(fd, &st) < 0) {
		snprintf(err, errsize, "scoreboard: fd %d: %s", fd, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)region_size(1) ||
	    st.st_size > (off_t)region_size(SB_SLOTS_MAX)) {
		snprintf(err, errsize, "scoreboard: fd %d is not a scoreboard (size %lld)", fd,
			 (long long)st.st_size);
		return NULL;
	}
	len = (size_t)st.st_size;
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(err, errsize, "scoreboard: mmap: %s", strerror(errno));
		return NULL;
	}
	h = map;
	nslots = __atomic_load_n(&h->nslots, __ATOMIC_RELAXED);
	if (__atomic_load_n(&h->magic, __ATOMIC_RELAXED) != SB_MAGIC ||
	    __atomic_load_n(&h->version, __ATOMIC_RELAXED) != SB_VERSION || nslots == 0 ||
	    nslots > SB_SLOTS_MAX || region_size(nslots) > len) {
		snprintf(err, errsize, "scoreboard: fd %d: bad header", fd);
		munmap(map, len);
		return NULL;
	}
	if (slot >= nslots) {
		snprintf(err, errsize, "scoreboard: slot %u out of range (%u slots)", slot, nslots);
		munmap(map, len);
		return NULL;
	}
	sb = sb_new(map, len, nslots);
	sb->slot = (int)slot;
	return sb;
}

int sb_addr(const struct sockaddr *sa, socklen_t len, unsigned char out[SB_ADDR_LEN])
{
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;

		/* ::ffff:a.b.c.d, as a dual-stack socket reports the same client */
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &s4->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;

		memcpy(out, &s6->sin6_addr, SB_ADDR_LEN);
		return 0;
	}
	return -1;
}

static struct sb_slot *own_slot(struct scoreboard *sb)
{
	if (sb->slot < 0 || (unsigned)sb->slot >= sb->nslots)
		log_panic("scoreboard: no slot of our own");
	return &sb->slots[sb->slot];
}

void sb_enter(struct scoreboard *sb, const unsigned char addr[SB_ADDR_LEN])
{
	slot_write(own_slot(sb), 1, addr);
	/* Our slot must be visible before we read the others (and theirs
	 * before they read ours): of two children entering the same client at
	 * once, at least one then sees the other. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

unsigned sb_count(const struct scoreboard *sb, const unsigned char addr[SB_ADDR_LEN])
{
	uint32_t want[SB_ADDR_LEN / 4];
	unsigned high = __atomic_load_n(&sb->hdr->high, __ATOMIC_ACQUIRE), i, n = 0;

	/* The header is shared with every child: never trust it past our size. */
	if (high > sb->nslots)
		high = sb->nslots;
	memcpy(want, addr, sizeof(want));
	for (i = 0; i < high; i++)
		n += (unsigned)slot_holds(&sb->slots[i], want);
	return n;
}

void sb_leave(struct scoreboard *sb)
{
	static const unsigned char zero[SB_ADDR_LEN];

	slot_write(own_slot(sb), 0, zero);
}
