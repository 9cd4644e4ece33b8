/*
 * sendmail.c: sendmail's fast front end, installed as /usr/sbin/sendmail (dist/sendmail
 * in a checkout). Node's own start (about 55 ms) is more than a whole Postfix sendmail;
 * this program does the common submission without it and hands everything else to the
 * node command (bin/sendmail beside its dist/), which stays the reference.
 *
 * It takes only what it is sure of: the options -t -i -oi -f -r -F -odq, the ignored
 * -od* -oe* -B8BITMIME -B7BIT -v, -C FILE, `--` and plain ASCII addresses, a
 * configuration whose settings the daemon (or an earlier node sendmail) wrote into
 * .config.cache.json.sendmail in the maildrop for exactly this file and text and this version, a
 * message whose checks (addresses, recipients from To/Cc/Bcc under -t, the size
 * limit with room for the headers postern adds) pass plainly. Then it writes the drop
 * file as src/receive/maildrop.ts does (envelope JSON line, message with LF line ends,
 * 0600, synced, the folder synced, 0644, synced), directly or through the setgid
 * helper dist/postdrop when the folder refuses this user, and exits 0.
 *
 * Anything else, and every error, goes to node: exec'd with the same arguments and, when
 * stdin was already read, the bytes read on a memfd as its stdin. So the answers,
 * exit codes and stderr sentences are node's own, and a file this program began is
 * removed first.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drop.h"

#ifndef POSTERN_VERSION
#define POSTERN_VERSION "" /* unknown: no settings file matches, node does it all */
#endif
#define CONF_NAME ".config.cache.json.sendmail" /* DROP_CACHE + ".sendmail": the pickup leaves it alone */
#define CONF_MAGIC "postern-sendmail-config 1\n"
#define MAX_CONFIG (1024 * 1024)
#define MAX_ARGS 4096

extern char **environ;

static char exedir[PATH_MAX];
static char **given; /* argv as given: node gets it back unchanged */
static const char *personality = "sendmail"; /* the name called: bin/<it> where there is one */
static unsigned char *raw;
static size_t raw_len;
static int raw_read; /* stdin consumed: node gets `raw` back on a memfd */

/* ---- small buffers ---- */
typedef struct { char *p; size_t n, cap; } buf_t;
static int put(buf_t *b, const void *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
  return 0;
}
static int puts_(buf_t *b, const char *s) { return put(b, s, strlen(s)); }

/* ---- node, for everything this program does not do ---- */
static void to_node(void) __attribute__((noreturn));
static void to_node(void) {
  char path[PATH_MAX + 300];
  /* A link of another name to this program (mailq...): that command of node's, as called. */
  snprintf(path, sizeof path, "%s/../bin/%s", exedir, personality);
  if (strchr(personality, '.') || access(path, X_OK) != 0) snprintf(path, sizeof path, "%s/../bin/sendmail", exedir);
  if (raw_read) {
    int fd = memfd_create("sendmail-stdin", 0);
    if (fd < 0) {
      perror("sendmail: memfd_create");
      _exit(EX_TEMPFAIL);
    }
    for (size_t off = 0; off < raw_len;) {
      ssize_t w = write(fd, raw + off, raw_len - off);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        perror("sendmail: cannot keep the message for node");
        _exit(EX_TEMPFAIL);
      }
      off += (size_t)w;
    }
    lseek(fd, 0, SEEK_SET);
    if (fd != 0) {
      dup2(fd, 0);
      close(fd);
    }
  }
  /* As the package's wrapper and bin/'s first line: io_uring off (CVE-2024-22017). */
  setenv("UV_USE_IO_URING", "0", 1);
  signal(SIGPIPE, SIG_DFL);
  given[0] = path;
  execv(path, given);
  fprintf(stderr, "sendmail: cannot run %s: %s\n", path, strerror(errno));
  _exit(EX_TEMPFAIL);
}

/* ---- addresses: a plain subset of what core/address.ts accepts ---- */
static int atext(int c) {
  return isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}
/* A dot-atom of ASCII atext. */
static int dot_atom(const char *s, size_t n) {
  if (n == 0 || s[0] == '.' || s[n - 1] == '.') return 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '.') {
      if (s[i + 1] == '.') return 0;
    } else if (!atext((unsigned char)s[i])) return 0;
  }
  return 1;
}
/* LDH labels, 1-63 each, 255 in all (core/address.ts's isDomain on ASCII). */
static int ldh_domain(const char *s, size_t n) {
  if (n == 0 || n > 255) return 0;
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && s[i] != '.') {
      if (!isalnum((unsigned char)s[i]) && s[i] != '-') return 0;
      continue;
    }
    size_t len = i - start;
    if (len == 0 || len > 63 || s[start] == '-' || s[i - 1] == '-') return 0;
    start = i + 1;
  }
  return 1;
}
/* Routable once qualified (cleanup.ts's qualify): local part alone, or local@domain. */
static int plain_address(const char *s, size_t n, const char *qd) {
  const char *at = memchr(s, '@', n);
  if (!at) return dot_atom(s, n) && ldh_domain(qd, strlen(qd));
  if (memchr(at + 1, '@', n - (size_t)(at + 1 - s))) return 0;
  return dot_atom(s, (size_t)(at - s)) && ldh_domain(at + 1, n - (size_t)(at + 1 - s));
}
static int printable_ascii(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) return 0;
  return 1;
}

/* ---- paths ---- */
/* path.resolve of an absolute path: no empty, "." or ".." segments, no trailing slash. */
static void normalize(char *p) {
  char out[PATH_MAX];
  size_t o = 0;
  for (const char *s = p; *s;) {
    while (*s == '/') s++;
    const char *e = strchrnul(s, '/');
    size_t len = (size_t)(e - s);
    if (len == 0 || (len == 1 && s[0] == '.')) {
    } else if (len == 2 && s[0] == '.' && s[1] == '.') {
      while (o > 0 && out[o - 1] != '/') o--;
      if (o > 0) o--;
    } else if (o + len + 1 < sizeof out) {
      out[o++] = '/';
      memcpy(out + o, s, len);
      o += len;
    }
    s = e;
  }
  if (o == 0) out[o++] = '/';
  out[o] = 0;
  strcpy(p, out);
}
static int resolve_to(char *out, const char *base, const char *p) {
  int n = p[0] == '/' ? snprintf(out, PATH_MAX, "%s", p) : snprintf(out, PATH_MAX, "%s/%s", base, p);
  if (n < 0 || n >= PATH_MAX) return -1;
  normalize(out);
  return 0;
}

/* The whole of a small regular file (config.ts's readConfigText): its length, or -1. */
static long read_small(int fd, char **out) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
  char *b = malloc(MAX_CONFIG + 4096 + 1);
  if (!b) return -1;
  size_t len = 0;
  for (ssize_t n; len < MAX_CONFIG + 4096 + 1 && (n = read(fd, b + len, MAX_CONFIG + 4096 + 1 - len)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      free(b);
      return -1;
    }
    len += (size_t)n;
  }
  *out = b;
  return (long)len;
}

static int js_space(int c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'; }

/*
 * Where the maildrop of this configuration text is, as config/load.ts's guessCachePaths
 * finds it: only a guess, which locates the settings file; what is used is the file's
 * own (validated) maildrop, and a file is believed only for exactly this text.
 */
static int guess_maildrop(char *out, const char *file, const char *text, size_t len) {
  char directory[PATH_MAX] = "/var/spool/postern", maildrop[PATH_MAX] = "";
  char table[256] = "";
  for (size_t pos = 0; pos <= len;) {
    const char *line = text + pos;
    const char *nl = memchr(line, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - line) : len - pos;
    pos += n + 1;
    size_t i = 0;
    while (i < n && (js_space(line[i]))) i++;
    if (i < n && line[i] == '[') {
      size_t j = i + 1;
      if (j < n && line[j] == '[') j++;
      const char *close = memchr(line + j, ']', n - j);
      if (close) {
        while (line + j < close && js_space(line[j])) j++;
        size_t k = (size_t)(close - line);
        while (k > j && js_space(line[k - 1])) k--;
        if (k - j >= sizeof table) return -1;
        memcpy(table, line + j, k - j);
        table[k - j] = 0;
        continue;
      }
    }
    const char *key;
    if (strcmp(table, "spool") == 0) key = line + i;
    else if (table[0] == 0 && n - i > 6 && memcmp(line + i, "spool.", 6) == 0) key = line + i + 6;
    else continue;
    const char *end = line + n;
    char *dest;
    if (end - key >= 9 && memcmp(key, "directory", 9) == 0) dest = directory, key += 9;
    else if (end - key >= 8 && memcmp(key, "maildrop", 8) == 0) dest = maildrop, key += 8;
    else continue;
    while (key < end && js_space(*key)) key++;
    if (key >= end || *key != '=') continue;
    key++;
    while (key < end && js_space(*key)) key++;
    if (key >= end || (*key != '"' && *key != '\'')) continue;
    char q = *key++;
    const char *v = key;
    while (key < end && *key != q && !(q == '"' && *key == '\\')) key++;
    if (key >= end || *key != q) continue;
    size_t vlen = (size_t)(key - v);
    key++;
    while (key < end && js_space(*key)) key++;
    if (key < end && *key == '#') {
      const char *cr = memchr(key, '\r', (size_t)(end - key));
      if (cr && cr != end - 1) continue;
    } else if (key != end) continue;
    if (vlen >= PATH_MAX) return -1;
    memcpy(dest, v, vlen);
    dest[vlen] = 0;
  }
  char base[PATH_MAX];
  snprintf(base, sizeof base, "%s", file);
  char *slash = strrchr(base, '/');
  if (slash == base) slash[1] = 0;
  else if (slash) *slash = 0;
  if (maildrop[0]) return resolve_to(out, base, maildrop);
  size_t d = strlen(directory);
  while (d > 0 && directory[d - 1] == '/') directory[--d] = 0;
  if (d + 10 >= sizeof directory) return -1;
  strcat(directory, "-maildrop");
  return resolve_to(out, base, directory);
}

/* ---- the settings node wrote for this configuration (config/load.ts, sendmailSettings) ---- */
static struct {
  char maildrop[PATH_MAX];
  char postdrop[PATH_MAX];
  char qualify_domain[256];
  size_t hostname_len;
  long long max_message_size;
  long max_recipients;
} conf;

static int setting(const char **p, const char *end, const char *name, char *out, size_t cap) {
  size_t n = strlen(name);
  if ((size_t)(end - *p) <= n + 1 || memcmp(*p, name, n) != 0 || (*p)[n] != '=') return -1;
  const char *v = *p + n + 1;
  const char *nl = memchr(v, '\n', (size_t)(end - v));
  if (!nl || (size_t)(nl - v) >= cap || memchr(v, 0, (size_t)(nl - v))) return -1;
  memcpy(out, v, (size_t)(nl - v));
  out[nl - v] = 0;
  *p = nl + 1;
  return 0;
}

static int load_config(const char *explicit) {
  char file[PATH_MAX];
  char cwd[PATH_MAX];
  const char *env = getenv("POSTERN_CONFIG");
  const char *given_file = explicit ? explicit : (env && *env ? env : NULL);
  struct stat st;
  if (given_file) {
    if (!getcwd(cwd, sizeof cwd) || resolve_to(file, cwd, given_file) != 0) return -1;
  } else if (stat("/etc/postern/postern.toml", &st) == 0) {
    strcpy(file, "/etc/postern/postern.toml");
  } else if (resolve_to(file, exedir, "../config/postern.toml") != 0) {
    return -1;
  }
  int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  char *text;
  long len = read_small(fd, &text);
  close(fd);
  if (len < 0 || len > MAX_CONFIG) return -1;

  char drop[PATH_MAX], path[PATH_MAX + 32];
  if (guess_maildrop(drop, file, text, (size_t)len) != 0) return -1;
  snprintf(path, sizeof path, "%s/" CONF_NAME, drop);
  /* Believed from root, from ourselves, or (not for root) from the maildrop's owner. */
  if (stat(drop, &st) != 0) return -1;
  uid_t owner = st.st_uid, me = getuid();
  fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 022) ||
      !(st.st_uid == 0 || st.st_uid == me || (me != 0 && st.st_uid == owner))) {
    close(fd);
    return -1;
  }
  char *s;
  long slen = read_small(fd, &s);
  close(fd);
  if (slen < 0) return -1;
  const char *p = s, *end = s + slen;
  char version[64], name[PATH_MAX], num[32], host[256], textlen[32];
  size_t magic = strlen(CONF_MAGIC);
  if ((size_t)slen < magic || memcmp(p, CONF_MAGIC, magic) != 0) return -1;
  p += magic;
  if (setting(&p, end, "version", version, sizeof version) || strcmp(version, POSTERN_VERSION) || !POSTERN_VERSION[0]) return -1;
  if (setting(&p, end, "file", name, sizeof name) || strcmp(name, file)) return -1;
  if (setting(&p, end, "maildrop", conf.maildrop, sizeof conf.maildrop) || conf.maildrop[0] != '/') return -1;
  /* The folder the settings lie in, by name (as config/load.ts's inOwnDrop): whoever wrote
   * them cannot send us (or the helper) elsewhere, not even through a link they made in it. */
  if (strcmp(conf.maildrop, drop) != 0) return -1;
  if (setting(&p, end, "postdrop", conf.postdrop, sizeof conf.postdrop)) return -1;
  if (setting(&p, end, "max_message_size", num, sizeof num)) return -1;
  conf.max_message_size = atoll(num);
  if (setting(&p, end, "max_recipients", num, sizeof num)) return -1;
  conf.max_recipients = atol(num);
  if (setting(&p, end, "qualify_domain", conf.qualify_domain, sizeof conf.qualify_domain)) return -1;
  if (setting(&p, end, "hostname", host, sizeof host)) return -1;
  conf.hostname_len = strlen(host);
  if (setting(&p, end, "text", textlen, sizeof textlen)) return -1;
  if (conf.max_message_size <= 0 || conf.max_recipients <= 0) return -1;
  /* The configuration's text, byte for byte. */
  if (end - p != len || atol(textlen) != len || memcmp(p, text, (size_t)len) != 0) return -1;
  if (!conf.postdrop[0] && resolve_to(conf.postdrop, exedir, "postdrop") != 0) return -1;
  free(s);
  free(text);
  return 0;
}

/* ---- the command line (receive/sendmail.ts's parseSendmailArgs, the plain part) ---- */
static struct {
  int extract, dot_ends, queue_only;
  const char *sender, *full_name, *config;
  const char *rcpt[MAX_ARGS];
  int nrcpt;
} a = {.dot_ends = 1};

static int parse_args(int argc, char **argv) {
  static const char *ignored[] = {"-oem", "-oee", "-oep", "-oeq", "-oew", "-odb", "-odi", "-odf", "-v",
                                  "-B8BITMIME", "-B7BIT", NULL};
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (!printable_ascii(arg)) return -1;
    if (strcmp(arg, "--") == 0) {
      /* node's -C and mode flags count after `--` too (cli/args.ts): those go to node. */
      for (i++; i < argc; i++) {
        if (!printable_ascii(argv[i]) || argv[i][0] == '-' || a.nrcpt >= MAX_ARGS) return -1;
        a.rcpt[a.nrcpt++] = argv[i];
      }
      break;
    }
    if (arg[0] != '-' || strcmp(arg, "-") == 0) {
      if (a.nrcpt >= MAX_ARGS) return -1;
      a.rcpt[a.nrcpt++] = arg;
      continue;
    }
    const char **value = NULL;
    if (strcmp(arg, "-t") == 0) a.extract = 1;
    else if (strcmp(arg, "-i") == 0 || strcmp(arg, "-oi") == 0) a.dot_ends = 0;
    else if (strcmp(arg, "-ti") == 0 || strcmp(arg, "-it") == 0) a.extract = 1, a.dot_ends = 0;
    else if (strcmp(arg, "-odq") == 0) a.queue_only = 1;
    else if (arg[1] == 'f' || arg[1] == 'r') value = &a.sender;
    else if (arg[1] == 'F') value = &a.full_name;
    else if (arg[1] == 'C') value = &a.config;
    else {
      int known = 0;
      for (const char **g = ignored; *g; g++) known |= strcmp(arg, *g) == 0;
      if (!known) return -1;
    }
    if (value) {
      if (arg[2]) *value = arg + 2;
      else if (++i < argc && printable_ascii(argv[i])) *value = argv[i];
      else return -1;
    }
  }
  return 0;
}

/* ---- the message ---- */
static int read_stdin(void) {
  size_t cap = 65536;
  raw = malloc(cap);
  if (!raw) return -1;
  raw_read = 1;
  for (;;) {
    if (raw_len == cap) {
      unsigned char *p = realloc(raw, cap * 2);
      if (!p) return -1;
      raw = p;
      cap *= 2;
    }
    ssize_t n = read(0, raw + raw_len, cap - raw_len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      struct pollfd pf = {.fd = 0, .events = POLLIN};
      poll(&pf, 1, -1);
      continue;
    }
    if (n < 0) return -1;
    if (n == 0) return 0;
    raw_len += (size_t)n;
  }
}

/* CRLF to LF (a bare CR stays), then, without -i, the first "." line ends it (sendmail.ts's readMessage). */
static unsigned char *message(size_t *len) {
  unsigned char *m = malloc(raw_len + 1);
  if (!m) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < raw_len; i++)
    if (!(raw[i] == '\r' && i + 1 < raw_len && raw[i + 1] == '\n')) m[o++] = raw[i];
  if (a.dot_ends) {
    if ((o == 1 && m[0] == '.') || (o >= 2 && m[0] == '.' && m[1] == '\n')) o = 0;
    else {
      unsigned char *at = memmem(m, o, "\n.\n", 3);
      if (at) o = (size_t)(at - m) + 1;
      else if (o >= 2 && m[o - 2] == '\n' && m[o - 1] == '.') o--;
    }
  }
  *len = o;
  return m;
}

/*
 * Under -t: the recipients of To, Cc and Bcc (cleanup.ts), when every such header is a
 * plain list (`addr`, `Plain Name <addr>`, `<addr>`, commas between): their count, or
 * -1 (anything else: node reads it).
 */
static long header_recipients(const unsigned char *m, size_t len) {
  long count = 0;
  size_t pos = 0;
  while (pos < len && m[pos] != '\n') {
    const unsigned char *nl = memchr(m + pos, '\n', len - pos);
    size_t end = nl ? (size_t)(nl - m) : len;
    size_t colon = pos;
    while (colon < end && m[colon] >= 0x21 && m[colon] <= 0x7e && m[colon] != ':') colon++;
    if (colon == pos || colon == end || m[colon] != ':') return -1; /* not a header line */
    /* The header with its continuation lines. */
    size_t hend = end;
    while (hend < len && hend + 1 < len && (m[hend + 1] == ' ' || m[hend + 1] == '\t')) {
      const unsigned char *n2 = memchr(m + hend + 1, '\n', len - hend - 1);
      hend = n2 ? (size_t)(n2 - m) : len;
    }
    size_t nlen = colon - pos;
    int addr_header = (nlen == 2 && (!strncasecmp((const char *)m + pos, "to", 2) || !strncasecmp((const char *)m + pos, "cc", 2))) ||
                      (nlen == 3 && !strncasecmp((const char *)m + pos, "bcc", 3));
    if (addr_header) {
      for (size_t i = colon + 1; i < hend;) {
        /* One item up to the next comma. */
        size_t j = i;
        while (j < hend && m[j] != ',') j++;
        size_t s = i, e = j;
        while (s < e && (m[s] == ' ' || m[s] == '\t' || m[s] == '\n')) s++;
        while (e > s && (m[e - 1] == ' ' || m[e - 1] == '\t' || m[e - 1] == '\n')) e--;
        if (s == e) return -1;
        const unsigned char *lt = memchr(m + s, '<', e - s);
        size_t as = s, ae = e;
        if (lt) {
          if (m[e - 1] != '>') return -1;
          for (size_t k = s; k < (size_t)(lt - m); k++)
            if (!(isalnum(m[k]) || m[k] == ' ' || m[k] == '\t' || m[k] == '_' || m[k] == '-')) return -1;
          as = (size_t)(lt - m) + 1;
          ae = e - 1;
        }
        if (!plain_address((const char *)m + as, ae - as, conf.qualify_domain)) return -1;
        count++;
        i = j + 1;
      }
    }
    pos = hend + 1;
  }
  return count;
}

/* ---- the drop file ---- */
static void json_string(buf_t *b, const char *s) {
  put(b, "\"", 1);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') put(b, "\\", 1);
    put(b, s, 1);
  }
  put(b, "\"", 1);
}

/* maildrop.ts's envelopeLine: the same keys in the same order. */
static int envelope(buf_t *b) {
  puts_(b, "{\"v\":1,\"recipients\":[");
  for (int i = 0; i < a.nrcpt; i++) {
    if (i) puts_(b, ",");
    json_string(b, a.rcpt[i]);
  }
  puts_(b, a.extract ? "],\"extract\":true" : "],\"extract\":false");
  puts_(b, ",\"protocol\":\"local\"");
  if (a.sender) puts_(b, ",\"sender\":"), json_string(b, a.sender);
  if (a.full_name) puts_(b, ",\"fullName\":"), json_string(b, a.full_name);
  if (a.queue_only) puts_(b, ",\"queueOnly\":true");
  return puts_(b, "}\n");
}

static int write_all(int fd, const void *p, size_t n) {
  for (const char *c = p; n > 0;) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* roomFor: enough free space for size and MINFREE (statfs's bavail * bsize, as node's statfsSync). */
static int room_for(size_t size) {
  struct statfs v;
  if (statfs(conf.maildrop, &v) != 0) return 1;
  return (long long)v.f_bavail * (long long)v.f_bsize >= (long long)size + MINFREE;
}

/* 0 written; 1 the folder refuses us (the helper's turn); -1 anything else (node's turn). */
static int write_direct(const buf_t *env, const unsigned char *m, size_t len) {
  char name[40], path[PATH_MAX + 48];
  if (!room_for(len) || random_name(name, sizeof name, "") != 0) return -1;
  snprintf(path, sizeof path, "%s/%s", conf.maildrop, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return errno == EACCES || errno == EPERM ? 1 : -1;
  struct stat st;
  if (write_all(fd, env->p, env->n) != 0 || write_all(fd, m, len) != 0 || fsync(fd) != 0) goto fail;
  /* The folder's entry synced before the mark that wakes the daemon (maildrop.ts's finish). */
  int dfd = open(conf.maildrop, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  if (fstat(fd, &st) != 0 || st.st_nlink == 0 || fchmod(fd, 0644) != 0 || fsync(fd) != 0) goto fail;
  if (close(fd) != 0) {
    fd = -1;
    goto fail;
  }
  return 0;
fail:
  if (fd >= 0) close(fd);
  unlink(path);
  return -1;
}

/* postdrop.ts's dropByHelper: the whole file to the setgid helper's stdin; 0 when it made it. */
static int write_by_helper(const buf_t *env, const unsigned char *m, size_t len) {
  if (!room_for(len)) return -1;
  /*
   * The helper runs as the caller, and its path comes from settings the maildrop's owner
   * may write: only a root-owned program, writable by no one else, setgid to the
   * maildrop's group (postdrop itself) is run, and the file checked is the file run
   * (exec'd by its descriptor, so its name cannot be swapped between the two).
   */
  struct stat ds, hs;
  int hfd = open(conf.postdrop, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (hfd < 0) return -1;
  if (stat(conf.maildrop, &ds) != 0 || fstat(hfd, &hs) != 0 || !S_ISREG(hs.st_mode) || hs.st_uid != 0 ||
      (hs.st_mode & 022) || !(hs.st_mode & S_ISGID) || hs.st_gid == 0 || hs.st_gid != ds.st_gid) {
    close(hfd);
    return -1;
  }
  char helper[32];
  snprintf(helper, sizeof helper, "/proc/self/fd/%d", hfd);
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    close(hfd);
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[0], 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  char *args[] = {conf.postdrop, conf.maildrop, NULL};
  pid_t pid;
  int r = posix_spawn(&pid, helper, &fa, NULL, args, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(hfd);
  close(p[0]);
  if (r != 0) {
    close(p[1]);
    return -1;
  }
  int wrote = write_all(p[1], env->p, env->n) == 0 && write_all(p[1], m, len) == 0;
  close(p[1]);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return wrote && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  given = argv;
  ssize_t n = readlink("/proc/self/exe", exedir, sizeof exedir - 1);
  if (n <= 0) {
    fputs("sendmail: cannot find where this program is installed\n", stderr);
    return EX_TEMPFAIL;
  }
  exedir[n] = 0;
  *strrchr(exedir, '/') = 0;
  const char *base = strrchr(argv[0], '/');
  base = base ? base + 1 : argv[0];
  if (strlen(base) < 200 && base[0]) personality = base;
  if (strcmp(base, "sendmail") != 0 || argc > MAX_ARGS || parse_args(argc, argv) != 0) to_node();
  if (load_config(a.config) != 0) to_node();
  signal(SIGPIPE, SIG_IGN);

  /* The sender: -f's, else the login's (sendmail.ts: login()@qualify_domain). */
  if (a.sender) {
    if (strchr(a.sender, '<') || strchr(a.sender, '>') || !plain_address(a.sender, strlen(a.sender), conf.qualify_domain)) to_node();
  } else {
    struct passwd *pw = getpwuid(geteuid());
    if (!pw || !printable_ascii(pw->pw_name) || !plain_address(pw->pw_name, strlen(pw->pw_name), conf.qualify_domain)) to_node();
  }
  if (a.nrcpt > conf.max_recipients || (a.extract && a.nrcpt > 0) || (!a.extract && a.nrcpt == 0)) to_node();
  for (int i = 0; i < a.nrcpt; i++)
    if (!plain_address(a.rcpt[i], strlen(a.rcpt[i]), conf.qualify_domain)) to_node();

  if (read_stdin() != 0) to_node();
  size_t len;
  unsigned char *m = message(&len);
  if (!m) to_node();
  /*
   * Room for what cleanup adds (Received, Message-Id, Date, From, Sender, @domain on
   * bare addresses in the address headers): sure to be under the limit, or node decides.
   */
  const unsigned char *blank = memmem(m, len, "\n\n", 2);
  size_t head = blank ? (size_t)(blank - m) + 1 : len;
  if (len > 0 && m[0] == '\n') head = 0;
  size_t added = 4096 + 4 * conf.hostname_len + 4 * strlen(conf.qualify_domain) + (a.full_name ? 2 * strlen(a.full_name) + 2 : 1024) +
                 (head / 2 + 1) * (strlen(conf.qualify_domain) + 1);
  if (head > 65536 || (long long)(len + added) > conf.max_message_size) to_node();
  if (a.extract) {
    if (memchr(m, '\r', head) || memchr(m, 0, head)) to_node();
    long found = header_recipients(m, len);
    if (found <= 0 || found > conf.max_recipients) to_node();
  }

  buf_t env = {0};
  if (envelope(&env) != 0) to_node();
  int done = write_direct(&env, m, len);
  if (done == 1) done = write_by_helper(&env, m, len);
  if (done != 0) to_node();
  return 0;
}
