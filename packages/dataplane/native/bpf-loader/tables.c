/* The slot tables: created whole (from a spare made ready off the request path) or written in place. */
#include "loader.h"

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
int inner(uint32_t idx)
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

void forget_inner(uint32_t idx)
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
void want_spare(uint32_t size)
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

void table_create(const char *p, uint32_t len)
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
void table_write(const char *p, uint32_t len, uint32_t half)
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
