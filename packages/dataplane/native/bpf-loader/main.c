/*
 * l4fleet-bpf: loads the node program (native/bpf/node.bpf.c) with Debian's libbpf, pins its maps, attaches it
 * at tc ingress (clsact, direct action) of one interface, then stays running and writes the maps on request.
 *
 * Why a long-running process: loading the object and opening the pinned maps costs 15-25 ms; a process per
 * apply would pay that every time. Why pinned maps: an agent restart or upgrade must not interrupt
 * forwarding, so the maps (VIPs, backends, slot tables, flows, counters) live in a bpffs, the program stays
 * attached when this process exits, and a new loader reuses every pin (libbpf pin_root_path). A restarted
 * loader replaces the attached program only when its instructions differ (program tag), atomically
 * (BPF_TC_F_REPLACE): packets in flight see the old or the new program, never none.
 *
 * Usage: l4fleet-bpf [--netns NAME] [--xdp native|off] PIN_DIR OBJECT IFNAME FLOW_ENTRIES
 *   PIN_DIR must be inside a mounted bpffs (the driver mounts one). FLOW_ENTRIES sizes both flow LRUs; a
 *   pinned flow map of another size is refused by libbpf ("couldn't reuse pinned map").
 *   --netns: first of all, setns() into the network namespace /run/netns/NAME (`ip netns add`). Only the
 *   network namespace changes, as with `nsenter --net`: the mounts stay the caller's, so PIN_DIR is the same
 *   bpffs the driver sees (`ip netns exec` would give a private /sys). One exec less than nsenter + loader.
 *   --xdp native: also attach the XDP fast path (node-xdp.h) in native mode; off (the default): detach ours if
 *   attached. The start reply then ends in " xdp PROG_ID", and " nofwd4" / " nofwd6" for a family whose
 *   forwarding is off on IFNAME (the fast path is idle for it: xdp.c).
 * Protocol (binary, host byte order): each request is  u32 op, u32 length, payload;  each reply is
 *   u32 status (0 = ok, else an errno), u32 length, payload (data, or the error text). Requests are answered
 *   in order, so a client may send several before reading. The first reply, unrequested, tells how the
 *   start went: "attached PROG_ID FROM" / "unchanged PROG_ID FROM", FROM being "pins" (the restart fast path:
 *   the pinned maps opened by path, the object file only hashed, never parsed) or "object" (opened with
 *   libbpf), then " chain" (OP_CHAINED is honoured), or an error (then the process exits 1).
 * Ops and payloads are listed at enum op below; layouts of keys and values are in native/bpf/node-maps.h. A
 * request whose op has OP_CHAINED set belongs to the same send as the one before it, and is refused once a
 * request of that send has failed (loader.h).
 */
#include "loader.h"

static int enter_netns(const char *name, char *msg, size_t msglen)
{
	if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") || strlen(name) > 200) {
		snprintf(msg, msglen, "netns \"%s\" is not a namespace name", name);
		return EINVAL;
	}
	char path[256];
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET)) {
		int e = errno;
		snprintf(msg, msglen, "netns %s (%s): %s", name, path, strerror(e));
		if (fd >= 0) close(fd);
		return e;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *netns = NULL, *prog = argv[0];
	int bad = 0;
	while (argc >= 3 && !strncmp(argv[1], "--", 2)) {
		if (!strcmp(argv[1], "--netns")) netns = argv[2];
		else if (!strcmp(argv[1], "--xdp") && (!strcmp(argv[2], "native") || !strcmp(argv[2], "off")))
			xdp_wanted = !strcmp(argv[2], "native");
		else bad = 1;
		argv += 2;
		argc -= 2;
	}
	if (bad || argc != 5) {
		fprintf(stderr, "usage: %s [--netns NAME] [--xdp native|off] PIN_DIR OBJECT IFNAME FLOW_ENTRIES\n", prog);
		return 2;
	}
	for (int i = 0; i < L4F_MAX_TABLES; i++) inner_fd[i] = -1;
	/*
	 * Room for a whole dump (265 KB at 65,537 slots) in one write instead of rounds of wake-ups between the
	 * driver and this process: Node's stdio are Unix socket pairs (a send buffer of net.core.wmem_default,
	 * 208 KB; SO_SNDBUFFORCE as root), a pipe from another client 64 KB (F_SETPIPE_SZ, up to
	 * fs.pipe-max-size). Each is refused on the other kind of fd, and not fatal.
	 */
	int big = 1 << 20;
	setsockopt(STDOUT_FILENO, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
	fcntl(STDIN_FILENO, F_SETPIPE_SZ, big);
	fcntl(STDOUT_FILENO, F_SETPIPE_SZ, big);
	libbpf_set_print(quiet);
	snprintf(pin_dir, sizeof(pin_dir), "%s", argv[1]);
	char msg[1200];
	int err = netns ? enter_netns(netns, msg, sizeof(msg)) : 0;
	if (!err) err = start(argv[2], argv[3], (uint32_t)strtoul(argv[4], NULL, 10), msg, sizeof(msg));
	if (!err) {
		/* This loader honours OP_CHAINED: the driver sets it only for a loader that says so (an older one
		 * would refuse the op). */
		size_t n = strlen(msg);
		snprintf(msg + n, sizeof(msg) - n, " chain");
	}
	reply(err, msg, (uint32_t)strlen(msg));
	if (err) return 1;

	char *buf = NULL;
	uint32_t cap = 0;
	for (;;) {
		uint32_t h[2];
		if (fread(h, sizeof(h), 1, stdin) != 1) break; /* end of input: the driver closed; pins stay */
		if (h[1] > MAX_PAYLOAD) {
			fprintf(stderr, "request of %u bytes\n", h[1]);
			return 1;
		}
		if (h[1] > cap) {
			buf = realloc(buf, h[1]);
			if (!buf) return 1;
			cap = h[1];
		}
		if (h[1] && fread(buf, h[1], 1, stdin) != 1) break;
		int first = !(h[0] & OP_CHAINED);
		if (first) {
			chain_failed = 0;
		} else if (chain_failed) {
			reply_err(ECANCELED, "not run: an earlier request of this apply failed");
			continue;
		}
		h[0] &= ~OP_CHAINED;
		/*
		 * A send of writes (an apply) goes only to maps a program on the interface still reads (start.c); a send
		 * of counters (OP_STATS) does not report a program no packet reaches: the driver then restarts this
		 * loader, whose start attaches it again. OP_ATTACH_CHECK asks only that (an apply with nothing to write,
		 * verify).
		 */
		if (first && (h[0] == OP_UPDATE || h[0] == OP_DELETE || h[0] == OP_TABLE_CREATE || h[0] == OP_TABLE_WRITE ||
			      h[0] == OP_TABLE_PREV || h[0] == OP_STATS || h[0] == OP_ATTACH_CHECK)) {
			int aerr = attach_check(msg, sizeof(msg));
			if (aerr) {
				reply_err(aerr, "%s", msg);
				continue;
			}
		}
		if (h[0] != OP_TABLE_CREATE && h[0] != OP_TABLE_WRITE && h[0] != OP_TABLE_PREV) {
			/* The apply's new tables go into l4f_tables, in one batch, before anything could refer to them. */
			int ferr = tables_flush(msg, sizeof(msg));
			if (ferr) {
				reply_err(ferr, "%s", msg);
				continue;
			}
		}
		switch (h[0]) {
		case OP_UPDATE: update(buf, h[1], 0); break;
		case OP_DELETE: update(buf, h[1], 1); break;
		case OP_TABLE_CREATE: table_create(buf, h[1]); break;
		case OP_TABLE_WRITE: table_write(buf, h[1], 0); break;
		case OP_TABLE_PREV: table_write(buf, h[1], 1); break;
		case OP_TABLE_DELETE: {
			uint32_t idx = 0;
			if (h[1] == 4) memcpy(&idx, buf, 4);
			if (h[1] != 4 || idx >= L4F_MAX_TABLES) {
				reply_err(EINVAL, "table-delete: bad index");
				break;
			}
			seat_take(idx, 0);
			if (bpf_map_delete_elem(tables_fd, &idx) && errno != ENOENT) {
				reply_err(errno, "table-delete %u: %s", idx, strerror(errno));
				break;
			}
			forget_inner(idx);
			reply(0, NULL, 0);
			break;
		}
		case OP_DUMP: dump(); break;
		case OP_STATS: stats(); break;
		case OP_FLOWS_CLEAR: {
			int e4 = clear_flows(flows4_fd);
			int e6 = e4 ? 0 : clear_flows(flows6_fd);
			if (e4 || e6) reply_err(e4 ? e4 : e6, "flows-clear l4f_flows%d: %s", e4 ? 4 : 6, strerror(e4 ? e4 : e6));
			else reply(0, NULL, 0);
			break;
		}
		case OP_REMOVE: remove_all(); break;
		case OP_PROG_INFO: prog_info(); break;
		case OP_TABLE_SEAT: seat_want(buf, h[1]); break;
		case OP_ATTACH_CHECK: reply(0, NULL, 0); break;
		case OP_SEAT_WAIT:
			seat_settle();
			reply(0, NULL, 0);
			break;
		default: reply_err(EINVAL, "unknown op %u", h[0]);
		}
	}
	tables_flush(msg, sizeof(msg)); /* tables the driver counts as created (no VIP refers to them yet) */
	seat_settle(); /* a seat being inserted is finished and registered before this process goes */
	return 0;
}
