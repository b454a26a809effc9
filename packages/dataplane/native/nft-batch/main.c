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
 *
 * Parts: main.c (this loop), request.c (the request lines), names.c (names interned per batch), netlink.c (the
 * batch's messages and the kernel's answers).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "nft-batch.h"

void die(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("l4fleet-nft-batch: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(code);
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
