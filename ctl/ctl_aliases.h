/*
 * ctl_aliases — `ternctl newaliases` and the `newaliases` command.
 */
#ifndef TERN_CTL_ALIASES_H
#define TERN_CTL_ALIASES_H

/* Compile cf.alias_maps (configuration loaded) into FILE.cdb.  Exit code. */
int ctl_newaliases(void);
/* main() of the program when called as "newaliases": [-c config] [-o k=v]... */
int ctl_newaliases_main(int argc, char **argv);

#endif
