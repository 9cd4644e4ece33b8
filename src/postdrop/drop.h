/*
 * drop.h: what the maildrop's two C writers share, the setgid helper (postdrop.c) and
 * sendmail's fast front end (sendmail.c): exit codes, the free-space minimum, the
 * drop files' random names. The same figures as src/receive/maildrop.ts.
 */
#ifndef POSTERN_DROP_H
#define POSTERN_DROP_H
#include <stdio.h>
#include <sys/random.h>
#include <sys/types.h>

#define EX_USAGE 64
#define EX_TEMPFAIL 75
#define EX_NOPERM 77
/* Free space that must stay after the message (queue_minfree; MINFREE in maildrop.ts). */
#define MINFREE (2LL * 1024 * 1024)

/* prefix and 128 random bits as 32 hex digits: 0, or -1 without random bits. */
static inline int random_name(char *out, size_t len, const char *prefix) {
  unsigned char bits[16];
  if (getrandom(bits, sizeof bits, 0) != (ssize_t)sizeof bits) return -1;
  int n = snprintf(out, len, "%s", prefix);
  for (int i = 0; i < 16; i++) n += snprintf(out + n, len - n, "%02x", bits[i]);
  return 0;
}
#endif
