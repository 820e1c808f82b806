/*
 * privs — the single place where a tern process gives up privileges.
 *
 * Order (as every careful privilege-separated daemon does it): optional
 * chroot, chdir, setgroups (cleared or to the user's list), setresgid,
 * setresuid.  Afterwards the drop is verified: the real, effective and saved
 * ids must be the target ones and setuid(0) must fail.  Any failure is
 * fatal: a process must never continue with more privilege than intended.
 */
#ifndef TERN_PRIVS_H
#define TERN_PRIVS_H

#include <sys/types.h>

/* Become uid/gid.  chroot_dir may be NULL.  When init_groups_user is
 * non-NULL the supplementary groups are that user's, otherwise cleared.
 * When the process is not root and uid/gid are already ours, this is a no-op
 * (development mode; chroot_dir is then ignored).  A non-root process asking
 * for other ids can only shed ids it holds (a set-id helper): setresgid and
 * setresuid are tried, a chroot_dir is fatal. */
void privs_drop(uid_t uid, gid_t gid, const char *chroot_dir, const char *init_groups_user);

/* Look up user name (and its primary group); 0 or -1 when unknown. */
int privs_lookup_user(const char *name, uid_t *uid, gid_t *gid);

#endif
