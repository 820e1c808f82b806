/*
 * ctl_master — ternctl's control of a running master and the queue tree
 * check (ctl_master.c).
 */
#ifndef TERN_CTL_MASTER_H
#define TERN_CTL_MASTER_H

/* cmd is start, stop, reload or status; returns the exit code (status
 * follows LSB: 0 running, 3 not running). */
int ctl_master(const char *cmd, const char *config, char **overrides, int noverrides);
/* Owners and modes of the queue tree; 0 when right, 1 (reported) when not. */
int ctl_check_queue(void);

#endif
