/*
 * UDP flood for the per-packet bench (per-packet.ts). Sends `count` small datagrams to dst:port (IPv4,
 * or IPv6 when DST parses as an IPv6 address) from `flows` sockets (one source port each, round robin,
 * batches of 32 with sendmmsg), pinned to one CPU, and reports the CPU time of its own thread and of
 * that CPU's ksoftirqd while it sent.
 *
 * Why the sender's own CPU time measures the forwarding path: a veth hands a frame to the peer with
 * netif_rx() and the NET_RX softirq runs when the sender leaves its bh-disabled section
 * (local_bh_enable in __dev_queue_xmit), on the same CPU, in the sender's task. Every hop of the lab
 * (router, bridge, the node's netdev ingress chain and fwd, the backend's sink) therefore runs inside
 * this thread and is charged to CLOCK_THREAD_CPUTIME_ID (the kernel has no IRQ_TIME_ACCOUNTING, so
 * softirq time is not split off). Softirq work deferred to ksoftirqd is added from its schedstat.
 * Other tasks preempting us on a shared machine are not charged to this thread.
 *
 * New flows (SOURCES > 0): every datagram is a 5-tuple never sent before. Each one carries its source
 * address in an IP_PKTINFO / IPV6_PKTINFO control message, SOURCE_BASE + k (k counted in the address's
 * last 32 bits), and a socket's k-th datagram (warm-up included) takes k: a tuple is (socket's source
 * port, k), so FLOWS x SOURCES tuples, none repeated while no socket sends more than SOURCES datagrams.
 * The sockets are IP_TRANSPARENT / IPV6_TRANSPARENT (CAP_NET_ADMIN) so the kernel lets them send from
 * addresses that are not local; the router needs a route back to SOURCE_BASE's prefix only for rp_filter.
 * The control message makes the kernel route every datagram afresh (no cached route of the connected
 * socket), so the sender costs more than with SOURCES = 0: compare new-flow floods with each other.
 *
 *   udp-flood DST PORT COUNT WARMUP FLOWS PAYLOAD_BYTES CPU KSOFTIRQD_PID MAX_SECONDS [SOURCES SOURCE_BASE]
 * Prints one JSON line: {"sent":..,"errors":..,"cpuNs":..,"softirqdNs":..,"wallNs":..,"distinct":..}
 * where distinct is the number of distinct 5-tuples sent, warm-up included (FLOWS when SOURCES = 0).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
#define MAX_FLOWS 1024
#define MAX_SOURCES (1 << 24)

/* New flows: the per-socket source counter and the control messages that carry each datagram's source. */
static int sources;
static int family;
static struct in_addr base4;
static struct in6_addr base6;
static long long per_sock[MAX_FLOWS];
static union {
  char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
  struct cmsghdr align;
} ctl[BATCH];

/* Fills message i's control message with source SOURCE_BASE + k. */
static void set_source(struct msghdr *h, int i, unsigned k) {
  memset(&ctl[i], 0, sizeof ctl[i]);
  h->msg_control = ctl[i].buf;
  struct cmsghdr *c = (struct cmsghdr *)ctl[i].buf;
  if (family == AF_INET) {
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    pi.ipi_spec_dst.s_addr = htonl(ntohl(base4.s_addr) + k);
    h->msg_controllen = CMSG_SPACE(sizeof pi);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
  } else {
    struct in6_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    pi.ipi6_addr = base6;
    uint32_t low;
    memcpy(&low, &pi.ipi6_addr.s6_addr[12], 4);
    low = htonl(ntohl(low) + k);
    memcpy(&pi.ipi6_addr.s6_addr[12], &low, 4);
    h->msg_controllen = CMSG_SPACE(sizeof pi);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
  }
}

static long long now_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* sum_exec_runtime of a task in ns (first field of /proc/PID/schedstat); 0 when unreadable. */
static long long schedstat_ns(int pid) {
  if (pid <= 0) return 0;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  long long ns = 0;
  if (fscanf(f, "%lld", &ns) != 1) ns = 0;
  fclose(f);
  return ns;
}

/* Sends up to `count` datagrams, round robin over the sockets; stops at `deadline_ns` (monotonic). */
static long long flood(int *socks, int flows, long long count, char *payload, int len, long long deadline_ns,
                       long long *errors) {
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = payload;
    iov[i].iov_len = (size_t)len;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  long long sent = 0;
  int f = 0;
  while (sent < count) {
    if ((sent & 4095) == 0 && now_ns(CLOCK_MONOTONIC) > deadline_ns) break;
    int n = count - sent < BATCH ? (int)(count - sent) : BATCH;
    if (sources > 0) {
      for (int i = 0; i < n; i++) set_source(&msgs[i].msg_hdr, i, (unsigned)((per_sock[f] + i) % sources));
    }
    int r = sendmmsg(socks[f], msgs, (unsigned)n, 0);
    if (r < 0) {
      if (errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED) {
        perror("sendmmsg");
        exit(1);
      }
      (*errors)++;
      if (*errors > 1000000) break;
    } else {
      sent += r;
      per_sock[f] += r;
    }
    f = (f + 1) % flows;
  }
  return sent;
}

int main(int argc, char **argv) {
  if (argc != 10 && argc != 12) {
    fprintf(stderr, "usage: %s DST PORT COUNT WARMUP FLOWS PAYLOAD CPU KSOFTIRQD_PID MAX_SECONDS [SOURCES SOURCE_BASE]\n",
            argv[0]);
    return 2;
  }
  const char *dst = argv[1];
  int port = atoi(argv[2]);
  long long count = atoll(argv[3]);
  long long warmup = atoll(argv[4]);
  int flows = atoi(argv[5]);
  int len = atoi(argv[6]);
  int cpu = atoi(argv[7]);
  int ksoftirqd = atoi(argv[8]);
  double max_s = atof(argv[9]);
  sources = argc == 12 ? atoi(argv[10]) : 0;
  if (flows < 1 || flows > MAX_FLOWS || len < 1 || len > 1400 || count < 1 || max_s <= 0 || sources < 0 ||
      sources > MAX_SOURCES) {
    fprintf(stderr, "bad arguments\n");
    return 2;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    perror("sched_setaffinity");
    return 1;
  }
  struct sockaddr_storage to;
  socklen_t to_len;
  memset(&to, 0, sizeof to);
  struct sockaddr_in *to4 = (struct sockaddr_in *)&to;
  struct sockaddr_in6 *to6 = (struct sockaddr_in6 *)&to;
  if (inet_pton(AF_INET, dst, &to4->sin_addr) == 1) {
    to4->sin_family = AF_INET;
    to4->sin_port = htons((unsigned short)port);
    to_len = sizeof *to4;
  } else if (inet_pton(AF_INET6, dst, &to6->sin6_addr) == 1) {
    to6->sin6_family = AF_INET6;
    to6->sin6_port = htons((unsigned short)port);
    to_len = sizeof *to6;
  } else {
    fprintf(stderr, "bad address %s\n", dst);
    return 2;
  }
  family = to.ss_family;
  if (sources > 0 && (family == AF_INET ? inet_pton(AF_INET, argv[11], &base4)
                                         : inet_pton(AF_INET6, argv[11], &base6)) != 1) {
    fprintf(stderr, "bad source base %s (must be of the destination's family)\n", argv[11]);
    return 2;
  }
  int socks[MAX_FLOWS];
  for (int i = 0; i < flows; i++) {
    socks[i] = socket(to.ss_family, SOCK_DGRAM, 0);
    int one = 1;
    if (socks[i] >= 0 && sources > 0 &&
        (family == AF_INET ? setsockopt(socks[i], IPPROTO_IP, IP_TRANSPARENT, &one, sizeof one)
                           : setsockopt(socks[i], IPPROTO_IPV6, IPV6_TRANSPARENT, &one, sizeof one)) != 0) {
      perror("setsockopt transparent");
      return 1;
    }
    if (socks[i] < 0 || connect(socks[i], (struct sockaddr *)&to, to_len) != 0) {
      perror("socket/connect");
      return 1;
    }
  }
  char payload[1400];
  memset(payload, 'x', sizeof payload);
  long long deadline = now_ns(CLOCK_MONOTONIC) + (long long)(max_s * 1e9);
  long long errors = 0;
  /* Warm-up: neighbour entries, the flow map, caches. Not measured. */
  flood(socks, flows, warmup, payload, len, deadline, &errors);
  usleep(20000);
  errors = 0;
  long long soft0 = schedstat_ns(ksoftirqd);
  long long cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
  long long wall0 = now_ns(CLOCK_MONOTONIC);
  long long sent = flood(socks, flows, count, payload, len, deadline, &errors);
  long long wall1 = now_ns(CLOCK_MONOTONIC);
  long long cpu1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
  long long soft1 = schedstat_ns(ksoftirqd);
  long long distinct = 0;
  for (int i = 0; i < flows; i++) {
    if (sources == 0) distinct += per_sock[i] > 0;
    else distinct += per_sock[i] < sources ? per_sock[i] : sources;
  }
  printf("{\"sent\":%lld,\"errors\":%lld,\"cpuNs\":%lld,\"softirqdNs\":%lld,\"wallNs\":%lld,\"distinct\":%lld}\n",
         sent, errors, cpu1 - cpu0, soft1 - soft0, wall1 - wall0, distinct);
  return 0;
}
