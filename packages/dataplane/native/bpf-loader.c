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
 * Usage: l4fleet-bpf PIN_DIR OBJECT IFNAME FLOW_ENTRIES
 *   PIN_DIR must be inside a mounted bpffs (the driver mounts one). FLOW_ENTRIES sizes both flow LRUs; a
 *   pinned flow map of another size is refused by libbpf ("couldn't reuse pinned map").
 * Protocol (binary, host byte order): each request is  u32 op, u32 length, payload;  each reply is
 *   u32 status (0 = ok, else an errno), u32 length, payload (data, or the error text). Requests are answered
 *   in order, so a client may send several before reading. The first reply, unrequested, tells how the
 *   start went: "attached PROG_ID" / "unchanged PROG_ID", or an error (then the process exits 1).
 * Ops and payloads are listed at enum op below; layouts of keys and values are in native/bpf/node-maps.h.
 */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "node-maps.h"

#define TC_HANDLE 0x4c34 /* "L4" */
#define TC_PRIORITY 1
#define MAX_PAYLOAD (64u << 20)

enum op {
	OP_UPDATE = 1,       /* u32 map, u32 n, n x (key, value)                      */
	OP_DELETE = 2,       /* u32 map, u32 n, n x key                               */
	OP_TABLE_CREATE = 3, /* u32 index, u32 size, size x u32 backend id: a new table at index (replaces) */
	OP_TABLE_WRITE = 4,  /* u32 index, u32 n, n x u32 slot, n x u32 backend id: in place, one batch */
	OP_TABLE_DELETE = 5, /* u32 index                                             */
	OP_DUMP = 6,         /* -> every map's content but flows and counters (layout at dump())     */
	OP_STATS = 7,        /* -> counters summed over CPUs and flow entry counts (layout at stats()) */
	OP_FLOWS_CLEAR = 8,  /* empties both flow maps                                */
	OP_REMOVE = 9,       /* detaches the program and removes every pin            */
	OP_PROG_INFO = 10,   /* -> u32 prog id, u64 run_time_ns, u64 run_cnt (kernel.bpf_stats_enabled) */
};

/* Small maps written element by element: index in the OP_UPDATE/OP_DELETE `map` field. */
static const char *const small_maps[] = {"l4f_vips", "l4f_vip_addrs", "l4f_backends", "l4f_config"};
#define N_SMALL (sizeof(small_maps) / sizeof(small_maps[0]))

static struct bpf_object *obj;
static int small_fd[N_SMALL];
static int tables_fd, flows4_fd, flows6_fd, vip_stats_fd, backend_stats_fd, stats_fd;
static int inner_fd[L4F_MAX_TABLES];
static struct bpf_tc_hook hook;
static int prog_fd;
static unsigned int prog_id;
static char pin_dir[512];

/* ---- replies ---- */
static void reply(uint32_t status, const void *data, uint32_t len)
{
	uint32_t h[2] = {status, len};
	if (fwrite(h, sizeof(h), 1, stdout) != 1 || (len && fwrite(data, len, 1, stdout) != 1)) exit(1);
	fflush(stdout);
}

static void reply_err(int err, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0) n = 0;
	if (n >= (int)sizeof(msg)) n = sizeof(msg) - 1;
	reply(err > 0 ? err : EINVAL, msg, (uint32_t)n);
}

/* A growing output buffer for dumps. */
struct out {
	char *p;
	size_t len, cap;
};

static void put(struct out *o, const void *d, size_t n)
{
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->len + n) cap *= 2;
		o->p = realloc(o->p, cap);
		if (!o->p) exit(1);
		o->cap = cap;
	}
	memcpy(o->p + o->len, d, n);
	o->len += n;
}

static void put32(struct out *o, uint32_t v) { put(o, &v, 4); }

/* ---- slot tables ---- */
static int inner(uint32_t idx)
{
	if (idx >= L4F_MAX_TABLES) return -EINVAL;
	if (inner_fd[idx] >= 0) return inner_fd[idx];
	uint32_t id;
	if (bpf_map_lookup_elem(tables_fd, &idx, &id)) return -ENOENT;
	int fd = bpf_map_get_fd_by_id(id);
	if (fd < 0) return -errno;
	inner_fd[idx] = fd;
	return fd;
}

static void forget_inner(uint32_t idx)
{
	if (idx < L4F_MAX_TABLES && inner_fd[idx] >= 0) {
		close(inner_fd[idx]);
		inner_fd[idx] = -1;
	}
}

static int write_slots(int fd, const uint32_t *keys, const uint32_t *vals, uint32_t n)
{
	/* ARRAY maps take a batch update in one syscall (kernel 5.6+): 65,537 slots in about 8 ms. */
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	uint32_t count = n;
	if (n == 0) return 0;
	if (bpf_map_update_batch(fd, keys, vals, &count, &o)) return -errno;
	return 0;
}

static void table_create(const char *p, uint32_t len)
{
	if (len < 8) return reply_err(EINVAL, "table-create: short payload");
	uint32_t idx, size;
	memcpy(&idx, p, 4);
	memcpy(&size, p + 4, 4);
	if (idx >= L4F_MAX_TABLES || size == 0 || len != 8 + 4ull * size)
		return reply_err(EINVAL, "table-create: index %u / size %u / payload %u do not fit", idx, size, len);
	LIBBPF_OPTS(bpf_map_create_opts, mo, .map_flags = BPF_F_INNER_MAP);
	int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "l4f_slots", 4, 4, size, &mo);
	if (fd < 0) return reply_err(errno, "table-create %u: bpf_map_create(%u slots): %s", idx, size, strerror(errno));
	uint32_t *keys = malloc(4ull * size);
	if (!keys) exit(1);
	for (uint32_t i = 0; i < size; i++) keys[i] = i;
	int err = write_slots(fd, keys, (const uint32_t *)(p + 8), size);
	free(keys);
	if (err) {
		close(fd);
		return reply_err(-err, "table-create %u: filling %u slots: %s", idx, size, strerror(-err));
	}
	uint32_t v = (uint32_t)fd;
	/* One update of the outer array: a packet sees the old table or the new one, never a partial one. */
	if (bpf_map_update_elem(tables_fd, &idx, &v, BPF_ANY)) {
		err = errno;
		close(fd);
		return reply_err(err, "table-create %u: l4f_tables: %s", idx, strerror(err));
	}
	forget_inner(idx);
	inner_fd[idx] = fd;
	reply(0, NULL, 0);
}

static void table_write(const char *p, uint32_t len)
{
	if (len < 8) return reply_err(EINVAL, "table-write: short payload");
	uint32_t idx, n;
	memcpy(&idx, p, 4);
	memcpy(&n, p + 4, 4);
	if (len != 8 + 8ull * n) return reply_err(EINVAL, "table-write: %u slots but %u bytes", n, len);
	int fd = inner(idx);
	if (fd < 0) return reply_err(-fd, "table-write: no table at index %u", idx);
	int err = write_slots(fd, (const uint32_t *)(p + 8), (const uint32_t *)(p + 8 + 4ull * n), n);
	if (err) return reply_err(-err, "table-write %u: %u slots: %s", idx, n, strerror(-err));
	reply(0, NULL, 0);
}

/* ---- small maps ---- */
static int small_map(uint32_t m, uint32_t *ks, uint32_t *vs)
{
	if (m >= N_SMALL) return -1;
	struct bpf_map *map = bpf_object__find_map_by_name(obj, small_maps[m]);
	*ks = bpf_map__key_size(map);
	*vs = bpf_map__value_size(map);
	return small_fd[m];
}

static void update(const char *p, uint32_t len, int del)
{
	uint32_t m, n, ks, vs;
	if (len < 8) return reply_err(EINVAL, "update: short payload");
	memcpy(&m, p, 4);
	memcpy(&n, p + 4, 4);
	int fd = small_map(m, &ks, &vs);
	if (fd < 0) return reply_err(EINVAL, "update: no map %u", m);
	uint32_t each = del ? ks : ks + vs;
	if (len != 8 + (uint64_t)each * n) return reply_err(EINVAL, "%s: %u elements but %u bytes", small_maps[m], n, len);
	const char *e = p + 8;
	for (uint32_t i = 0; i < n; i++, e += each) {
		int r = del ? bpf_map_delete_elem(fd, e) : bpf_map_update_elem(fd, e, e + ks, BPF_ANY);
		if (r && !(del && errno == ENOENT))
			return reply_err(errno, "%s: element %u of %u: %s", small_maps[m], i, n, strerror(errno));
	}
	reply(0, NULL, 0);
}

/* Every key of a hash map with its value, after a u32 count. */
static void dump_hash(struct out *o, int fd, uint32_t ks, uint32_t vs)
{
	char key[64], next[64], val[64];
	size_t at = o->len;
	uint32_t n = 0;
	put32(o, 0);
	void *prev = NULL;
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, ks);
		prev = key;
		if (bpf_map_lookup_elem(fd, key, val)) continue; /* deleted meanwhile */
		put(o, key, ks);
		put(o, val, vs);
		n++;
	}
	memcpy(o->p + at, &n, 4);
}

/*
 * Layout: vips (u32 n, n x (key 20, value 24)); vip addresses (u32 n, n x (key 20, u32)); backends in use
 * (u32 n, n x (u32 id, backend 28)); config (u32 present, config 24); tables (u32 n, n x (u32 index,
 * u32 size, size x u32)).
 */
static void dump(void)
{
	struct out o = {0};
	dump_hash(&o, small_fd[0], sizeof(struct l4f_vip_key), sizeof(struct l4f_vip));
	dump_hash(&o, small_fd[1], sizeof(struct l4f_addr_key), sizeof(__u32));
	{
		static struct l4f_backend bs[4096];
		static uint32_t ks[4096];
		size_t at = o.len;
		uint32_t n = 0, batch = 0;
		put32(&o, 0);
		for (uint32_t start = 0; start < L4F_MAX_BACKENDS; start += 4096) {
			uint32_t count = 4096, in = start;
			LIBBPF_OPTS(bpf_map_batch_opts, bo);
			(void)batch;
			/* ARRAY lookup_batch: in_batch = the first index, out_batch = the next */
			uint32_t out_b;
			if (bpf_map_lookup_batch(small_fd[2], start ? &in : NULL, &out_b, ks, bs, &count, &bo) && errno != ENOENT)
				return reply_err(errno, "dump l4f_backends: %s", strerror(errno));
			for (uint32_t i = 0; i < count; i++) {
				if (bs[i].family == 0) continue;
				put32(&o, ks[i]);
				put(&o, &bs[i], sizeof(bs[i]));
				n++;
			}
		}
		memcpy(o.p + at, &n, 4);
	}
	{
		uint32_t zero = 0;
		struct l4f_config c;
		int have = bpf_map_lookup_elem(small_fd[3], &zero, &c) == 0;
		put32(&o, have);
		if (!have) memset(&c, 0, sizeof(c));
		put(&o, &c, sizeof(c));
	}
	{
		size_t at = o.len;
		uint32_t n = 0;
		put32(&o, 0);
		uint32_t *keys = NULL, *vals = NULL;
		for (uint32_t idx = 0; idx < L4F_MAX_TABLES; idx++) {
			int fd = inner(idx);
			if (fd < 0) continue;
			struct bpf_map_info info = {0};
			uint32_t il = sizeof(info);
			if (bpf_obj_get_info_by_fd(fd, &info, &il)) continue;
			uint32_t size = info.max_entries;
			keys = realloc(keys, 4ull * size);
			vals = realloc(vals, 4ull * size);
			if (!keys || !vals) exit(1);
			uint32_t count = size, out_b;
			LIBBPF_OPTS(bpf_map_batch_opts, bo);
			if (bpf_map_lookup_batch(fd, NULL, &out_b, keys, vals, &count, &bo) && errno != ENOENT)
				return reply_err(errno, "dump table %u: %s", idx, strerror(errno));
			if (count != size) return reply_err(EIO, "dump table %u: read %u of %u slots", idx, count, size);
			put32(&o, idx);
			put32(&o, size);
			put(&o, vals, 4ull * size);
			n++;
		}
		free(keys);
		free(vals);
		memcpy(o.p + at, &n, 4);
	}
	reply(0, o.p, (uint32_t)o.len);
	free(o.p);
}

/* Per-CPU counters of `fd` (max `n` entries), summed; nonzero ones as (u32 id, u64 packets, u64 bytes). */
static int dump_percpu(struct out *o, int fd, uint32_t n)
{
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu < 1) return -EINVAL;
	enum { CHUNK = 1024 };
	static uint32_t ks[CHUNK];
	struct l4f_counter *vs = malloc(sizeof(*vs) * CHUNK * (size_t)ncpu);
	if (!vs) exit(1);
	size_t at = o->len;
	uint32_t found = 0;
	put32(o, 0);
	for (uint32_t start = 0; start < n; start += CHUNK) {
		uint32_t count = n - start < CHUNK ? n - start : CHUNK, in = start, out_b;
		LIBBPF_OPTS(bpf_map_batch_opts, bo);
		if (bpf_map_lookup_batch(fd, start ? &in : NULL, &out_b, ks, vs, &count, &bo) && errno != ENOENT) {
			free(vs);
			return -errno;
		}
		for (uint32_t i = 0; i < count; i++) {
			uint64_t pk = 0, by = 0;
			for (int c = 0; c < ncpu; c++) {
				pk += vs[(size_t)i * ncpu + c].packets;
				by += vs[(size_t)i * ncpu + c].bytes;
			}
			if (pk == 0 && by == 0) continue;
			put32(o, ks[i]);
			put(o, &pk, 8);
			put(o, &by, 8);
			found++;
		}
	}
	free(vs);
	memcpy(o->p + at, &found, 4);
	return 0;
}

static uint32_t count_keys(int fd, uint32_t ks)
{
	char key[64], next[64];
	void *prev = NULL;
	uint32_t n = 0;
	while (n < 0x7fffffff && bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, ks);
		prev = key;
		n++;
	}
	return n;
}

/* Layout: vip counters, backend counters, stats slots (each as dump_percpu), u32 flows4, u32 flows6. */
static void stats(void)
{
	struct out o = {0};
	int err = dump_percpu(&o, vip_stats_fd, L4F_MAX_VIPS);
	if (!err) err = dump_percpu(&o, backend_stats_fd, L4F_MAX_BACKENDS);
	if (!err) err = dump_percpu(&o, stats_fd, L4F_STATS_SLOTS);
	if (err) return reply_err(-err, "stats: %s", strerror(-err));
	put32(&o, count_keys(flows4_fd, sizeof(struct l4f_flow4)));
	put32(&o, count_keys(flows6_fd, sizeof(struct l4f_flow6)));
	reply(0, o.p, (uint32_t)o.len);
	free(o.p);
}

static void clear_flows(int fd, uint32_t ks)
{
	char key[64];
	for (int i = 0; i < 100000000 && bpf_map_get_next_key(fd, NULL, key) == 0; i++) bpf_map_delete_elem(fd, key);
	(void)ks;
}

static void prog_info(void)
{
	struct bpf_prog_info info = {0};
	uint32_t il = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(prog_id);
	if (fd < 0) return reply_err(errno, "prog %u: %s", prog_id, strerror(errno));
	int r = bpf_obj_get_info_by_fd(fd, &info, &il);
	close(fd);
	if (r) return reply_err(errno, "prog %u info: %s", prog_id, strerror(errno));
	struct out o = {0};
	put32(&o, prog_id);
	put(&o, &info.run_time_ns, 8);
	put(&o, &info.run_cnt, 8);
	reply(0, o.p, (uint32_t)o.len);
	free(o.p);
}

static void remove_all(void)
{
	LIBBPF_OPTS(bpf_tc_opts, to, .handle = TC_HANDLE, .priority = TC_PRIORITY);
	int err = bpf_tc_detach(&hook, &to);
	if (err && err != -ENOENT && err != -EINVAL)
		return reply_err(-err, "detaching from ifindex %d: %s", hook.ifindex, strerror(-err));
	struct bpf_map *m;
	bpf_object__for_each_map(m, obj)
	{
		if (bpf_map__is_pinned(m) && bpf_map__unpin(m, NULL))
			return reply_err(errno, "unpinning %s: %s", bpf_map__name(m), strerror(errno));
	}
	if (rmdir(pin_dir) && errno != ENOENT) return reply_err(errno, "rmdir %s: %s", pin_dir, strerror(errno));
	reply(0, NULL, 0);
}

/* ---- start ---- */
static int prog_tag(int fd, unsigned char tag[BPF_TAG_SIZE], unsigned int *id)
{
	struct bpf_prog_info info = {0};
	uint32_t il = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &il)) return -errno;
	memcpy(tag, info.tag, BPF_TAG_SIZE);
	if (id) *id = info.id;
	return 0;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf's warnings go to stderr (the driver logs its tail when the loader fails); debug output not. */
	if (level == LIBBPF_DEBUG) return 0;
	return vfprintf(stderr, fmt, ap);
}

static int start(const char *object, const char *ifname, uint32_t flows, char *msg, size_t msglen)
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
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = pin_dir);
	obj = bpf_object__open_file(object, &oo);
	if (!obj) {
		snprintf(msg, msglen, "open %s: %s", object, strerror(errno));
		return errno;
	}
	struct bpf_map *f4 = bpf_object__find_map_by_name(obj, "l4f_flows4");
	struct bpf_map *f6 = bpf_object__find_map_by_name(obj, "l4f_flows6");
	if (!f4 || !f6 || bpf_map__set_max_entries(f4, flows) || bpf_map__set_max_entries(f6, flows)) {
		snprintf(msg, msglen, "%s: no flow maps to size", object);
		return EINVAL;
	}
	int err = bpf_object__load(obj);
	if (err) {
		snprintf(msg, msglen, "load %s (pins in %s): %s", object, pin_dir, strerror(-err));
		return -err;
	}
	for (size_t i = 0; i < N_SMALL; i++) small_fd[i] = bpf_object__find_map_fd_by_name(obj, small_maps[i]);
	tables_fd = bpf_object__find_map_fd_by_name(obj, "l4f_tables");
	flows4_fd = bpf_map__fd(f4);
	flows6_fd = bpf_map__fd(f6);
	vip_stats_fd = bpf_object__find_map_fd_by_name(obj, "l4f_vip_stats");
	backend_stats_fd = bpf_object__find_map_fd_by_name(obj, "l4f_backend_stats");
	stats_fd = bpf_object__find_map_fd_by_name(obj, "l4f_stats");
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, "l4f_node");
	prog_fd = prog ? bpf_program__fd(prog) : -1;
	if (prog_fd < 0) {
		snprintf(msg, msglen, "%s: no program l4f_node", object);
		return EINVAL;
	}
	hook.sz = sizeof(hook);
	hook.ifindex = (int)ifindex;
	hook.attach_point = BPF_TC_INGRESS;
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
		int same = fd >= 0 && prog_tag(fd, have, NULL) == 0 && memcmp(want, have, BPF_TAG_SIZE) == 0;
		if (fd >= 0) close(fd);
		if (same) {
			prog_id = q.prog_id;
			snprintf(msg, msglen, "unchanged %u", prog_id);
			return 0;
		}
	}
	LIBBPF_OPTS(bpf_tc_opts, ao, .handle = TC_HANDLE, .priority = TC_PRIORITY, .prog_fd = prog_fd,
		    .flags = BPF_TC_F_REPLACE);
	err = bpf_tc_attach(&hook, &ao);
	if (err) {
		snprintf(msg, msglen, "attach to %s ingress: %s", ifname, strerror(-err));
		return -err;
	}
	prog_id = ao.prog_id;
	snprintf(msg, msglen, "attached %u", prog_id);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s PIN_DIR OBJECT IFNAME FLOW_ENTRIES\n", argv[0]);
		return 2;
	}
	for (int i = 0; i < L4F_MAX_TABLES; i++) inner_fd[i] = -1;
	libbpf_set_print(quiet);
	snprintf(pin_dir, sizeof(pin_dir), "%s", argv[1]);
	char msg[1200];
	int err = start(argv[2], argv[3], (uint32_t)strtoul(argv[4], NULL, 10), msg, sizeof(msg));
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
		switch (h[0]) {
		case OP_UPDATE: update(buf, h[1], 0); break;
		case OP_DELETE: update(buf, h[1], 1); break;
		case OP_TABLE_CREATE: table_create(buf, h[1]); break;
		case OP_TABLE_WRITE: table_write(buf, h[1]); break;
		case OP_TABLE_DELETE: {
			uint32_t idx = 0;
			if (h[1] == 4) memcpy(&idx, buf, 4);
			if (h[1] != 4 || idx >= L4F_MAX_TABLES) {
				reply_err(EINVAL, "table-delete: bad index");
				break;
			}
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
		case OP_FLOWS_CLEAR:
			clear_flows(flows4_fd, sizeof(struct l4f_flow4));
			clear_flows(flows6_fd, sizeof(struct l4f_flow6));
			reply(0, NULL, 0);
			break;
		case OP_REMOVE: remove_all(); break;
		case OP_PROG_INFO: prog_info(); break;
		default: reply_err(EINVAL, "unknown op %u", h[0]);
		}
	}
	return 0;
}
