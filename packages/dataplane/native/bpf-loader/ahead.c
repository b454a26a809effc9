/*
 * Tables made ready ahead of the requests that need them, by one helper thread: the spare and the seat.
 *
 * The spare. Creating a table costs more in fresh memory than in work: the map's pages are new to the process,
 * and on a VM whose host backs guest memory lazily (~15 us per first touch of a page, docs/design/0007,
 * Measured) the first stores into a 65,537-slot table (129 pages) take 1-2 ms, the map create up to 1.8 ms.
 * The helper creates, maps and touches (writes zeros: a fresh table has no previous owners) one table of the
 * size last asked for while the loader waits for requests; a create of that size takes it and asks for the
 * next. A create that finds none (another size, or not ready yet) creates its own. The spare is never in
 * l4f_tables and never pinned: it goes with the process.
 *
 * The seat. Putting a table into l4f_tables (an ARRAY_OF_MAPS) makes the kernel wait for every running BPF
 * program to finish (kernel/bpf/syscall.c maybe_wait_bpf_programs: synchronize_rcu() after each update or
 * delete of a map-in-map), so that userspace knows no program still sees the old value. That wait is one or
 * more RCU grace periods: 7.7-15.9 ms per update on the 2026-12-03 VM (a bare libbpf loop), most of a new VIP's
 * apply. The driver says where the next new VIP's table will go (OP_TABLE_SEAT: the index of the lowest free
 * VIP id, and a size); the helper makes a fresh table and inserts it there ahead of time, paying the wait
 * off the request path. No VIP refers to that index, so no packet can reach the seat, and the dump (which
 * reads the indices of VIPs in l4f_vips only) never shows it. A create at that index and of that size fills
 * the seat through its mapping and needs no update of l4f_tables: the VIP entry's flip makes it live.
 * Any other request that touches the index first drops the seat (a create of another size replaces it as
 * before). The seat is registered in a one-entry array pinned beside the maps (SEAT_PIN: index + 1, size, map
 * id), written after the insert and cleared before any write of the table, so a restarted loader adopts a seat
 * only while it is still all zeros and unreferenced (and only the very map registered: see seat_open). A seat the
 * registry does not name (the loader killed between the insert and the registry write) is an unreferenced table:
 * the next create there replaces it. The seat's index is no VIP's, so a hand may put another table there or
 * delete it while this process runs: the seat is replaced, deleted or filled only while l4f_tables still holds
 * that very map there (holds()).
 */
#include "loader.h"

#define NONE UINT32_MAX

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER; /* the helper waits for work */
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER; /* the main thread waits for the helper */

/* The spare (never in l4f_tables). */
static int spare_fd = -1;
static uint32_t *spare_mem;
static uint32_t spare_size; /* of the ready spare */
static uint32_t spare_want; /* the size to make ready; 0 = none (or making spares failed: not retried) */

/* The seat: wanted (by the driver), being made, ready (in l4f_tables at ready_idx, registered). */
static uint32_t want_idx = NONE, want_size;
static int making;                /* the helper is making the seat for making_idx */
static uint32_t making_idx = NONE; /* cleared by a request at that index: the helper then drops its table */
static uint32_t making_size;
static uint32_t busy_idx[2] = {NONE, NONE}; /* indices whose l4f_tables entry the helper is changing */
static uint32_t ready_idx = NONE, ready_size;
static uint32_t ready_id; /* the seat's map id: what l4f_tables must still hold at ready_idx for it to be ours */
static int ready_fd = -1;
static uint32_t *ready_mem;
static int seat_reg_fd = -1;

static int is_busy(uint32_t idx) { return idx != NONE && (busy_idx[0] == idx || busy_idx[1] == idx); }

/* The id of map `fd`, or 0 (none, unreadable). */
static uint32_t map_id(int fd)
{
	struct bpf_map_info info = {0};
	uint32_t il = sizeof(info);
	return fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &il) == 0 ? info.id : 0;
}

/*
 * Whether l4f_tables[idx] holds map `id` (a lookup of a map of maps from user space gives the inner map's id).
 * The seat's index is no VIP's, so a hand (bpftool) or another process may have put a table there since the
 * seat was made, or deleted it: only the very map registered is the seat's to replace, delete or fill.
 */
static int holds(uint32_t idx, uint32_t id)
{
	uint32_t have;
	return id != 0 && bpf_map_lookup_elem(tables_fd, &idx, &have) == 0 && have == id;
}

/* The registry's value: index + 1 (0 = no seat), size, and the seat map's id (ids are not reused soon). */
static void reg_write(uint32_t idx, uint32_t size, uint32_t id)
{
	uint32_t zero = 0;
	uint32_t v[3] = {idx == NONE ? 0 : idx + 1, size, id};
	if (seat_reg_fd >= 0) bpf_map_update_elem(seat_reg_fd, &zero, v, BPF_ANY);
}

/* A table of `size` slots, created, mapped and touched; 0, or -1 (fd < 0). */
static int fresh_table(uint32_t size, int *fd, uint32_t **mem)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), len = mapped_len(size);
	*fd = create_table(size);
	void *m = *fd < 0 ? MAP_FAILED : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	if (m == MAP_FAILED) {
		if (*fd >= 0) close(*fd);
		*fd = -1;
		return -1;
	}
	for (size_t off = 0; off < len; off += page) ((volatile char *)m)[off] = 0;
	*mem = m;
	return 0;
}

static void drop_table(int fd, uint32_t *mem, uint32_t size)
{
	if (fd < 0) return;
	munmap(mem, mapped_len(size));
	close(fd);
}

/* Makes the wanted seat (called with mu held, returns with it held). */
static void make_seat(void)
{
	uint32_t idx = want_idx, size = want_size;
	want_idx = NONE;
	making = 1;
	making_idx = idx;
	making_size = size;
	pthread_mutex_unlock(&mu);
	int fd;
	uint32_t *mem;
	int ok = fresh_table(size, &fd, &mem) == 0;
	uint32_t id = ok ? map_id(fd) : 0;
	pthread_mutex_lock(&mu);
	if (ok && making_idx == idx) {
		/* The previous seat (another index, or this one of another size) leaves l4f_tables first. */
		uint32_t old = ready_idx, old_size = ready_size, old_id = ready_id;
		int old_fd = ready_fd;
		uint32_t *old_mem = ready_mem;
		ready_idx = NONE;
		ready_fd = -1;
		busy_idx[0] = idx;
		busy_idx[1] = old;
		pthread_mutex_unlock(&mu);
		reg_write(NONE, 0, 0);
		/* The previous seat's index is deleted only while it still holds that seat (holds(): by map id); a
		 * table put there since (by hand) stays. */
		if (old != NONE && old != idx && holds(old, old_id)) bpf_map_delete_elem(tables_fd, &old);
		drop_table(old_fd, old_mem, old_size);
		uint32_t v = (uint32_t)fd, have;
		/* Over an empty index, or our own previous seat there (the same map id). Another table there (a VIP's
		 * retired one, or one put there by hand, also over our previous seat) is left alone: the seat is not
		 * made. A map of maps takes BPF_ANY only, so the index is looked up first (no other thread of this
		 * process writes it meanwhile: it is busy). */
		ok = id != 0 && (bpf_map_lookup_elem(tables_fd, &idx, &have) || (old == idx && have == old_id)) &&
		     bpf_map_update_elem(tables_fd, &idx, &v, BPF_ANY) == 0;
		if (ok) reg_write(idx, size, id);
		pthread_mutex_lock(&mu);
		busy_idx[0] = busy_idx[1] = NONE;
	} else ok = 0;
	if (ok) {
		ready_idx = idx;
		ready_size = size;
		ready_id = id;
		ready_fd = fd;
		ready_mem = mem;
	} else if (fd >= 0) drop_table(fd, mem, size);
	making = 0;
	making_idx = NONE;
	pthread_cond_broadcast(&done_cv);
}

static void *helper(void *unused)
{
	(void)unused;
	/* Idle-time work: under contention (2 cores, the driver and this process's main thread busy with an
	 * apply) it yields to them. setpriority on a thread id changes that thread only (Linux). */
	setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
	pthread_mutex_lock(&mu);
	for (;;) {
		while (want_idx == NONE && (spare_fd >= 0 || spare_want == 0)) pthread_cond_wait(&work_cv, &mu);
		if (want_idx != NONE) { /* the seat first: it saves the longer wait */
			make_seat();
			continue;
		}
		uint32_t size = spare_want;
		pthread_mutex_unlock(&mu);
		int fd;
		uint32_t *m;
		int ok = fresh_table(size, &fd, &m) == 0;
		pthread_mutex_lock(&mu);
		if (!ok) spare_want = 0; /* e.g. out of memory: creates go on without spares */
		else if (spare_fd < 0 && spare_want == size) {
			spare_fd = fd;
			spare_mem = m;
			spare_size = size;
		} else drop_table(fd, m, size);
	}
	return NULL;
}

/* Starts the helper thread the first time; 0 when there is none (then no seat is wanted: nothing waits). */
static int start_helper(void)
{
	static int started;
	pthread_t t;
	if (!started && pthread_create(&t, NULL, helper, NULL) == 0) {
		pthread_detach(t);
		started = 1;
	}
	return started;
}

/* Asks for a spare of `size` slots (starting the helper thread the first time). */
void want_spare(uint32_t size)
{
	pthread_mutex_lock(&mu);
	spare_want = size;
	if (spare_fd >= 0 && spare_size != size) { /* the wrong size: replaced */
		drop_table(spare_fd, spare_mem, spare_size);
		spare_fd = -1;
	}
	pthread_cond_signal(&work_cv);
	pthread_mutex_unlock(&mu);
	start_helper();
}

/* The ready spare of `size` slots at idx (1), or 0 when there is none of that size. */
int take_spare(uint32_t idx, uint32_t size)
{
	int took = 0;
	pthread_mutex_lock(&mu);
	if (spare_fd >= 0 && spare_size == size) {
		inner_fd[idx] = spare_fd;
		inner_mem[idx] = spare_mem;
		inner_size[idx] = size;
		spare_fd = -1;
		took = 1;
	}
	pthread_mutex_unlock(&mu);
	return took;
}

/* OP_TABLE_SEAT: u32 index, u32 size. Answered at once; the helper makes the seat. */
void seat_want(const char *p, uint32_t len)
{
	uint32_t idx, size;
	if (len != 8) return reply_err(EINVAL, "table-seat: payload of %u bytes", len);
	memcpy(&idx, p, 4);
	memcpy(&size, p + 4, 4);
	if (idx >= L4F_MAX_TABLES || size == 0 || size > MAX_PAYLOAD / 4)
		return reply_err(EINVAL, "table-seat: index %u / size %u out of range", idx, size);
	int helping = start_helper();
	pthread_mutex_lock(&mu);
	int have = !helping || (ready_idx == idx && ready_size == size) || (making && making_idx == idx && making_size == size);
	if (!have) {
		want_idx = idx;
		want_size = size;
		pthread_cond_signal(&work_cv);
	}
	pthread_mutex_unlock(&mu);
	reply(0, NULL, 0);
}

/*
 * A request is about to change table `idx`: the seat there (if any) stops being one. With `size` equal to the
 * seat's, and l4f_tables still holding the seat there (by map id), it becomes table idx (inner_*) and 1 is
 * returned: the caller only fills it. Otherwise 0: the table the registry named stays in l4f_tables for the
 * caller to replace or delete (a create puts its own there at the next flush: a seat replaced or deleted by hand
 * is no longer at idx, and filling it would leave the VIP's index on the other map, or on none).
 */
int seat_take(uint32_t idx, uint32_t size)
{
	int took = 0;
	pthread_mutex_lock(&mu);
	while (is_busy(idx)) pthread_cond_wait(&done_cv, &mu);
	if (making_idx == idx) making_idx = NONE; /* the helper drops what it is making */
	if (want_idx == idx) want_idx = NONE;
	if (ready_idx == idx) {
		reg_write(NONE, 0, 0); /* before the first store into it */
		if (ready_size == size && holds(idx, ready_id)) {
			inner_fd[idx] = ready_fd;
			inner_mem[idx] = ready_mem;
			inner_size[idx] = size;
			took = 1;
		} else drop_table(ready_fd, ready_mem, ready_size);
		ready_idx = NONE;
		ready_fd = -1;
	}
	pthread_mutex_unlock(&mu);
	return took;
}

/* OP_SEAT_WAIT and the end of input: waits until the helper has made (or given up) the wanted seat. */
void seat_settle(void)
{
	pthread_mutex_lock(&mu);
	while (want_idx != NONE || making) pthread_cond_wait(&done_cv, &mu);
	pthread_mutex_unlock(&mu);
}

/* Whether a VIP in l4f_vips has table index `idx` (its id * 2 or id * 2 + 1, or its table): no seat, then. */
static int vip_table(uint32_t idx)
{
	char key[sizeof(struct l4f_vip_key)], next[sizeof(struct l4f_vip_key)];
	struct l4f_vip v;
	void *prev = NULL;
	for (uint32_t n = 0; n < L4F_MAX_VIPS && bpf_map_get_next_key(small_fd[0], prev, next) == 0; n++) {
		memcpy(key, next, sizeof(key));
		prev = key;
		if (bpf_map_lookup_elem(small_fd[0], key, &v)) continue; /* deleted meanwhile */
		if (v.id * 2 == idx || v.id * 2 + 1 == idx || v.table == idx) return 1;
	}
	return 0;
}

/* Whether the `len` bytes at `m` are all zeros (a seat is: fresh, never written; see the top of this file). */
static int all_zeros(const void *m, size_t len)
{
	const uint64_t *w = m;
	for (size_t i = 0; i < len / 8; i++)
		if (w[i]) return 0;
	return 1;
}

/*
 * At start: opens the seat registry (creating and pinning it when missing) and adopts the seat it names when
 * l4f_tables still holds that very map there, of that size, all zeros, at an index no VIP in l4f_vips has; then
 * appends " seat INDEX SIZE" to the start reply in msg. Returns 0 or an errno (msg then holds the message).
 */
int seat_open(char *msg, size_t msglen)
{
	uint32_t zero = 0, rec[3] = {0, 0, 0};
	char path[1100];
	snprintf(path, sizeof(path), "%s/%s", pin_dir, SEAT_PIN);
	int fd = pinned(SEAT_PIN);
	struct bpf_map_info ri = {0};
	uint32_t ril = sizeof(ri);
	if (fd >= 0 && (bpf_obj_get_info_by_fd(fd, &ri, &ril) || ri.value_size != sizeof(rec) ||
			bpf_map_lookup_elem(fd, &zero, rec))) {
		close(fd); /* unreadable or another layout: replaced */
		unlink(path);
		memset(rec, 0, sizeof(rec));
		fd = -1;
	}
	if (fd < 0) {
		fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, SEAT_PIN, 4, sizeof(rec), 1, NULL);
		if (fd < 0 || bpf_map_update_elem(fd, &zero, rec, BPF_ANY) || bpf_obj_pin(fd, path)) {
			int err = errno;
			snprintf(msg, msglen, "%s: %s", path, strerror(err));
			if (fd >= 0) close(fd);
			return err;
		}
	}
	seat_reg_fd = fd;
	uint32_t idx = rec[0] - 1, size = rec[1], id;
	if (rec[0] == 0 || idx >= L4F_MAX_TABLES || bpf_map_lookup_elem(tables_fd, &idx, &id)) return 0;
	/* The same map the registry names: a loader that knows no seats (an older version, run in between) may have
	 * put a VIP's table at that index, which must never be taken for a seat. */
	if (id != rec[2]) {
		reg_write(NONE, 0, 0);
		return 0;
	}
	int tfd = bpf_map_get_fd_by_id(id);
	struct bpf_map_info info = {0};
	uint32_t il = sizeof(info);
	void *m = MAP_FAILED;
	if (tfd >= 0 && !bpf_obj_get_info_by_fd(tfd, &info, &il) && info.max_entries == size)
		m = mmap(NULL, mapped_len(size), PROT_READ | PROT_WRITE, MAP_SHARED, tfd, 0);
	/* Its own promise (the top of this file): a seat is all zeros and no VIP refers to it. A registry written by
	 * hand, or by another build, may name a VIP's table: adopted, the next seat request would delete it from
	 * l4f_tables (make_seat), or a create there would keep its previous owners. */
	if (m != MAP_FAILED && (vip_table(idx) || !all_zeros(m, 8ull * size))) {
		munmap(m, mapped_len(size));
		m = MAP_FAILED;
	}
	if (m == MAP_FAILED) {
		if (tfd >= 0) close(tfd);
		reg_write(NONE, 0, 0);
		return 0;
	}
	ready_idx = idx;
	ready_size = size;
	ready_id = id;
	ready_fd = tfd;
	ready_mem = m;
	size_t at = strlen(msg); /* the start reply tells the driver (src/bpf/loader.ts parseStart) */
	snprintf(msg + at, msglen - at, " seat %u %u", idx, size);
	return 0;
}
