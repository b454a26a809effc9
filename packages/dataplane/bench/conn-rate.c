/*
 * conn-rate: TCP connections per second through a path, for the data-plane bench (run inside the bench's
 * network namespaces only; lab addresses).
 *
 *   conn-rate server PORT WORKERS
 *       Listens on [::]:PORT (IPv4 too), WORKERS forked processes sharing the socket. Each connection: read
 *       the request (up to 64 bytes), write it back, wait for the client to close, close. Prints "ready".
 *   conn-rate client HOST PORT SECONDS WORKERS
 *       WORKERS forked processes, each for SECONDS: connect, write 16 bytes, read them back, close with an
 *       RST (SO_LINGER 0: no TIME_WAIT, so the ephemeral ports never run out), count. Every socket call is
 *       bounded (2 s send/receive timeouts, a non-blocking connect waited for at most 2 s). Prints one JSON
 *       line: {"connections":N,"failed":F,"seconds":S,"perSecond":R}.
 *
 * Why C and not Python: a Python loop makes ~3-5k connections/s on one core, about what a balancer path
 * does, so the client would be what is measured.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64
#define IO_TIMEOUT_MS 2000
#define REQUEST_BYTES 16

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void timeouts(int fd)
{
	struct timeval tv = {.tv_sec = IO_TIMEOUT_MS / 1000, .tv_usec = (IO_TIMEOUT_MS % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int server(int port, int workers)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	int one = 1, zero = 0;
	if (fd < 0) return perror("socket"), 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = in6addr_any};
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096)) return perror("bind/listen"), 1;
	for (int w = 0; w < workers; w++) {
		pid_t p = fork();
		if (p < 0) return perror("fork"), 1;
		if (p > 0) continue;
		/* The parent's death (the bench killing it) ends the workers too. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1) _exit(0);
		signal(SIGPIPE, SIG_IGN);
		for (;;) {
			int c = accept(fd, NULL, NULL);
			if (c < 0) {
				if (errno == EINTR || errno == ECONNABORTED) continue;
				_exit(1);
			}
			timeouts(c);
			char buf[64];
			ssize_t n = read(c, buf, sizeof(buf));
			if (n > 0 && write(c, buf, (size_t)n) == n) {
				while (read(c, buf, sizeof(buf)) > 0) {
				}
			}
			close(c);
		}
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		if (wait(NULL) < 0 && errno == ECHILD) return 0;
	}
}

/* Non-blocking connect bounded by IO_TIMEOUT_MS; 0 when connected. */
static int connect_bounded(int fd, const struct sockaddr *sa, socklen_t len)
{
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (connect(fd, sa, len) == 0) return fcntl(fd, F_SETFL, fl), 0;
	if (errno != EINPROGRESS) return -1;
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	if (poll(&p, 1, IO_TIMEOUT_MS) != 1) return -1;
	int err = 0;
	socklen_t el = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) return -1;
	fcntl(fd, F_SETFL, fl);
	return 0;
}

static void client_worker(const struct addrinfo *ai, double seconds, int out)
{
	uint64_t ok = 0, failed = 0;
	const char req[REQUEST_BYTES] = "l4fleet-bench-cc";
	struct linger rst = {.l_onoff = 1, .l_linger = 0};
	double end = now_s() + seconds;
	while (now_s() < end) {
		int fd = socket(ai->ai_family, SOCK_STREAM, 0);
		if (fd < 0) {
			failed++;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
		timeouts(fd);
		char buf[REQUEST_BYTES];
		size_t got = 0;
		if (connect_bounded(fd, ai->ai_addr, ai->ai_addrlen) == 0 && write(fd, req, sizeof(req)) == sizeof(req)) {
			ssize_t n;
			while (got < sizeof(buf) && (n = read(fd, buf + got, sizeof(buf) - got)) > 0) got += (size_t)n;
		}
		if (got == sizeof(buf) && memcmp(buf, req, sizeof(req)) == 0) ok++;
		else failed++;
		close(fd);
	}
	uint64_t r[2] = {ok, failed};
	if (write(out, r, sizeof(r)) != sizeof(r)) _exit(1);
	_exit(0);
}

static int client(const char *host, const char *port, double seconds, int workers)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV}, *ai;
	int e = getaddrinfo(host, port, &hints, &ai);
	if (e) return fprintf(stderr, "%s:%s: %s\n", host, port, gai_strerror(e)), 2;
	int fds[2];
	if (pipe(fds)) return perror("pipe"), 1;
	double start = now_s();
	for (int w = 0; w < workers; w++) {
		pid_t p = fork();
		if (p < 0) return perror("fork"), 1;
		if (p == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(fds[0]);
			client_worker(ai, seconds, fds[1]);
		}
	}
	close(fds[1]);
	uint64_t ok = 0, failed = 0, r[2];
	while (read(fds[0], r, sizeof(r)) == sizeof(r)) {
		ok += r[0];
		failed += r[1];
	}
	while (wait(NULL) > 0) {
	}
	double took = now_s() - start;
	printf("{\"connections\":%llu,\"failed\":%llu,\"seconds\":%.3f,\"perSecond\":%.1f}\n", (unsigned long long)ok,
	       (unsigned long long)failed, took, (double)ok / took);
	freeaddrinfo(ai);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "server") == 0) {
		int port = atoi(argv[2]), workers = atoi(argv[3]);
		if (port < 1 || port > 65535 || workers < 1 || workers > MAX_WORKERS) return fprintf(stderr, "bad arguments\n"), 2;
		return server(port, workers);
	}
	if (argc == 6 && strcmp(argv[1], "client") == 0) {
		double seconds = atof(argv[4]);
		int workers = atoi(argv[5]);
		if (seconds <= 0 || seconds > 300 || workers < 1 || workers > MAX_WORKERS)
			return fprintf(stderr, "bad arguments\n"), 2;
		return client(argv[2], argv[3], seconds, workers);
	}
	fprintf(stderr, "usage: %s server PORT WORKERS | client HOST PORT SECONDS WORKERS\n", argv[0]);
	return 2;
}
