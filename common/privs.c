/*
 * privs — the one privilege drop, and its verification.
 *
 * Public: privs_drop, privs_lookup_user.
 *
 * Order: chroot, chdir("/"), setgroups, setresgid, setresuid; then the
 * result is checked (real, effective and saved ids, the group list, and that
 * root cannot be regained).  Every failure is log_fatal: continuing with
 * more privilege than intended is never an option.  The supplementary group
 * list of init_groups_user is computed before the chroot, because
 * /etc/group is usually not visible inside it.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include "log.h"
#include "privs.h"

/* Enough for any sane account; getgrouplist tells us when it is not. */
#define PRIVS_MAX_GROUPS 256

static int ids_are(uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		log_fatal("getresuid/getresgid: %m");
	return ru == uid && eu == uid && su == uid && rg == gid && eg == gid && sg == gid;
}

/* The groups to set: the user's list, or just gid.  Returns the count. */
static int privs_group_list(const char *user, gid_t gid, gid_t *groups, int max)
{
	int n = max;

	if (user == NULL) {
		groups[0] = gid;
		return 1;
	}
	if (getgrouplist(user, gid, groups, &n) < 0)
		log_fatal("user %s is in more than %d groups", user, max);
	return n;
}

/* Check the group list the kernel now holds is exactly a subset of what we set. */
static void privs_verify_groups(const gid_t *want, int nwant)
{
	gid_t have[PRIVS_MAX_GROUPS];
	int n = getgroups(PRIVS_MAX_GROUPS, have);

	if (n < 0)
		log_fatal("getgroups: %m");
	for (int i = 0; i < n; i++) {
		int found = 0;

		for (int j = 0; j < nwant && !found; j++)
			found = have[i] == want[j];
		if (!found)
			log_fatal("privilege drop failed: still in group %ld", (long)have[i]);
	}
}

/* Unprivileged callers can only shed ids they already hold (a set-id helper). */
static void privs_drop_unprivileged(uid_t uid, gid_t gid, const char *chroot_dir)
{
	if (chroot_dir != NULL)
		log_fatal("cannot chroot to %s: not running as root", chroot_dir);
	if (setresgid(gid, gid, gid) < 0)
		log_fatal("setresgid(%ld): %m", (long)gid);
	if (setresuid(uid, uid, uid) < 0)
		log_fatal("setresuid(%ld): %m", (long)uid);
}

void privs_drop(uid_t uid, gid_t gid, const char *chroot_dir, const char *init_groups_user)
{
	gid_t groups[PRIVS_MAX_GROUPS];
	int ngroups = 0;
	int was_root = geteuid() == 0;

	if (!was_root) {
		if (ids_are(uid, gid))
			return; /* development mode: already who we should be */
		privs_drop_unprivileged(uid, gid, chroot_dir);
	} else {
		ngroups = privs_group_list(init_groups_user, gid, groups, PRIVS_MAX_GROUPS);
		if (chroot_dir != NULL) {
			if (chroot(chroot_dir) < 0)
				log_fatal("chroot %s: %m", chroot_dir);
			if (chdir("/") < 0)
				log_fatal("chdir / in chroot %s: %m", chroot_dir);
		}
		if (setgroups((size_t)ngroups, groups) < 0)
			log_fatal("setgroups: %m");
		if (setresgid(gid, gid, gid) < 0)
			log_fatal("setresgid(%ld): %m", (long)gid);
		if (setresuid(uid, uid, uid) < 0)
			log_fatal("setresuid(%ld): %m", (long)uid);
	}

	if (!ids_are(uid, gid))
		log_fatal("privilege drop to uid %ld gid %ld did not take effect", (long)uid, (long)gid);
	if (was_root)
		privs_verify_groups(groups, ngroups);
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
		log_fatal("privilege drop failed: uid 0 could be regained");
	if (gid != 0 && uid != 0 && (setgid(0) == 0 || setegid(0) == 0))
		log_fatal("privilege drop failed: gid 0 could be regained");
}

int privs_lookup_user(const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;

	errno = 0;
	if (name == NULL || *name == '\0' || (pw = getpwnam(name)) == NULL)
		return -1;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}
