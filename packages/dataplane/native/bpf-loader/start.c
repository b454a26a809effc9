/* The start: the restart fast path over the pins, else the object loaded and attached (libbpf). */
#include "loader.h"

static int prog_tag(int fd, unsigned char tag[BPF_TAG_SIZE], unsigned int *id)
{
	struct bpf_prog_info info = {0};
	uint32_t il = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &il)) return -errno;
	memcpy(tag, info.tag, BPF_TAG_SIZE);
	if (id) *id = info.id;
	return 0;
}

/* The ids of the maps program `fd` uses (bpf_prog_info.map_ids); -1 when they do not fit `ids`. */
static int prog_map_ids(int fd, uint32_t *ids, uint32_t max)
{
	struct bpf_prog_info info = {0};
	uint32_t il = sizeof(info);
	info.nr_map_ids = max;
	info.map_ids = (uint64_t)(uintptr_t)ids;
	if (bpf_obj_get_info_by_fd(fd, &info, &il) || info.nr_map_ids > max) return -1;
	return (int)info.nr_map_ids;
}

/*
 * Whether the attached program (`attached`) uses the pinned maps the loaded one (`loaded`) uses. The tag alone does
 * not say it: the kernel computes it with the map references zeroed (kernel/bpf/core.c bpf_prog_calc_tag). A program
 * left attached after one of its pins was removed is the same code over a map no loader can reach any more: this
 * load created a new map for that pin, and the program must be replaced to use it. Maps without a pin (libbpf's
 * .rodata, made anew by every load, same content) are not compared.
 */
static int same_pinned_maps(int attached, int loaded)
{
	enum { MAX_MAPS = 64 };
	uint32_t have[MAX_MAPS], want[MAX_MAPS];
	int nh = prog_map_ids(attached, have, MAX_MAPS), nw = prog_map_ids(loaded, want, MAX_MAPS);
	if (nh < 0 || nw < 0) return 0;
	struct bpf_map *m;
	bpf_object__for_each_map(m, obj)
	{
		if (!bpf_map__is_pinned(m)) continue;
		struct bpf_map_info info = {0};
		uint32_t il = sizeof(info);
		if (bpf_obj_get_info_by_fd(bpf_map__fd(m), &info, &il)) return 0;
		int used = 0, there = 0;
		for (int i = 0; i < nw; i++) used |= want[i] == info.id;
		for (int i = 0; i < nh; i++) there |= have[i] == info.id;
		if (used && !there) return 0;
	}
	return 1;
}

int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf's warnings go to stderr (the driver puts its tail in the error of a failed start or a lost loader);
	 * debug output not. */
	if (level == LIBBPF_DEBUG) return 0;
	return vfprintf(stderr, fmt, ap);
}

static uint64_t file_hash(const char *path)
{
	/* FNV-1a 64: only tells "the same object file as last time", not a security check. Read in 64 KB blocks
	 * (getc per byte cost ~1 ms for the 200 KB object). */
	static unsigned char buf[65536];
	uint64_t h = 0xcbf29ce484222325ull;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return 0;
	for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;)
		for (ssize_t i = 0; i < n; i++) h = (h ^ buf[i]) * 0x100000001b3ull;
	close(fd);
	return h;
}

static void close_fd(int *fd)
{
	if (*fd >= 0) close(*fd);
	*fd = -1;
}

/* With fds of our own (from the pins), not the object's: closed again when the fast path does not apply. */
static void drop_fds(void)
{
	for (size_t i = 0; i < N_SMALL; i++) close_fd(&small_fd[i]);
	close_fd(&tables_fd);
	close_fd(&flows4_fd);
	close_fd(&flows6_fd);
	close_fd(&vip_stats_fd);
	close_fd(&backend_stats_fd);
	close_fd(&stats_fd);
}

/*
 * Takes every map's fd by name. Returns 0, or an errno with msg saying which map is missing or is not laid
 * out as node-maps.h says (key and value sizes from the kernel: bpf_obj_get_info_by_fd).
 */
static int take_fds(int (*fd_of)(const char *), char *msg, size_t msglen)
{
	for (size_t i = 0; i < N_SMALL; i++) small_fd[i] = fd_of(small_maps[i]);
	tables_fd = fd_of("l4f_tables");
	flows4_fd = fd_of("l4f_flows4");
	flows6_fd = fd_of("l4f_flows6");
	vip_stats_fd = fd_of("l4f_vip_stats");
	backend_stats_fd = fd_of("l4f_backend_stats");
	stats_fd = fd_of("l4f_stats");
	const char *missing = tables_fd < 0	      ? "l4f_tables"
			      : flows4_fd < 0	      ? "l4f_flows4"
			      : flows6_fd < 0	      ? "l4f_flows6"
			      : vip_stats_fd < 0      ? "l4f_vip_stats"
			      : backend_stats_fd < 0 ? "l4f_backend_stats"
			      : stats_fd < 0	      ? "l4f_stats"
						      : NULL;
	for (size_t i = 0; i < N_SMALL && !missing; i++)
		if (small_fd[i] < 0) missing = small_maps[i];
	if (missing) {
		snprintf(msg, msglen, "map %s: not found", missing);
		return ENOENT;
	}
	/* A pin of the flow LRU of earlier builds (or a hand's) is not ours: the full path makes it anew (layout.c). */
	const char *other = !is_flow_cache(flows4_fd) ? "l4f_flows4" : !is_flow_cache(flows6_fd) ? "l4f_flows6" : NULL;
	if (other) {
		snprintf(msg, msglen, "map %s: not a flow cache as node-maps.h lays it out", other);
		return EINVAL;
	}
	for (size_t i = 0; i < N_SMALL; i++) {
		struct bpf_map_info info = {0};
		uint32_t il = sizeof(info);
		if (bpf_obj_get_info_by_fd(small_fd[i], &info, &il)) {
			int err = errno;
			snprintf(msg, msglen, "map %s: %s", small_maps[i], strerror(err));
			return err;
		}
		if (info.key_size != small_key_size[i] || info.value_size != small_value_size[i]) {
			snprintf(msg, msglen, "map %s: key %u / value %u bytes, node-maps.h says %u / %u", small_maps[i],
				 info.key_size, info.value_size, small_key_size[i], small_value_size[i]);
			return EINVAL;
		}
	}
	return 0;
}

static int loaded_fd(const char *name) { return bpf_object__find_map_fd_by_name(obj, name); }

/*
 * With XDP: whether l4f_ifaces is pinned as node-maps.h lays it out. The fast path writes the interface's MAC into
 * that pin (xdp_mac) and loads nothing: without it (removed, or another layout) only the full path, which creates
 * and pins it, can start. Without XDP the map is not used.
 */
static int ifaces_pinned(void) { return !xdp_wanted || pin_is("l4f_ifaces", 4, sizeof(struct l4f_iface)); }

/*
 * The restart fast path, taken before the object is opened: l4f_meta says the program attached at our tc
 * handle is the one this object file (same hash) produced, with flow maps of the asked size, and that program
 * is still the one attached. Then nothing needs loading or even parsing (bpf_object__open_file reads the
 * 160-200 KB ELF and its BTF; bpf_object__load runs the verifier): the pins are opened by path. Anything else
 * (no meta, another hash or flow size, another or no program attached, a pin missing or of another layout,
 * flows still to clear) returns 0 and the start takes the full path.
 */
static int reuse(uint64_t hash, uint32_t flows)
{
	struct l4f_meta meta;
	uint32_t zero = 0;
	if (stale_recorded()) return 0; /* flows still to clear, after a failed start (stale.c): the full path does */
	int mfd = pinned("l4f_meta");
	if (mfd < 0) return 0;
	/* Sizes first: a pin of another build with a larger value would be copied past `meta` by the lookup. */
	struct bpf_map_info mi = {0};
	uint32_t mil = sizeof(mi);
	int ok = bpf_obj_get_info_by_fd(mfd, &mi, &mil) == 0 && mi.key_size == sizeof(zero) &&
		 mi.value_size == sizeof(meta) && bpf_map_lookup_elem(mfd, &zero, &meta) == 0 && hash != 0 &&
		 meta.object_hash == hash && meta.flows == flows;
	close(mfd);
	LIBBPF_OPTS(bpf_tc_opts, q, .handle = TC_HANDLE, .priority = TC_PRIORITY);
	if (!ok || bpf_tc_query(&hook, &q) != 0 || q.prog_id != meta.prog_id || !xdp_matches() || !ifaces_pinned())
		return 0;
	char why[300];
	if (take_fds(pinned, why, sizeof(why))) {
		drop_fds();
		return 0;
	}
	prog_id = meta.prog_id;
	return 1;
}

static void remember(uint64_t hash, uint32_t flows)
{
	struct l4f_meta meta = {.object_hash = hash, .prog_id = prog_id, .flows = flows};
	uint32_t zero = 0;
	int fd = loaded_fd("l4f_meta");
	if (fd >= 0) bpf_map_update_elem(fd, &zero, &meta, BPF_ANY);
}

/* The full path: open and load the object (libbpf reuses the pins that match and creates and pins the maps that
 * have none, e.g. a map new in this object), attach unless the same program over the same maps is attached. */
static int load(const char *object, uint64_t hash, uint32_t flows, const char *ifname, int *fresh, char *msg,
		size_t msglen)
{
	int ferr = flows_pinned_size(flows, msg, msglen);
	if (ferr) return ferr;
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = pin_dir);
	obj = bpf_object__open_file(object, &oo);
	if (!obj) {
		snprintf(msg, msglen, "open %s: %s", object, strerror(errno));
		return errno;
	}
	if (size_flows(obj, flows)) {
		snprintf(msg, msglen, "%s: no flow maps to size", object);
		return EINVAL;
	}
	/* The XDP program is verified and loaded only when asked for. */
	struct bpf_program *xdp = bpf_object__find_program_by_name(obj, "l4f_node_xdp");
	if (xdp) bpf_program__set_autoload(xdp, xdp_wanted);
	/* Pins of another definition are removed first (layout.c); then what the load creates over pinned flows is
	 * recorded (stale.c), and `fresh` says whether it creates l4f_backends. */
	int err = pins_fit(obj, msg, msglen);
	if (!err) err = stale_before_load(fresh, msg, msglen);
	if (err) return err;
	err = bpf_object__load(obj);
	if (err) {
		snprintf(msg, msglen, "load %s (pins in %s): %s", object, pin_dir, strerror(-err));
		return -err;
	}
	char why[300];
	err = take_fds(loaded_fd, why, sizeof(why));
	if (err) {
		snprintf(msg, msglen, "%s: %s", object, why);
		return err;
	}
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, "l4f_node");
	prog_fd = prog ? bpf_program__fd(prog) : -1;
	if (prog_fd < 0) {
		snprintf(msg, msglen, "%s: no program l4f_node", object);
		return EINVAL;
	}
	err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST) {
		snprintf(msg, msglen, "clsact on %s: %s", ifname, strerror(-err));
		return -err;
	}
	unsigned char want[BPF_TAG_SIZE], have[BPF_TAG_SIZE];
	prog_tag(prog_fd, want, NULL);
	LIBBPF_OPTS(bpf_tc_opts, q, .handle = TC_HANDLE, .priority = TC_PRIORITY);
	if (bpf_tc_query(&hook, &q) == 0) {
		int fd = bpf_prog_get_fd_by_id(q.prog_id);
		int same = fd >= 0 && prog_tag(fd, have, NULL) == 0 && memcmp(want, have, BPF_TAG_SIZE) == 0 &&
			   same_pinned_maps(fd, prog_fd);
		if (fd >= 0) close(fd);
		if (same) prog_id = q.prog_id;
		if (same) snprintf(msg, msglen, "unchanged %u object", prog_id);
		else prog_id = 0;
	}
	if (!prog_id) {
		LIBBPF_OPTS(bpf_tc_opts, ao, .handle = TC_HANDLE, .priority = TC_PRIORITY, .prog_fd = prog_fd,
			    .flags = BPF_TC_F_REPLACE);
		err = bpf_tc_attach(&hook, &ao);
		if (err) {
			snprintf(msg, msglen, "attach to %s ingress: %s", ifname, strerror(-err));
			return -err;
		}
		prog_id = ao.prog_id;
		snprintf(msg, msglen, "attached %u object", prog_id);
	}
	/* After tc: a packet the XDP program passes always finds the tc program there. */
	char xmsg[300];
	err = xdp_mac(loaded_fd("l4f_ifaces"), ifname, xmsg, sizeof(xmsg));
	if (!err) err = xdp_attach(xdp, xmsg, sizeof(xmsg));
	if (err) {
		snprintf(msg, msglen, "%s", xmsg);
		return err;
	}
	remember(hash, flows);
	return 0;
}

/* The interface the start attached to, by name: attach_check() looks it up again. */
static char if_name[IF_NAMESIZE];

/*
 * Whether the program is still where the start attached it. The interface may have been deleted (its clsact
 * qdisc and XDP program with it) and made again under the same name, with another ifindex, while this loader
 * runs: map writes would go on succeeding with no program reading the maps. Checked before the first write of
 * each send (an apply, main.c): an error fails that apply unrun, so the driver starts a new loader, whose start
 * attaches the program to the interface as it is now. Returns 0 or an errno, with msg saying what changed.
 */
int attach_check(char *msg, size_t msglen)
{
	unsigned int now = if_nametoindex(if_name);
	if (now != (unsigned int)hook.ifindex) {
		if (now)
			snprintf(msg, msglen,
				 "interface %s: ifindex %u, not %d as at the start (deleted and made again): the program is "
				 "not attached there",
				 if_name, now, hook.ifindex);
		else snprintf(msg, msglen, "interface %s (ifindex %d): %s", if_name, hook.ifindex, strerror(errno));
		return ENODEV;
	}
	LIBBPF_OPTS(bpf_tc_opts, q, .handle = TC_HANDLE, .priority = TC_PRIORITY);
	int err = bpf_tc_query(&hook, &q);
	if (err || q.prog_id != prog_id) {
		snprintf(msg, msglen, "interface %s: program %u is no longer attached at tc ingress (%s)", if_name,
			 prog_id, err ? strerror(-err) : "another program is");
		return ENOENT;
	}
	if (xdp_wanted && !xdp_matches()) {
		snprintf(msg, msglen, "interface %s: the XDP program is no longer attached", if_name);
		return ENOENT;
	}
	return 0;
}

int start(const char *object, const char *ifname, uint32_t flows, char *msg, size_t msglen)
{
	struct statfs st;
	char parent[512];
	snprintf(parent, sizeof(parent), "%s", pin_dir);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) *slash = 0;
	if (statfs(parent, &st) || st.f_type != BPF_FS_MAGIC) {
		snprintf(msg, msglen, "pin directory %s: %s is not a mounted bpffs", pin_dir, parent);
		return ENOTDIR;
	}
	if (mkdir(pin_dir, 0700) && errno != EEXIST) {
		snprintf(msg, msglen, "mkdir %s: %s", pin_dir, strerror(errno));
		return errno;
	}
	unsigned int ifindex = if_nametoindex(ifname);
	if (!ifindex) {
		snprintf(msg, msglen, "interface %s: %s", ifname, strerror(errno));
		return ENODEV;
	}
	snprintf(if_name, sizeof(if_name), "%s", ifname);
	hook.sz = sizeof(hook);
	hook.ifindex = (int)ifindex;
	hook.attach_point = BPF_TC_INGRESS;
	uint64_t hash = file_hash(object);
	if (reuse(hash, flows)) {
		int mfd = pinned("l4f_ifaces");
		int err = xdp_mac(mfd, ifname, msg, msglen); /* the MAC may have changed since */
		if (mfd >= 0) close(mfd);
		if (err) return err;
		snprintf(msg, msglen, "unchanged %u pins", prog_id);
		xdp_describe(ifname, msg, msglen);
		int e = hwm_open(0, msg, msglen); /* msg is only written on failure */
		return e ? e : seat_open(msg, msglen);
	}
	/* l4f_backends is created by this load when it has no pin yet (`fresh`): its high-water mark is then 0. Flows
	 * remembered over ids that start again are recorded as such before the load (a start failing after it leaves
	 * the record: stale.c) and cleared once the load has the maps. */
	int fresh = 0;
	int err = load(object, hash, flows, ifname, &fresh, msg, msglen);
	if (!err) err = stale_clear(msg, msglen);
	if (err) return err;
	xdp_describe(ifname, msg, msglen);
	err = hwm_open(fresh, msg, msglen); /* msg is only written on failure */
	if (!err) err = seat_open(msg, msglen);
	/* A first start on this host: the first apply creates every VIP's table, so one of the default M is made
	 * ready now (a restart over pins most often creates none). */
	if (!err && fresh) want_spare(L4F_DEFAULT_TABLE_SLOTS);
	return err;
}

/* Joins the network namespace named NAME (ip netns: a bind mount at /run/netns/NAME). Returns 0 or an errno. */
