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
 *   udp-flood DST PORT COUNT WARMUP FLOWS PAYLOAD_BYTES CPU KSOFTIRQD_PID MAX_SECONDS
 * Prints one JSON line: {"sent":..,"errors":..,"cpuNs":..,"softirqdNs":..,"wallNs":..}
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
#define MAX_FLOWS 1024

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
    }
    f = (f + 1) % flows;
  }
  return sent;
}

int main(int argc, char **argv) {
  if (argc != 10) {
    fprintf(stderr, "usage: %s DST PORT COUNT WARMUP FLOWS PAYLOAD CPU KSOFTIRQD_PID MAX_SECONDS\n", argv[0]);
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
  if (flows < 1 || flows > MAX_FLOWS || len < 1 || len > 1400 || count < 1 || max_s <= 0) {
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
  int socks[MAX_FLOWS];
  for (int i = 0; i < flows; i++) {
    socks[i] = socket(to.ss_family, SOCK_DGRAM, 0);
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
  printf("{\"sent\":%lld,\"errors\":%lld,\"cpuNs\":%lld,\"softirqdNs\":%lld,\"wallNs\":%lld}\n", sent, errors,
         cpu1 - cpu0, soft1 - soft0, wall1 - wall0);
  return 0;
}
