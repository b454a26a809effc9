/* The slot tables: created whole (from a spare made ready off the request path) or written in place. */
#include "loader.h"

size_t mapped_len(uint32_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	return (8ull * size + page - 1) / page * page;
}

int create_table(uint32_t size)
{
	LIBBPF_OPTS(bpf_map_create_opts, mo, .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	return bpf_map_create(BPF_MAP_TYPE_ARRAY, "l4f_slots", 4, sizeof(struct l4f_slot), size, &mo);
}

/* The id of the map inner_fd[idx] holds; 0 = not read yet (a spare or a seat taken: read on the next inner()). */
static uint32_t inner_id[L4F_MAX_TABLES];

/* Tables created but not yet in l4f_tables (see tables_flush). */
static uint32_t pending[L4F_MAX_TABLES];
static uint32_t n_pending;

static int is_pending(uint32_t idx)
{
	for (uint32_t i = 0; i < n_pending; i++)
		if (pending[i] == idx) return 1;
	return 0;
}

/* Maps table `fd` (of `size` slots, map `id`, 0 = unknown) at `idx`; takes ownership of fd. */
static int map_inner(uint32_t idx, int fd, uint32_t size, uint32_t id)
{
	void *m = mmap(NULL, mapped_len(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) return -errno;
	inner_fd[idx] = fd;
	inner_mem[idx] = m;
	inner_size[idx] = size;
	inner_id[idx] = id;
	return 0;
}

/*
 * The table at `idx` in l4f_tables, mapped (opened and mapped on first use). The map held is checked against
 * l4f_tables each time (one lookup): a table deleted there by hand is reported absent (-ENOENT), so the dump
 * leaves it out and the driver's plan creates it again; one replaced there (another map) is opened instead. A
 * loader that kept its own fd would read and write a map no packet reaches. A table created by this apply and
 * not yet flushed (tables_flush) is not in l4f_tables yet: it is the one.
 */
int inner(uint32_t idx)
{
	if (idx >= L4F_MAX_TABLES) return -EINVAL;
	if (inner_fd[idx] >= 0 && is_pending(idx)) return 0;
	uint32_t id;
	if (bpf_map_lookup_elem(tables_fd, &idx, &id)) {
		forget_inner(idx);
		return -ENOENT;
	}
	if (inner_fd[idx] >= 0) {
		if (inner_id[idx] == 0) {
			struct bpf_map_info mi = {0};
			uint32_t ml = sizeof(mi);
			if (bpf_obj_get_info_by_fd(inner_fd[idx], &mi, &ml) == 0) inner_id[idx] = mi.id;
		}
		if (inner_id[idx] == id) return 0;
		forget_inner(idx);
	}
	int fd = bpf_map_get_fd_by_id(id);
	if (fd < 0) return -errno;
	struct bpf_map_info info = {0};
	uint32_t il = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &il)) {
		int err = -errno;
		close(fd);
		return err;
	}
	int err = map_inner(idx, fd, info.max_entries, info.id);
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
		inner_id[idx] = 0;
	}
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
	int err, seated = seat_take(idx, size);
	if (!seated && !take_spare(idx, size)) {
		int fd = create_table(size);
		if (fd < 0)
			return reply_err(errno, "table-create %u: bpf_map_create(%u slots): %s", idx, size, strerror(errno));
		err = map_inner(idx, fd, size, 0);
		if (err) {
			close(fd);
			return reply_err(-err, "table-create %u: mmap of %u slots: %s", idx, size, strerror(-err));
		}
	}
	want_spare(size); /* the next one of this size, made ready while this process waits */
	/* Filled before it is reachable: no packet can see it half written. */
	const uint32_t *vals = (const uint32_t *)(p + 8);
	uint32_t *slots = inner_mem[idx];
	for (uint32_t s = 0; s < size; s++) slots[SLOT_STRIDE * s] = vals[s];
	/* The seat is in l4f_tables already; another table goes there at the next flush (tables_flush). */
	if (!seated) {
		uint32_t i = 0;
		while (i < n_pending && pending[i] != idx) i++;
		if (i == n_pending) pending[n_pending++] = idx;
	}
	reply(0, NULL, 0);
}

/*
 * Deferred inserts into l4f_tables. Every update of a map of maps waits for an RCU grace period in the kernel
 * (maybe_wait_bpf_programs: 8-16 ms on the 2026-12-03 VM), but a batch update waits once for the whole batch
 * (since Linux 6.8; before, once per element). An apply's table creates come together, before the VIP entries
 * that make them reachable (src/bpf/plan.ts), so the loader fills each new table at once and puts them all
 * into l4f_tables with one batch, before the first request that is not a table create or write (main.c):
 * 100 new VIPs cost one wait instead of 100. A table not yet in l4f_tables is reachable by no VIP, so a packet
 * still sees the old table or the whole new one. Returns 0, or an errno with the message in msg; then the
 * tables not inserted are forgotten (no VIP refers to them: the request that would have is refused).
 */
int tables_flush(char *msg, size_t msglen)
{
	if (n_pending == 0) return 0;
	static uint32_t vals[L4F_MAX_TABLES];
	for (uint32_t i = 0; i < n_pending; i++) vals[i] = (uint32_t)inner_fd[pending[i]];
	uint32_t done = n_pending;
	LIBBPF_OPTS(bpf_map_batch_opts, bo, .elem_flags = BPF_ANY);
	int err = bpf_map_update_batch(tables_fd, pending, vals, &done, &bo) ? errno : 0;
	if (err && done == 0 && (err == EINVAL || err == EOPNOTSUPP || err == 524 /* ENOTSUPP */)) {
		/* A kernel without batch updates of a map of maps: one at a time. */
		for (err = 0; done < n_pending; done++)
			if (bpf_map_update_elem(tables_fd, &pending[done], &vals[done], BPF_ANY)) {
				err = errno;
				break;
			}
	}
	if (err) {
		snprintf(msg, msglen, "table %u (and %u after it): l4f_tables: %s", pending[done], n_pending - done - 1,
			 strerror(err));
		for (uint32_t i = done; i < n_pending; i++) forget_inner(pending[i]);
	}
	n_pending = 0;
	return err;
}

/* half 0: the slots' backend ids (OP_TABLE_WRITE); half 1: their previous owners (OP_TABLE_PREV). */
void table_write(const char *p, uint32_t len, uint32_t half)
{
	if (len < 8) return reply_err(EINVAL, "table-write: short payload");
	uint32_t idx, n;
	memcpy(&idx, p, 4);
	memcpy(&n, p + 4, 4);
	if (len != 8 + 8ull * n) return reply_err(EINVAL, "table-write: %u slots but %u bytes", n, len);
	if (idx < L4F_MAX_TABLES) seat_take(idx, 0); /* a written table is no seat */
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
