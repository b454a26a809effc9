/*
 * l4fleet-nft-batch: writes element changes of `mark`-keyed nftables sets and maps, and named counters, to
 * the kernel as ONE nf_tables netlink batch, i.e. one transaction: the kernel applies all of it or none.
 *
 * Why: a Maglev table change moves many slots at once (one of 4 backends leaving moves a quarter of
 * M = 65,537 slots). `nft -f` spends about 2 us per element in its parser and evaluator on top of the
 * kernel's own cost, which puts a 16,000-slot delta at about 110 ms; this writer builds the same
 * netlink messages directly and the delta costs what the kernel needs. Everything else (tables, chains,
 * rules, address-typed maps) is still written by nft.
 *
 * It stays running and takes one batch after another, because closing an nf_tables netlink socket waits
 * for the previous commit's deferred cleanup (an RCU grace period, 10-20 ms here): `nft` pays that on
 * every run. The grace period then passes in the background.
 *
 * Usage: l4fleet-nft-batch FAMILY TABLE      (FAMILY: netdev | inet | ip | ip6 | bridge | arp)
 *   stdin, one request per line, applied in order:
 *     add SET KEY[=VALUE] ...   elements of SET (VALUE for maps), as many as fit on the line
 *     delete SET KEY ...
 *     add-counter NAME          a named counter object
 *     delete-counter NAME
 *     commit                    sends the lines since the last commit as one transaction
 *   KEY is an unsigned 32-bit integer (decimal or 0x hex) in the host byte order nft uses for `mark`.
 *   VALUE is such an integer, or hex:BYTES (raw data: an address in network order, a MAC), or
 *   obj:NAME (a reference to a named object, for `type mark : counter` maps).
 *   Empty lines and lines starting with '#' are ignored. End of input commits what is pending.
 *   stdout, one line per commit:  "ok COUNT", "error REASON" (the kernel changed nothing) or "lost REASON"
 *   (the kernel's answer could not be read: the batch may or may not have been committed).
 * Exit: 0 at end of input when the last commit succeeded, 1 when it failed, 2 on bad usage.
 *
 * Netlink layout (include/uapi/linux/netfilter/nf_tables.h, net/netfilter/nfnetlink.c):
 *   NFNL_MSG_BATCH_BEGIN (res_id = NFNL_SUBSYS_NFTABLES)
 *   NFT_MSG_NEWSETELEM / NFT_MSG_DELSETELEM: TABLE, SET, ELEMENTS { LIST_ELEM { KEY { VALUE }, DATA { VALUE } |
 *     OBJREF } ... }
 *   NFT_MSG_NEWOBJ / NFT_MSG_DELOBJ: TABLE, NAME, TYPE (counter), DATA {}
 *   NFNL_MSG_BATCH_END
 * Every element message asks for an ACK, so success is known for certain: the kernel reports each message
 * once the whole batch has been processed (committed or aborted).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The ELEMENTS nest's length is a 16-bit field (at most 65,535 bytes): a message ends before its
 * elements pass this many bytes (an element takes 28 bytes with a mark value, at most ~600 with names). */
#define ELEMENT_BYTES_PER_MESSAGE 60000
#define NAME_MAX_LEN 256
#define RECV_TIMEOUT_S 10

#define VALUE_MAX_LEN 64 /* NFT_DATA_VALUE_MAXLEN */

enum kind { ELEMENT, COUNTER };
enum value_kind { NO_VALUE, BYTES, OBJREF };

__attribute__((format(printf, 2, 3), noreturn)) static void die(int code, const char *fmt, ...);

/* Names (sets, counters: one per backend added or removed) are interned per batch, so an element costs a
 * few bytes: a growing array, indexed by an open-addressing hash (power-of-two slots, at most half full). */
static char **names;
static size_t names_count, names_cap;
static uint32_t *name_slots; /* index + 1; 0 = empty */
static size_t name_slots_len;

struct op {
  unsigned char kind, add, value_kind, value_len;
  uint32_t name; /* the set, or the counter */
  uint32_t obj;  /* OBJREF: the referenced object */
  uint32_t key;
  unsigned char value[VALUE_MAX_LEN];
};

static const char *name_of(uint32_t i) { return names[i]; }

static uint32_t fnv1a(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

static void names_reset(void) {
  for (size_t i = 0; i < names_count; i++) free(names[i]);
  names_count = 0;
  if (name_slots) memset(name_slots, 0, name_slots_len * sizeof *name_slots);
}

static void name_slots_grow(void) {
  size_t len = name_slots_len ? name_slots_len * 2 : 1024;
  uint32_t *slots = calloc(len, sizeof *slots);
  if (!slots) die(1, "out of memory");
  for (size_t i = 0; i < names_count; i++) {
    size_t at = fnv1a(names[i]) & (len - 1);
    while (slots[at]) at = (at + 1) & (len - 1);
    slots[at] = (uint32_t)i + 1;
  }
  free(name_slots);
  name_slots = slots;
  name_slots_len = len;
}

/* Returns the name's index, or -1 when it is too long. */
static int64_t intern(const char *name) {
  if (strlen(name) >= NAME_MAX_LEN) return -1;
  if (2 * (names_count + 1) > name_slots_len) name_slots_grow();
  size_t at = fnv1a(name) & (name_slots_len - 1);
  for (; name_slots[at]; at = (at + 1) & (name_slots_len - 1))
    if (strcmp(names[name_slots[at] - 1], name) == 0) return name_slots[at] - 1;
  if (names_count == names_cap) {
    names_cap = names_cap ? names_cap * 2 : 256;
    if (!(names = realloc(names, names_cap * sizeof *names))) die(1, "out of memory");
  }
  if (!(names[names_count] = strdup(name))) die(1, "out of memory");
  name_slots[at] = (uint32_t)names_count + 1;
  return (int64_t)names_count++;
}

struct buf {
  char *data;
  size_t len, cap;
};

__attribute__((format(printf, 2, 3), noreturn)) static void die(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("l4fleet-nft-batch: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(code);
}

static void *put(struct buf *b, size_t n) {
  size_t need = b->len + NLMSG_ALIGN(n);
  if (need > b->cap) {
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < need) cap *= 2;
    b->data = realloc(b->data, cap);
    if (!b->data) die(1, "out of memory");
    b->cap = cap;
  }
  void *p = b->data + b->len;
  memset(p, 0, NLMSG_ALIGN(n));
  b->len = need;
  return p;
}

static size_t attr_start(struct buf *b, uint16_t type) {
  size_t at = b->len;
  struct nlattr *a = put(b, NLA_HDRLEN);
  a->nla_type = type;
  return at;
}

static void attr_end(struct buf *b, size_t at) {
  struct nlattr *a = (struct nlattr *)(b->data + at);
  size_t len = b->len - at;
  if (len > 0xffff) die(1, "netlink attribute too long");
  a->nla_len = (uint16_t)len;
}

static void attr_put(struct buf *b, uint16_t type, const void *v, size_t n) {
  size_t at = attr_start(b, type);
  memcpy(put(b, n), v, n);
  /* nla_len counts the payload without its padding. */
  ((struct nlattr *)(b->data + at))->nla_len = (uint16_t)(NLA_HDRLEN + n);
}

static void attr_data(struct buf *b, uint16_t type, const void *v, size_t n) {
  size_t nest = attr_start(b, NLA_F_NESTED | type);
  attr_put(b, NFTA_DATA_VALUE, v, n);
  attr_end(b, nest);
}

static size_t msg_start(struct buf *b, uint16_t type, uint16_t flags, uint32_t seq, uint8_t family, uint16_t res_id) {
  size_t at = b->len;
  struct nlmsghdr *h = put(b, NLMSG_HDRLEN);
  h->nlmsg_type = type;
  h->nlmsg_flags = NLM_F_REQUEST | flags;
  h->nlmsg_seq = seq;
  struct nfgenmsg *g = put(b, sizeof(struct nfgenmsg));
  g->nfgen_family = family;
  g->version = NFNETLINK_V0;
  g->res_id = htons(res_id);
  return at;
}

static void msg_end(struct buf *b, size_t at) { ((struct nlmsghdr *)(b->data + at))->nlmsg_len = (uint32_t)(b->len - at); }

static int parse_u32(const char *s, uint32_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || *end || end == s || v > 0xffffffffULL || s[0] == '-') return -1;
  *out = (uint32_t)v;
  return 0;
}

/* "hex:0a0b.." -> bytes; returns the length, or -1. */
static int parse_hex(const char *s, unsigned char *out) {
  size_t n = strlen(s);
  if (n == 0 || n % 2 || n / 2 > VALUE_MAX_LEN) return -1;
  for (size_t i = 0; i < n; i += 2) {
    if (!isxdigit((unsigned char)s[i]) || !isxdigit((unsigned char)s[i + 1])) return -1;
    char pair[3] = {s[i], s[i + 1], 0};
    out[i / 2] = (unsigned char)strtoul(pair, NULL, 16);
  }
  return (int)(n / 2);
}

static int family_of(const char *name) {
  static const struct { const char *name; int family; } families[] = {
      {"netdev", NFPROTO_NETDEV}, {"inet", NFPROTO_INET}, {"ip", NFPROTO_IPV4},
      {"ip6", NFPROTO_IPV6},      {"bridge", NFPROTO_BRIDGE}, {"arp", NFPROTO_ARP},
  };
  for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
    if (strcmp(name, families[i].name) == 0) return families[i].family;
  return -1;
}

struct ops {
  struct op *v;
  size_t len, cap;
};

static struct op *push(struct ops *ops) {
  if (ops->len == ops->cap) {
    ops->cap = ops->cap ? ops->cap * 2 : 4096;
    if (!(ops->v = realloc(ops->v, ops->cap * sizeof *ops->v))) die(1, "out of memory");
  }
  struct op *o = &ops->v[ops->len++];
  o->value_kind = NO_VALUE;
  o->value_len = 0;
  return o;
}

/* "KEY" or "KEY=VALUE" into o; returns NULL when fine, else why not. */
static const char *parse_element(char *tok, struct op *o, char *why, size_t why_len) {
  char *eq = strchr(tok, '=');
  if (eq) *eq = '\0';
  if (parse_u32(tok, &o->key)) {
    snprintf(why, why_len, "key is not an unsigned 32-bit integer: %.32s", tok);
    return why;
  }
  if (!eq) return NULL;
  const char *v = eq + 1;
  uint32_t u;
  int n;
  int64_t ref;
  if (strncmp(v, "obj:", 4) == 0 && v[4] && (ref = intern(v + 4)) >= 0) {
    o->value_kind = OBJREF;
    o->obj = (uint32_t)ref;
  } else if (strncmp(v, "hex:", 4) == 0 && (n = parse_hex(v + 4, o->value)) > 0) {
    o->value_kind = BYTES;
    o->value_len = (unsigned char)n;
  } else if (parse_u32(v, &u) == 0) {
    o->value_kind = BYTES;
    o->value_len = sizeof u;
    memcpy(o->value, &u, sizeof u);
  } else {
    snprintf(why, why_len, "value of key %.16s is not an unsigned 32-bit integer, hex:BYTES or obj:NAME: %.32s",
             tok, v);
    return why;
  }
  return NULL;
}

/*
 * One request line: appends its operations to `ops`. Returns NULL when fine, else why not (then
 * nothing of the line is kept). Sets *is_commit for "commit", *is_blank for empty and comment lines.
 */
static const char *parse_line(char *line, struct ops *ops, int *is_commit, int *is_blank, char *why,
                              size_t why_len) {
  char *save;
  char *verb = strtok_r(line, " \t\r\n", &save);
  *is_commit = 0;
  *is_blank = verb == NULL || verb[0] == '#';
  if (*is_blank) return NULL;
  char *name = strtok_r(NULL, " \t\r\n", &save);
  if (strcmp(verb, "commit") == 0 && name == NULL) {
    *is_commit = 1;
    return NULL;
  }
  int counter = strcmp(verb, "add-counter") == 0 || strcmp(verb, "delete-counter") == 0;
  int add = verb[0] == 'a';
  if (!counter && strcmp(verb, "add") != 0 && strcmp(verb, "delete") != 0) {
    snprintf(why, why_len,
             "expected \"add SET KEY[=VALUE] ...\", \"delete SET KEY ...\", \"add-counter NAME\", "
             "\"delete-counter NAME\" or \"commit\", got \"%.32s\"",
             verb);
    return why;
  }
  int64_t n = name ? intern(name) : -1;
  if (n < 0) {
    snprintf(why, why_len, "%s: a name is missing or too long", verb);
    return why;
  }
  const size_t first = ops->len;
  if (counter) {
    if (strtok_r(NULL, " \t\r\n", &save) != NULL) {
      snprintf(why, why_len, "%s takes one name", verb);
      return why;
    }
    struct op *o = push(ops);
    o->kind = COUNTER;
    o->add = (unsigned char)add;
    o->name = (uint32_t)n;
    return NULL;
  }
  size_t elements = 0;
  for (char *tok = strtok_r(NULL, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
    struct op *o = push(ops);
    o->kind = ELEMENT;
    o->add = (unsigned char)add;
    o->name = (uint32_t)n;
    if (parse_element(tok, o, why, why_len) || (!add && o->value_kind != NO_VALUE)) {
      if (!add && o->value_kind != NO_VALUE) snprintf(why, why_len, "delete takes keys only, got a value for %u", o->key);
      ops->len = first;
      return why;
    }
    elements++;
  }
  if (elements == 0) {
    snprintf(why, why_len, "%s %s: no elements", verb, name);
    return why;
  }
  return NULL;
}

enum outcome { COMMITTED = 0, REFUSED = -1, UNKNOWN = -2 };

/*
 * Reads the ACKs of the messages first_seq .. first_seq + expected - 1 (the batch began at first_seq - 1).
 * COMMITTED when every one is 0; REFUSED (the kernel aborted the batch) with the first failure in `why`;
 * UNKNOWN when the answers could not be read (then the batch may or may not have been committed).
 */
static enum outcome read_acks(int fd, uint32_t first_seq, size_t expected, const struct op *const *first_op,
                              char *why, size_t why_len) {
  static char rbuf[1 << 16];
  size_t acked = 0;
  int failed = 0;
  while (acked < expected) {
    ssize_t n = recv(fd, rbuf, sizeof rbuf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      snprintf(why, why_len, "reading the kernel's answer: %s%s", strerror(errno),
               errno == EAGAIN ? " (timed out)" : "");
      return UNKNOWN;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)rbuf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type != NLMSG_ERROR) continue;
      struct nlmsgerr *e = NLMSG_DATA(h);
      /* The kernel answers for the batch as a whole when it could not even queue the answers (-ENOMEM). */
      if (h->nlmsg_seq == first_seq - 1 && e->error != 0) {
        snprintf(why, why_len, "batch: %s", strerror(-e->error));
        return REFUSED;
      }
      if (h->nlmsg_seq < first_seq || h->nlmsg_seq - first_seq >= expected) continue; /* a stale answer */
      acked++;
      if (e->error == 0 || failed) continue;
      failed = 1;
      const struct op *o = first_op[h->nlmsg_seq - first_seq];
      const char *extack = NULL;
      if (h->nlmsg_flags & NLM_F_ACK_TLVS) {
        /* The TLVs follow the echoed request: only its header when the ACK is capped (NETLINK_CAP_ACK). */
        size_t off = NLMSG_HDRLEN + sizeof *e;
        if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - NLMSG_HDRLEN;
        for (struct nlattr *a = (struct nlattr *)((char *)h + NLMSG_ALIGN(off));
             (char *)a + NLA_HDRLEN <= (char *)h + h->nlmsg_len && a->nla_len >= NLA_HDRLEN;
             a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))
          if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) extack = (const char *)a + NLA_HDRLEN;
      }
      if (o->kind == COUNTER)
        snprintf(why, why_len, "%s counter %s: %s%s%s", o->add ? "add" : "delete", name_of(o->name), strerror(-e->error),
                 extack ? ": " : "", extack ? extack : "");
      else
        snprintf(why, why_len, "%s element(s) of set %s (first key %u): %s%s%s", o->add ? "add" : "delete", name_of(o->name),
                 o->key, strerror(-e->error), extack ? ": " : "", extack ? extack : "");
    }
  }
  return failed ? REFUSED : COMMITTED;
}

/* Sends ops[0..count) as one batch; the reason for anything but COMMITTED is in `why`. */
static enum outcome commit(int fd, const char *table, int family, const struct op *ops, size_t count, uint32_t *seq,
                  char *why, size_t why_len) {
  static struct buf b;
  static const struct op **first_op;
  static size_t first_op_cap;
  if (count + 1 > first_op_cap) {
    first_op_cap = count + 1;
    first_op = realloc(first_op, first_op_cap * sizeof *first_op);
    if (!first_op) die(1, "out of memory");
  }
  b.len = 0;
  size_t messages = 0;
  size_t at = msg_start(&b, NFNL_MSG_BATCH_BEGIN, 0, ++*seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
  msg_end(&b, at);
  const uint32_t first_seq = *seq + 1;
  for (size_t i = 0; i < count;) {
    const struct op *o = &ops[i];
    if (o->kind == COUNTER) {
      uint16_t type = (NFNL_SUBSYS_NFTABLES << 8) | (o->add ? NFT_MSG_NEWOBJ : NFT_MSG_DELOBJ);
      at = msg_start(&b, type, NLM_F_ACK | (o->add ? NLM_F_CREATE : 0), ++*seq, (uint8_t)family, 0);
      first_op[messages++] = o;
      uint32_t obj_type = htonl(NFT_OBJECT_COUNTER);
      attr_put(&b, NFTA_OBJ_TABLE, table, strlen(table) + 1);
      attr_put(&b, NFTA_OBJ_NAME, name_of(o->name), strlen(name_of(o->name)) + 1);
      attr_put(&b, NFTA_OBJ_TYPE, &obj_type, sizeof obj_type);
      if (o->add) attr_end(&b, attr_start(&b, NLA_F_NESTED | NFTA_OBJ_DATA));
      msg_end(&b, at);
      i++;
      continue;
    }
    uint16_t type = (NFNL_SUBSYS_NFTABLES << 8) | (o->add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
    at = msg_start(&b, type, NLM_F_ACK | (o->add ? NLM_F_CREATE : 0), ++*seq, (uint8_t)family, 0);
    first_op[messages++] = o;
    attr_put(&b, NFTA_SET_ELEM_LIST_TABLE, table, strlen(table) + 1);
    attr_put(&b, NFTA_SET_ELEM_LIST_SET, name_of(o->name), strlen(name_of(o->name)) + 1);
    size_t list = attr_start(&b, NLA_F_NESTED | NFTA_SET_ELEM_LIST_ELEMENTS);
    for (; i < count && b.len - list < ELEMENT_BYTES_PER_MESSAGE; i++) {
      const struct op *e = &ops[i];
      if (e->kind != ELEMENT || e->add != o->add || e->name != o->name) break;
      size_t elem = attr_start(&b, NLA_F_NESTED | NFTA_LIST_ELEM);
      attr_data(&b, NFTA_SET_ELEM_KEY, &e->key, sizeof e->key);
      if (e->add && e->value_kind == BYTES) attr_data(&b, NFTA_SET_ELEM_DATA, e->value, e->value_len);
      if (e->add && e->value_kind == OBJREF) attr_put(&b, NFTA_SET_ELEM_OBJREF, name_of(e->obj), strlen(name_of(e->obj)) + 1);
      attr_end(&b, elem);
    }
    attr_end(&b, list);
    msg_end(&b, at);
  }
  at = msg_start(&b, NFNL_MSG_BATCH_END, 0, ++*seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
  msg_end(&b, at);

  /* The whole batch goes in one datagram (the kernel takes one batch per skb), so the send buffer must
   * hold it; SO_SNDBUFFORCE (CAP_NET_ADMIN) passes net.core.wmem_max, as nft does. */
  int size = (int)(b.len + 4096);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  /* Every answer arrives at once when the kernel has processed the whole batch; each takes about 1 KiB of
   * receive buffer (skb overhead), so make room for all of them or some are dropped (ENOBUFS). */
  int rcv = (int)(messages * 2048 + 65536);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t sent = sendto(fd, b.data, b.len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  if (sent < 0 || (size_t)sent != b.len) {
    snprintf(why, why_len, "netlink send (%zu bytes): %s", b.len, sent < 0 ? strerror(errno) : "short write");
    return REFUSED; /* nothing reached the kernel */
  }
  return read_acks(fd, first_seq, messages, first_op, why, why_len);
}

int main(int argc, char **argv) {
  if (argc != 3) die(2, "usage: %s FAMILY TABLE < requests", argv[0]);
  int family = family_of(argv[1]);
  if (family < 0) die(2, "family: unknown \"%s\"", argv[1]);
  const char *table = argv[2];
  if (strlen(table) >= NAME_MAX_LEN) die(2, "table name too long: %s", table);

  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) die(1, "netlink socket: %s", strerror(errno));
  struct sockaddr_nl local = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) die(1, "netlink bind: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  struct timeval tv = {.tv_sec = RECV_TIMEOUT_S};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  uint32_t seq = (uint32_t)time(NULL);
  struct ops ops = {0};
  size_t lineno = 0;
  char *line = NULL, why[512] = "", bad[512] = "";
  size_t line_cap = 0;
  int last_failed = 0, pending = 0;
  for (;;) {
    ssize_t got = getline(&line, &line_cap, stdin);
    int is_commit = got < 0, is_blank = 0;
    lineno++;
    if (got >= 0) {
      const char *err = parse_line(line, &ops, &is_commit, &is_blank, why, sizeof why);
      if (err && !bad[0]) snprintf(bad, sizeof bad, "line %zu: %s", lineno, err);
      if (!is_blank && !is_commit) pending = 1;
    }
    if (is_commit && (pending || got >= 0)) {
      if (bad[0]) {
        printf("error %s\n", bad);
        last_failed = 1;
      } else if (ops.len == 0) {
        printf("ok 0\n");
        last_failed = 0;
      } else {
        enum outcome o = commit(fd, table, family, ops.v, ops.len, &seq, why, sizeof why);
        if (o == COMMITTED) printf("ok %zu\n", ops.len);
        else printf("%s %s\n", o == REFUSED ? "error" : "lost", why);
        last_failed = o != COMMITTED;
      }
      fflush(stdout);
      ops.len = 0;
      names_reset();
      pending = 0;
      bad[0] = '\0';
    }
    if (got < 0) break;
  }
  free(line);
  free(ops.v);
  return last_failed ? 1 : 0;
}
