/*
 * postdrop.c: the only way an ordinary user writes into postern's maildrop (Postfix's
 * postdrop). Installed setgid to the drop group (root:postern-drop 2755); the maildrop
 * is the daemon user's, of that group, mode 1731, so nobody else may create, rename or
 * link anything there. A file made here is owned by the caller's real uid: the kernel's
 * word on who submitted it. Nothing else of the caller is believed.
 *
 *   postdrop DIR      stdin becomes one new, complete drop file in DIR (exit 0 when synced)
 *   postdrop -p DIR   an empty proof file .auth-<32 hex> in DIR; its name on stdout
 *
 * DIR must be an absolute path to a folder of this program's group that others cannot
 * write. Exit 64 usage, 77 a folder refused, 75 anything else (try again later).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "drop.h"
/* A writer that takes longer than this is gone. */
#define TIME_LIMIT 3600

static int dirfd_ = -1;
static char named[64]; /* a file of ours under a name: removed if we fail or are stopped */

static int fail(int code, const char *what) {
  int e = errno;
  if (named[0]) unlinkat(dirfd_, named, 0);
  fprintf(stderr, "postdrop: %s%s%s\n", what, e ? ": " : "", e ? strerror(e) : "");
  return code;
}

static void stopped(int sig) {
  (void)sig;
  if (named[0]) unlinkat(dirfd_, named, 0);
  _exit(EX_TEMPFAIL);
}

static int enough_room(int fd, long long more) {
  struct statvfs v;
  if (fstatvfs(fd, &v) != 0) return 1;
  return (long long)v.f_bavail * (long long)v.f_frsize >= more + MINFREE;
}

/* stdin into fd: 0, or an exit code. */
static int copy_in(int fd) {
  char buf[65536];
  long long total = 0;
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(EX_TEMPFAIL, "cannot read the message");
    if (n == 0) return 0;
    total += n;
    errno = 0;
    if (!enough_room(fd, total)) return fail(EX_TEMPFAIL, "not enough free space in the maildrop");
    for (char *p = buf; n > 0;) {
      ssize_t w = write(fd, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return fail(EX_TEMPFAIL, "cannot write the message");
      p += w;
      n -= w;
    }
  }
}

int main(int argc, char **argv) {
  int proof = argc == 3 && strcmp(argv[1], "-p") == 0;
  const char *dir = argv[argc - 1];
  if (!(argc == 2 || proof) || dir[0] != '/') {
    fputs("usage: postdrop [-p] /MAILDROP (the message on stdin)\n", stderr);
    return EX_USAGE;
  }
  alarm(TIME_LIMIT);
  signal(SIGHUP, stopped);
  signal(SIGINT, stopped);
  signal(SIGTERM, stopped);
  signal(SIGALRM, stopped);
  signal(SIGPIPE, SIG_IGN);
  umask(077);

  /*
   * The folder: of our group, writable by nobody else, not through a symlink. O_PATH:
   * the group may add names, not list them (no read permission, as Postfix's 1730).
   */
  errno = 0;
  dirfd_ = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (dirfd_ < 0 || fstat(dirfd_, &st) != 0) return fail(EX_TEMPFAIL, "cannot open the maildrop");
  errno = 0;
  if (st.st_gid != getegid() || st.st_gid == 0) return fail(EX_NOPERM, "the maildrop is not of postdrop's group");
  if (st.st_mode & S_IWOTH) return fail(EX_NOPERM, "the maildrop is writable by everyone");
  if (!(st.st_mode & S_IWGRP)) return fail(EX_NOPERM, "the maildrop is not writable by its group");

  char name[64];
  if (proof) {
    if (random_name(name, sizeof name, ".auth-") != 0) return fail(EX_TEMPFAIL, "no random bits");
    int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return fail(EX_TEMPFAIL, "cannot make the proof file");
    close(fd);
    printf("%s\n", name);
    return fflush(stdout) == 0 ? 0 : EX_TEMPFAIL;
  }

  errno = 0;
  if (!enough_room(dirfd_, 0)) return fail(EX_TEMPFAIL, "not enough free space in the maildrop");
  /* Unnamed while written (O_TMPFILE): a writer killed midway leaves nothing behind. */
  int fd = openat(dirfd_, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  int unnamed = fd >= 0;
  /* A file system without O_TMPFILE: a named file, complete only once its mode says so. */
  for (int tries = 0; fd < 0 && tries < 8; tries++) {
    if (random_name(named, sizeof named, "") != 0) return fail(EX_TEMPFAIL, "no random bits");
    fd = openat(dirfd_, named, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      named[0] = 0;
      if (errno != EEXIST) break;
    }
  }
  if (fd < 0) return fail(EX_TEMPFAIL, "cannot make a file in the maildrop");
  int code = copy_in(fd);
  if (code != 0) return code;

  /*
   * Synced, marked complete (0644), named. The group may not open the folder to sync
   * it: the sync after the name is made (it changes the file's link count, or its
   * mode) puts the entry on disk with it, as ext4, xfs and btrfs journal them together.
   */
  errno = 0;
  if (fsync(fd) != 0) return fail(EX_TEMPFAIL, "cannot sync the message");
  /* The daemon removes a named file left unfinished too long: then nothing was dropped. */
  if (!unnamed && (fstat(fd, &st) != 0 || st.st_nlink == 0)) return fail(EX_TEMPFAIL, "the message was removed before it was complete");
  if (fchmod(fd, 0644) != 0) return fail(EX_TEMPFAIL, "cannot mark the message complete");
  if (unnamed) {
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    int linked = -1;
    for (int tries = 0; linked != 0 && tries < 8; tries++) {
      if (random_name(name, sizeof name, "") != 0) return fail(EX_TEMPFAIL, "no random bits");
      linked = linkat(AT_FDCWD, self, dirfd_, name, AT_SYMLINK_FOLLOW);
      if (linked != 0 && errno != EEXIST) break;
    }
    if (linked != 0) return fail(EX_TEMPFAIL, "cannot name the message in the maildrop");
    strcpy(named, name);
  }
  errno = 0;
  if (fsync(fd) != 0) return fail(EX_TEMPFAIL, "cannot sync the message");
  named[0] = 0; /* complete and on disk: the daemon's now */
  close(fd);
  return 0;
}
