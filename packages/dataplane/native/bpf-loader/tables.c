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
	if (seated) return reply(0, NULL, 0); /* already in l4f_tables, unreachable until the VIP flips to it */
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
