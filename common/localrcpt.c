/*
 * localrcpt — local recipient existence (rules in localrcpt.h).
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cdbmap.h"
#include "conf.h"
#include "localrcpt.h"
#include "log.h"
#include "strutil.h"

static struct cdbmap *aliases;
static int aliases_missing_logged;
static struct cdbmap *virtual_map;

int localrcpt_init(char *err, size_t errsize)
{
	(void)err;
	(void)errsize;
	if (aliases) {
		cdbmap_close(aliases);
		aliases = NULL;
	}
	if (virtual_map) {
		cdbmap_close(virtual_map);
		virtual_map = NULL;
	}
	if (*cf.virtual_mailbox_maps) {
		virtual_map = cdbmap_open_table(cf.virtual_mailbox_maps);
		if (!virtual_map)
			log_warning("virtual_mailbox_maps %s: %s", cf.virtual_mailbox_maps, strerror(errno));
	}
	if (!*cf.alias_maps)
		return 0;
	aliases = cdbmap_open_table(cf.alias_maps);
	if (!aliases && !aliases_missing_logged) {
		log_warning("alias_maps %s: %s; no aliases are in effect (run newaliases)", cf.alias_maps,
			    strerror(errno));
		aliases_missing_logged = 1;
	}
	return 0;
}

int localrcpt_name_ok(const char *user)
{
	const unsigned char *p;

	if (user[0] == '\0' || user[0] == '.')
		return 0;
	for (p = (const unsigned char *)user; *p; p++)
		if (*p == '/' || *p <= 32 || *p == 127 || *p == '"' || *p == '\\')
			return 0;
	return 1;
}

enum localrcpt_result localrcpt_check(const char *local, char *user)
{
	char name[ADDR_SIZE], ext[ADDR_SIZE];
	struct buf value;
	int r;

	if (str_copy(name, sizeof(name), local) < 0)
		return LOCALRCPT_NO;
	str_lower(name);
	/* An alias for the full local part (with extension) wins. */
	if (aliases) {
		buf_init(&value, 65536);
		r = cdbmap_lookup(aliases, name, &value);
		buf_free(&value);
		if (r < 0)
			return LOCALRCPT_TEMP;
		if (r > 0) {
			if (user)
				str_copy(user, ADDR_SIZE, name);
			return LOCALRCPT_YES;
		}
	}
	addr_split_extension(local, cf.recipient_delimiter, name, ext);
	str_lower(name);
	if (user)
		str_copy(user, ADDR_SIZE, name);
	if (!localrcpt_name_ok(name))
		return LOCALRCPT_NO;
	if (strcmp(name, "postmaster") == 0 || strcmp(name, "mailer-daemon") == 0 || *cf.local_mailbox_base)
		return LOCALRCPT_YES;
	if (aliases) {
		buf_init(&value, 65536);
		r = cdbmap_lookup(aliases, name, &value);
		buf_free(&value);
		if (r < 0)
			return LOCALRCPT_TEMP;
		if (r > 0)
			return LOCALRCPT_YES;
	}
	errno = 0;
	if (getpwnam(name))
		return LOCALRCPT_YES;
	/* getpwnam reports "no such user" as NULL with errno 0 or ENOENT and
	 * friends; a real lookup failure (NSS down) is temporary. */
	if (errno == 0 || errno == ENOENT || errno == ESRCH || errno == EBADF || errno == EPERM)
		return LOCALRCPT_NO;
	return LOCALRCPT_TEMP;
}

int localrcpt_alias_lookup(const char *name, struct buf *value)
{
	if (!aliases)
		return 0;
	return cdbmap_lookup(aliases, name, value);
}

int localrcpt_virtual_lookup(const char *address, struct buf *value)
{
	char local[ADDR_SIZE], user[ADDR_SIZE], ext[ADDR_SIZE], key[ADDR_SIZE];
	const char *at = strrchr(address, '@');
	int r;

	if (!virtual_map || !at)
		return -1;
	if ((r = cdbmap_lookup(virtual_map, address, value)) != 0)
		return r;
	if ((size_t)(at - address) >= sizeof(local))
		return 0;
	memcpy(local, address, (size_t)(at - address));
	local[at - address] = '\0';
	if (!*cf.recipient_delimiter || !addr_split_extension(local, cf.recipient_delimiter, user, ext))
		return 0;
	if (snprintf(key, sizeof(key), "%s%s", user, at) >= (int)sizeof(key))
		return 0;
	return cdbmap_lookup(virtual_map, key, value);
}

enum localrcpt_result localrcpt_check_address(const char *address)
{
	char local[ADDR_SIZE];
	const char *at = strrchr(address, '@');
	size_t n = at ? (size_t)(at - address) : strlen(address);

	if (at && *cf.virtual_mailbox_domains && list_has_domain(cf.virtual_mailbox_domains, at + 1)) {
		struct buf value;
		buf_init(&value, 4096);
		int r = localrcpt_virtual_lookup(address, &value);
		buf_free(&value);
		return r > 0 ? LOCALRCPT_YES : r == 0 ? LOCALRCPT_NO : LOCALRCPT_TEMP;
	}
	if (n >= sizeof(local))
		return LOCALRCPT_NO;
	memcpy(local, address, n);
	local[n] = '\0';
	return localrcpt_check(local, NULL);
}
