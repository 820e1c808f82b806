/*
 * ctl_passwd — `ternctl passwd USER`: add or change a login in
 * smtpd_sasl_password_maps (see ctl_passwd.c).
 */
#ifndef TERN_CTL_PASSWD_H
#define TERN_CTL_PASSWD_H

/* argv[0] = "passwd", argv[1] = USER; configuration loaded.  Exit code. */
int ctl_passwd(int argc, char **argv);

#endif
