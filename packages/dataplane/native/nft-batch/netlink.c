/*
 * One batch of operations as one nf_tables netlink transaction, and the kernel's answers to it
 * (the message layout is in main.c's comment).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "nft-batch.h"

struct buf {
  char *data;
  size_t len, cap;
};

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
enum outcome commit(int fd, const char *table, int family, const struct op *ops, size_t count, uint32_t *seq,
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
