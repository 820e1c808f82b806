/*
 * fsutil — small file-system helpers shared by the table compilers and the
 * queue.
 */
#ifndef TERN_FSUTIL_H
#define TERN_FSUTIL_H

/* fsync the directory that holds path, so a rename into it is durable.
 * 0, or -1 with errno. */
int fsync_parent_dir(const char *path);

#endif
