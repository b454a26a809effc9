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
 * Usage: l4fleet-bpf [--netns NAME] PIN_DIR OBJECT IFNAME FLOW_ENTRIES
 *   PIN_DIR must be inside a mounted bpffs (the driver mounts one). FLOW_ENTRIES sizes both flow LRUs; a
 *   pinned flow map of another size is refused by libbpf ("couldn't reuse pinned map").
 *   --netns: first of all, setns() into the network namespace /run/netns/NAME (`ip netns add`). Only the
 *   network namespace changes, as with `nsenter --net`: the mounts stay the caller's, so PIN_DIR is the same
 *   bpffs the driver sees (`ip netns exec` would give a private /sys). One exec less than nsenter + loader.
 * Protocol (binary, host byte order): each request is  u32 op, u32 length, payload;  each reply is
 *   u32 status (0 = ok, else an errno), u32 length, payload (data, or the error text). Requests are answered
 *   in order, so a client may send several before reading. The first reply, unrequested, tells how the
 *   start went: "attached PROG_ID FROM" / "unchanged PROG_ID FROM", FROM being "pins" (the restart fast path:
 *   the pinned maps opened by path, the object file only hashed, never parsed) or "object" (opened with
 *   libbpf), or an error (then the process exits 1).
 * Ops and payloads are listed at enum op below; layouts of keys and values are in native/bpf/node-maps.h.
 */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
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
	OP_TABLE_PREV = 11,  /* u32 index, u32 n, n x u32 slot, n x u32 previous owner id + 1 (0 none): second chance */
};

/* Small maps written element by element: index in the OP_UPDATE/OP_DELETE `map` field. */
static const char *const small_maps[] = {"l4f_vips", "l4f_vip_addrs", "l4f_backends", "l4f_config"};
#define N_SMALL (sizeof(small_maps) / sizeof(small_maps[0]))

/* What node-maps.h says each small map's key and value are: a pinned map of other sizes is not ours to write. */
static const uint32_t small_key_size[N_SMALL] = {sizeof(struct l4f_vip_key), sizeof(struct l4f_addr_key), 4, 4};
static const uint32_t small_value_size[N_SMALL] = {sizeof(struct l4f_vip), 4, sizeof(struct l4f_backend),
						   sizeof(struct l4f_config)};

static struct bpf_object *obj; /* NULL after a start over the pins (fast path) */
static int small_fd[N_SMALL];
static int tables_fd, flows4_fd, flows6_fd, vip_stats_fd, backend_stats_fd, stats_fd;
static int inner_fd[L4F_MAX_TABLES];
/* Each table's slots, mapped shared (BPF_F_MMAPABLE): writes are plain stores the program sees at once. */
static uint32_t *inner_mem[L4F_MAX_TABLES];
static uint32_t inner_size[L4F_MAX_TABLES];
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

/* Room for n more bytes at o->p + o->len. */
static void reserve(struct out *o, size_t n)
{
	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->len + n) cap *= 2;
		o->p = realloc(o->p, cap);
		if (!o->p) exit(1);
		o->cap = cap;
	}
}

static void put(struct out *o, const void *d, size_t n)
{
	reserve(o, n);
	memcpy(o->p + o->len, d, n);
	o->len += n;
}

static void put32(struct out *o, uint32_t v) { put(o, &v, 4); }

/* ---- pins ---- */
/* An fd for the pinned map `name`, or -1. */
static int pinned(const char *name)
{
	char path[1100];
	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	return bpf_obj_get(path);
}

/*
 * The backends' high-water mark: every backend id ever written is below it, so a restart's dump reads
 * l4f_backends up to the mark (100 entries for 100 backends) instead of all 65,536 (1.8 MB through the batch
 * lookup, ~8 ms of a restart). The loader is the only writer of l4f_backends and raises the mark BEFORE it
 * writes an id at or above it, so the mark is never too low whatever fails in between. It lives in a
 * one-entry array the loader creates and pins itself beside the object's maps (HWM_PIN; not in node-maps.h:
 * the program never reads it, and a new map in the object would change its pinned definitions). Pins of an
 * older loader have none: the first start scans the whole array once and pins the mark.
 */
#define HWM_PIN "l4f_backend_hwm"
static int hwm_fd = -1;
static uint32_t hwm;

/* The highest id in use + 1 by a scan of the whole array (batches of 4,096). Returns 0 or an errno. */
static int scan_backends(uint32_t *mark)
{
	static struct l4f_backend bs[4096];
	static uint32_t ks[4096];
	*mark = 0;
	for (uint32_t start = 0; start < L4F_MAX_BACKENDS; start += 4096) {
		uint32_t count = 4096, in = start, out_b;
		LIBBPF_OPTS(bpf_map_batch_opts, bo);
		if (bpf_map_lookup_batch(small_fd[2], start ? &in : NULL, &out_b, ks, bs, &count, &bo) && errno != ENOENT)
			return errno;
		for (uint32_t i = 0; i < count; i++)
			if (bs[i].family != 0 && ks[i] + 1 > *mark) *mark = ks[i] + 1;
	}
	return 0;
}

/*
 * Opens the pinned mark, or creates and pins it: 0 when l4f_backends was just created (`fresh`), else by a
 * scan. Returns 0 or an errno (message in msg).
 */
static int hwm_open(int fresh, char *msg, size_t msglen)
{
	uint32_t zero = 0;
	int fd = pinned(HWM_PIN);
	if (fd >= 0 && !fresh) {
		if (bpf_map_lookup_elem(fd, &zero, &hwm) == 0) {
			hwm_fd = fd;
			return 0;
		}
		close(fd); /* unreadable: replaced below */
		fd = -1;
	}
	uint32_t mark = 0;
	int err = fresh ? 0 : scan_backends(&mark);
	if (err) {
		snprintf(msg, msglen, "reading l4f_backends for its high-water mark: %s", strerror(err));
		return err;
	}
	char path[1100];
	snprintf(path, sizeof(path), "%s/%s", pin_dir, HWM_PIN);
	if (fd < 0) {
		unlink(path); /* an unreadable one */
		fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, HWM_PIN, 4, 4, 1, NULL);
		if (fd < 0 || bpf_map_update_elem(fd, &zero, &mark, BPF_ANY) || bpf_obj_pin(fd, path)) {
			err = errno;
			snprintf(msg, msglen, "%s: %s", path, strerror(err));
			if (fd >= 0) close(fd);
			return err;
		}
	} else if (bpf_map_update_elem(fd, &zero, &mark, BPF_ANY)) {
		err = errno;
		snprintf(msg, msglen, "%s: %s", path, strerror(err));
		close(fd);
		return err;
	}
	hwm_fd = fd;
	hwm = mark;
	return 0;
}

/* Raises the mark to `mark` (before ids below it are written). Returns 0 or an errno. */
static int hwm_raise(uint32_t mark)
{
	if (mark <= hwm) return 0;
	uint32_t zero = 0;
	if (bpf_map_update_elem(hwm_fd, &zero, &mark, BPF_ANY)) return errno;
	hwm = mark;
	return 0;
}

/* ---- slot tables ---- */
/*
 * An array map stores each value in round_up(value_size, 8) bytes (kernel/bpf/arraymap.c). A slot is struct
 * l4f_slot (8 bytes): the backend id at byte 8 * s of the mapping, the previous owner (id + 1, 0 = none) at 8 * s + 4.
 */
#define SLOT_STRIDE 2 /* in uint32_t */

static size_t mapped_len(uint32_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	return (8ull * size + page - 1) / page * page;
}

/* Maps table `fd` (of `size` slots) at `idx`; takes ownership of fd. */
static int map_inner(uint32_t idx, int fd, uint32_t size)
{
	void *m = mmap(NULL, mapped_len(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) return -errno;
	inner_fd[idx] = fd;
	inner_mem[idx] = m;
	inner_size[idx] = size;
	return 0;
}

/* The table at `idx` in l4f_tables, mapped (opened and mapped on first use). */
static int inner(uint32_t idx)
{
	if (idx >= L4F_MAX_TABLES) return -EINVAL;
	if (inner_fd[idx] >= 0) return 0;
	uint32_t id;
	if (bpf_map_lookup_elem(tables_fd, &idx, &id)) return -ENOENT;
	int fd = bpf_map_get_fd_by_id(id);
	if (fd < 0) return -errno;
	struct bpf_map_info info = {0};
	uint32_t il = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &il)) {
		int err = -errno;
		close(fd);
		return err;
	}
	int err = map_inner(idx, fd, info.max_entries);
	if (err) close(fd);
	return err;
}

static void forget_inner(uint32_t idx)
{
	if (idx < L4F_MAX_TABLES && inner_fd[idx] >= 0) {
		munmap(inner_mem[idx], mapped_len(inner_size[idx]));
		close(inner_fd[idx]);
		inner_fd[idx] = -1;
		inner_mem[idx] = NULL;
	}
}

/*
 * A spare table, made ready off the request path. Creating a table costs more in fresh memory than in work:
 * the map's pages are new to the process, and on a VM whose host backs guest memory lazily (this project's
 * 2-core VM: ~15 us per first touch of a page, docs/design/0007, Measured) the first stores into a
 * 65,537-slot table (129 pages) take 1-2 ms, the map create up to 1.8 ms. A helper thread creates, maps
 * and touches (writes zeros: a fresh table has no previous owners) one table of the size last asked for
 * (the default M at start) while the loader waits for requests; a create of that size takes it and asks
 * for the next. A create that finds none (another size, or not ready yet) creates its own as before. The
 * spare is never in l4f_tables and never pinned: it goes with the process.
 */
static pthread_mutex_t spare_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t spare_cv = PTHREAD_COND_INITIALIZER;
static int spare_fd = -1;
static uint32_t *spare_mem;
static uint32_t spare_size; /* of the ready spare */
static uint32_t spare_want; /* the size to make ready; 0 = none (or making spares failed: not retried) */

static int create_table(uint32_t size)
{
	LIBBPF_OPTS(bpf_map_create_opts, mo, .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	return bpf_map_create(BPF_MAP_TYPE_ARRAY, "l4f_slots", 4, sizeof(struct l4f_slot), size, &mo);
}

static void *spare_worker(void *unused)
{
	(void)unused;
	/* Idle-time work: under contention (2 cores, the driver and this process's main thread busy with an
	 * apply) it yields to them. setpriority on a thread id changes that thread only (Linux). */
	setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	pthread_mutex_lock(&spare_mu);
	for (;;) {
		while (spare_fd >= 0 || spare_want == 0) pthread_cond_wait(&spare_cv, &spare_mu);
		uint32_t size = spare_want;
		pthread_mutex_unlock(&spare_mu);
		int fd = create_table(size);
		void *m = fd < 0 ? MAP_FAILED : mmap(NULL, mapped_len(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m != MAP_FAILED)
			for (size_t off = 0; off < mapped_len(size); off += page) ((volatile char *)m)[off] = 0;
		pthread_mutex_lock(&spare_mu);
		if (m == MAP_FAILED) {
			if (fd >= 0) close(fd);
			spare_want = 0; /* e.g. out of memory: creates go on without spares */
		} else if (spare_fd < 0 && spare_want == size) {
			spare_fd = fd;
			spare_mem = m;
			spare_size = size;
		} else {
			munmap(m, mapped_len(size));
			close(fd);
		}
	}
	return NULL;
}

/* Asks for a spare of `size` slots (starting the helper thread the first time). */
static void want_spare(uint32_t size)
{
	static int started;
	pthread_mutex_lock(&spare_mu);
	spare_want = size;
	if (spare_fd >= 0 && spare_size != size) { /* the wrong size: replaced */
		munmap(spare_mem, mapped_len(spare_size));
		close(spare_fd);
		spare_fd = -1;
	}
	pthread_cond_signal(&spare_cv);
	pthread_mutex_unlock(&spare_mu);
	pthread_t t;
	if (!started && pthread_create(&t, NULL, spare_worker, NULL) == 0) {
		pthread_detach(t);
		started = 1;
	}
}

/* The ready spare of `size` slots at idx (1), or 0 when there is none of that size. */
static int take_spare(uint32_t idx, uint32_t size)
{
	int took = 0;
	pthread_mutex_lock(&spare_mu);
	if (spare_fd >= 0 && spare_size == size) {
		inner_fd[idx] = spare_fd;
		inner_mem[idx] = spare_mem;
		inner_size[idx] = size;
		spare_fd = -1;
		took = 1;
	}
	pthread_mutex_unlock(&spare_mu);
	return took;
}

static void table_create(const char *p, uint32_t len)
{
	if (len < 8) return reply_err(EINVAL, "table-create: short payload");
	uint32_t idx, size;
	memcpy(&idx, p, 4);
	memcpy(&size, p + 4, 4);
	if (idx >= L4F_MAX_TABLES || size == 0 || len != 8 + 4ull * size)
		return reply_err(EINVAL, "table-create: index %u / size %u / payload %u do not fit", idx, size, len);
	forget_inner(idx);
	int err;
	if (!take_spare(idx, size)) {
		int fd = create_table(size);
		if (fd < 0)
			return reply_err(errno, "table-create %u: bpf_map_create(%u slots): %s", idx, size, strerror(errno));
		err = map_inner(idx, fd, size);
		if (err) {
			close(fd);
			return reply_err(-err, "table-create %u: mmap of %u slots: %s", idx, size, strerror(-err));
		}
	}
	want_spare(size); /* the next one of this size, made ready while this process waits */
	int fd = inner_fd[idx];
	/* Filled before it is reachable: no packet can see it half written. */
	const uint32_t *vals = (const uint32_t *)(p + 8);
	uint32_t *slots = inner_mem[idx];
	for (uint32_t s = 0; s < size; s++) slots[SLOT_STRIDE * s] = vals[s];
	uint32_t v = (uint32_t)fd;
	/* One update of the outer array: a packet sees the old table or the new one, never a partial one. */
	if (bpf_map_update_elem(tables_fd, &idx, &v, BPF_ANY)) {
		err = errno;
		forget_inner(idx);
		return reply_err(err, "table-create %u: l4f_tables: %s", idx, strerror(err));
	}
	reply(0, NULL, 0);
}

/* half 0: the slots' backend ids (OP_TABLE_WRITE); half 1: their previous owners (OP_TABLE_PREV). */
static void table_write(const char *p, uint32_t len, uint32_t half)
{
	if (len < 8) return reply_err(EINVAL, "table-write: short payload");
	uint32_t idx, n;
	memcpy(&idx, p, 4);
	memcpy(&n, p + 4, 4);
	if (len != 8 + 8ull * n) return reply_err(EINVAL, "table-write: %u slots but %u bytes", n, len);
	int err = inner(idx);
	if (err) return reply_err(-err, "table-write: no table at index %u", idx);
	const uint32_t *keys = (const uint32_t *)(p + 8), *vals = keys + n;
	for (uint32_t i = 0; i < n; i++)
		if (keys[i] >= inner_size[idx])
			return reply_err(ERANGE, "table-write %u: slot %u of a %u-slot table", idx, keys[i], inner_size[idx]);
	/* Aligned 4-byte stores: each slot changes atomically for the program (both values are valid). */
	volatile uint32_t *slots = inner_mem[idx];
	for (uint32_t i = 0; i < n; i++) slots[SLOT_STRIDE * keys[i] + half] = vals[i];
	reply(0, NULL, 0);
}

/* ---- small maps ---- */
static int small_map(uint32_t m, uint32_t *ks, uint32_t *vs)
{
	if (m >= N_SMALL) return -1;
	*ks = small_key_size[m];
	*vs = small_value_size[m];
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
	if (m == 2 && !del) {
		uint32_t mark = 0, id;
		for (uint32_t i = 0; i < n; i++) {
			memcpy(&id, e + (size_t)i * each, 4);
			if (id < L4F_MAX_BACKENDS && id + 1 > mark) mark = id + 1; /* others: the kernel refuses (E2BIG) */
		}
		int err = hwm_raise(mark);
		if (err) return reply_err(err, "%s: high-water mark %u: %s", HWM_PIN, mark, strerror(err));
	}
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
 * u32 size, size x u32)); previous owners (u32 n, n x (u32 index, u32 count, count x (u32 slot, u32 id + 1))).
 */
static void dump(void)
{
	struct out o = {0};
	dump_hash(&o, small_fd[0], sizeof(struct l4f_vip_key), sizeof(struct l4f_vip));
	dump_hash(&o, small_fd[1], sizeof(struct l4f_addr_key), sizeof(__u32));
	{
		/* Ids below the high-water mark only (see HWM_PIN). */
		static struct l4f_backend bs[4096];
		static uint32_t ks[4096];
		size_t at = o.len;
		uint32_t n = 0;
		put32(&o, 0);
		for (uint32_t start = 0; start < hwm; start += 4096) {
			uint32_t count = hwm - start < 4096 ? hwm - start : 4096, in = start, out_b;
			LIBBPF_OPTS(bpf_map_batch_opts, bo);
			/* ARRAY lookup_batch: in_batch = the first index, out_batch = the next */
			if (bpf_map_lookup_batch(small_fd[2], start ? &in : NULL, &out_b, ks, bs, &count, &bo) &&
			    errno != ENOENT) {
				int err = errno;
				free(o.p);
				return reply_err(err, "dump l4f_backends: %s", strerror(err));
			}
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
		/*
		 * Only the two table indices of each VIP in l4f_vips (id * 2, id * 2 + 1): a lookup per possible
		 * index would cost 8,192 syscalls per restart. A table of a VIP removed just before the agent stopped
		 * (before the driver's sweep) is not seen and stays allocated until the index is used again.
		 */
		uint32_t ids[L4F_MAX_VIPS];
		uint32_t nids = 0;
		{
			char key[sizeof(struct l4f_vip_key)], next[sizeof(struct l4f_vip_key)];
			struct l4f_vip v;
			void *prev = NULL;
			while (nids < L4F_MAX_VIPS && bpf_map_get_next_key(small_fd[0], prev, next) == 0) {
				memcpy(key, next, sizeof(key));
				prev = key;
				if (bpf_map_lookup_elem(small_fd[0], key, &v) == 0 && v.id < L4F_MAX_VIPS) ids[nids++] = v.id;
			}
		}
		for (uint32_t k = 0; k < 2 * nids; k++) {
			uint32_t idx = ids[k / 2] * 2 + (k & 1);
			if (inner(idx)) continue;
			put32(&o, idx);
			put32(&o, inner_size[idx]);
			/* The backend ids without the previous owners between them (one reservation, then plain loads). */
			reserve(&o, 4ull * inner_size[idx]);
			uint32_t *to = (uint32_t *)(o.p + o.len);
			for (uint32_t s = 0; s < inner_size[idx]; s++) to[s] = inner_mem[idx][SLOT_STRIDE * s];
			o.len += 4ull * inner_size[idx];
			n++;
		}
		memcpy(o.p + at, &n, 4);
		/* Second chance, appended: per table above with any previous owner, (u32 index, u32 count, count x
		 * (u32 slot, u32 previous id + 1)) for the slots that have one. */
		size_t pat = o.len;
		uint32_t pn = 0;
		put32(&o, 0);
		for (uint32_t k = 0; k < 2 * nids; k++) {
			uint32_t idx = ids[k / 2] * 2 + (k & 1);
			if (inner_fd[idx] < 0) continue;
			size_t cat = 0;
			uint32_t c = 0;
			for (uint32_t s = 0; s < inner_size[idx]; s++) {
				uint32_t pv = inner_mem[idx][SLOT_STRIDE * s + 1];
				if (pv == 0) continue;
				if (c == 0) {
					put32(&o, idx);
					cat = o.len;
					put32(&o, 0);
				}
				put32(&o, s);
				put32(&o, pv);
				c++;
			}
			if (c > 0) {
				memcpy(o.p + cat, &c, 4);
				pn++;
			}
		}
		memcpy(o.p + pat, &pn, 4);
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

/*
 * Empties a flow LRU in one pass over its buckets. Deleting key by key with get_next_key(NULL) restarted every
 * walk at bucket 0 and rescanned the emptied buckets: quadratic in the bucket count (a 262,144-entry LRU with
 * 60,000 flows did not clear in 30 s). BPF_MAP_LOOKUP_AND_DELETE_BATCH on a hash map (LRU included) walks the
 * buckets once, its cursor being the next bucket (kernel/bpf/hashtab.c __htab_map_lookup_and_delete_batch);
 * ENOENT marks the end. A kernel without it (before 5.6) gets the fallback: one get_next_key walk from the
 * previous key collecting a chunk, deleting the chunk's keys except the last (the walk's cursor), which goes
 * with the next chunk. Flows the program adds meanwhile may survive either way: a clear is a point in time.
 * Returns 0 or an errno.
 */
#define CLEAR_CHUNK 4096
static int clear_flows(int fd, uint32_t ks)
{
	static char keys[CLEAR_CHUNK * 64];
	static struct l4f_flow_value vals[CLEAR_CHUNK];
	uint32_t in = 0, out = 0;
	for (int round = 0; round < 1000000; round++) {
		uint32_t count = CLEAR_CHUNK;
		LIBBPF_OPTS(bpf_map_batch_opts, bo);
		int r = bpf_map_lookup_and_delete_batch(fd, round ? &in : NULL, &out, keys, vals, &count, &bo);
		if (r && errno == ENOENT) return 0; /* the last buckets: what they held is deleted too */
		/* 524 is the kernel's ENOTSUPP (no userspace name): the map type has no such batch op */
		if (r && (errno == EINVAL || errno == 524 || errno == EOPNOTSUPP) && round == 0) break;
		if (r) return errno; /* ENOSPC: a bucket with more than CLEAR_CHUNK flows, not possible at jhash's spread */
		in = out;
	}
	char prev[64], next[64];
	int have = 0;
	for (int round = 0; round < 1000000; round++) {
		uint32_t n = 0;
		if (have) memcpy(keys, prev, ks), n = 1; /* the previous chunk's last key: deleted with this chunk */
		while (n < CLEAR_CHUNK && bpf_map_get_next_key(fd, have ? prev : NULL, next) == 0) {
			memcpy(prev, next, ks);
			memcpy(keys + (size_t)n * ks, next, ks);
			have = 1;
			n++;
		}
		int more = n == CLEAR_CHUNK;
		for (uint32_t i = 0; i < n - (more ? 1 : 0); i++) bpf_map_delete_elem(fd, keys + (size_t)i * ks);
		if (!more) return 0;
	}
	return 0;
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
	/*
	 * Every pin in the directory: the object's maps and the loader's own (HWM_PIN). Read from the directory, not
	 * from the object: a start over the pins has no object open.
	 */
	DIR *d = opendir(pin_dir);
	if (!d && errno != ENOENT) return reply_err(errno, "opendir %s: %s", pin_dir, strerror(errno));
	for (struct dirent *e; d && (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
		char path[1100];
		snprintf(path, sizeof(path), "%s/%s", pin_dir, e->d_name);
		if (unlink(path) && errno != ENOENT) {
			int e2 = errno;
			closedir(d);
			return reply_err(e2, "unpinning %s: %s", path, strerror(e2));
		}
	}
	if (d) closedir(d);
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
 * The restart fast path, taken before the object is opened: l4f_meta says the program attached at our tc
 * handle is the one this object file (same hash) produced, with flow maps of the asked size, and that program
 * is still the one attached. Then nothing needs loading or even parsing (bpf_object__open_file reads the
 * 160-200 KB ELF and its BTF; bpf_object__load runs the verifier): the pins are opened by path. Anything else
 * (no meta, another hash or flow size, another or no program attached, a pin missing or of another layout)
 * returns 0 and the start takes the full path.
 */
static int reuse(uint64_t hash, uint32_t flows)
{
	struct l4f_meta meta;
	uint32_t zero = 0;
	int mfd = pinned("l4f_meta");
	if (mfd < 0) return 0;
	int ok = bpf_map_lookup_elem(mfd, &zero, &meta) == 0 && hash != 0 && meta.object_hash == hash &&
		 meta.flows == flows;
	close(mfd);
	LIBBPF_OPTS(bpf_tc_opts, q, .handle = TC_HANDLE, .priority = TC_PRIORITY);
	if (!ok || bpf_tc_query(&hook, &q) != 0 || q.prog_id != meta.prog_id) return 0;
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

/* The full path: open and load the object (libbpf reuses the pins that match), attach unless the same program
 * is attached. */
static int load(const char *object, uint64_t hash, uint32_t flows, const char *ifname, char *msg, size_t msglen)
{
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
		int same = fd >= 0 && prog_tag(fd, have, NULL) == 0 && memcmp(want, have, BPF_TAG_SIZE) == 0;
		if (fd >= 0) close(fd);
		if (same) {
			prog_id = q.prog_id;
			remember(hash, flows);
			snprintf(msg, msglen, "unchanged %u object", prog_id);
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
	remember(hash, flows);
	snprintf(msg, msglen, "attached %u object", prog_id);
	return 0;
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
	hook.sz = sizeof(hook);
	hook.ifindex = (int)ifindex;
	hook.attach_point = BPF_TC_INGRESS;
	uint64_t hash = file_hash(object);
	if (reuse(hash, flows)) {
		snprintf(msg, msglen, "unchanged %u pins", prog_id);
		return hwm_open(0, msg, msglen); /* msg is only written on failure */
	}
	/* l4f_backends is created by this load when it has no pin yet: its high-water mark is then 0. */
	char path[1100];
	snprintf(path, sizeof(path), "%s/l4f_backends", pin_dir);
	int fresh = access(path, F_OK) != 0;
	int err = load(object, hash, flows, ifname, msg, msglen);
	if (err) return err;
	err = hwm_open(fresh, msg, msglen); /* msg is only written on failure */
	/* A first start on this host: the first apply creates every VIP's table, so one of the default M is made
	 * ready now (a restart over pins most often creates none). */
	if (!err && fresh) want_spare(L4F_DEFAULT_TABLE_SLOTS);
	return err;
}

/* Joins the network namespace named NAME (ip netns: a bind mount at /run/netns/NAME). Returns 0 or an errno. */
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
	const char *netns = NULL;
	if (argc == 7 && !strcmp(argv[1], "--netns")) {
		netns = argv[2];
		argv += 2;
		argc -= 2;
	}
	if (argc != 5) {
		fprintf(stderr, "usage: %s [--netns NAME] PIN_DIR OBJECT IFNAME FLOW_ENTRIES\n", argv[0]);
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
		case OP_TABLE_WRITE: table_write(buf, h[1], 0); break;
		case OP_TABLE_PREV: table_write(buf, h[1], 1); break;
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
		case OP_FLOWS_CLEAR: {
			int e4 = clear_flows(flows4_fd, sizeof(struct l4f_flow4));
			int e6 = e4 ? 0 : clear_flows(flows6_fd, sizeof(struct l4f_flow6));
			if (e4 || e6) reply_err(e4 ? e4 : e6, "flows-clear l4f_flows%d: %s", e4 ? 4 : 6, strerror(e4 ? e4 : e6));
			else reply(0, NULL, 0);
			break;
		}
		case OP_REMOVE: remove_all(); break;
		case OP_PROG_INFO: prog_info(); break;
		default: reply_err(EINVAL, "unknown op %u", h[0]);
		}
	}
	return 0;
}
