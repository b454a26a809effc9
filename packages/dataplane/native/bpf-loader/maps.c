/* The small maps (VIPs, VIP addresses, backends, config): updates, the dump, counters, flows, removal. */
#include "loader.h"

static int small_map(uint32_t m, uint32_t *ks, uint32_t *vs)
{
	if (m >= N_SMALL) return -1;
	*ks = small_key_size[m];
	*vs = small_value_size[m];
	return small_fd[m];
}

/*
 * A VIP id is reused once its VIP is removed, and the program only ever adds to l4f_vip_stats: a VIP entry new to
 * l4f_vips gets its id's counters zeroed on every CPU first, or it would report the removed VIP's packets as its
 * own. An entry already there (a restart, a changed table) keeps them. Returns 0 or an errno.
 */
static int zero_new_vip_stats(int fd, const char *key, const char *value)
{
	static struct l4f_vip have;
	static struct l4f_counter *zero;
	static int ncpu;
	uint32_t id;
	if (!bpf_map_lookup_elem(fd, key, &have)) return 0;
	if (errno != ENOENT) return errno;
	if (!zero) {
		ncpu = libbpf_num_possible_cpus();
		if (ncpu <= 0) return ncpu < 0 ? -ncpu : EINVAL;
		zero = calloc((size_t)ncpu, sizeof(*zero));
		if (!zero) return ENOMEM;
	}
	memcpy(&id, value, 4); /* struct l4f_vip.id */
	if (id >= L4F_MAX_VIPS) return 0; /* no counter slot: the program counts nothing for such an id */
	return bpf_map_update_elem(vip_stats_fd, &id, zero, BPF_ANY) ? errno : 0;
}

void update(const char *p, uint32_t len, int del)
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
	if (m == SMALL_SRC_RANGES) {
		uint32_t failed = 0;
		int err = ranges_write(e, n, del, &failed);
		if (err) return reply_err(err, "%s: element %u of %u: %s", small_maps[m], failed, n, strerror(err));
		return reply(0, NULL, 0);
	}
	for (uint32_t i = 0; i < n; i++, e += each) {
		int z = m == 0 && !del ? zero_new_vip_stats(fd, e, e + ks) : 0;
		if (z) return reply_err(z, "l4f_vip_stats: element %u of %u: %s", i, n, strerror(z));
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
 * u32 size, size x u32)); previous owners (u32 n, n x (u32 index, u32 count, count x (u32 slot, u32 id + 1)));
 * source ranges (u32 n, n x key 24). Sections are only ever appended: a driver reads what is there.
 */
void dump(void)
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
		/* Bounded by the array too: the loop cannot wrap past 2^32 whatever the mark (pins.c checks it). */
		for (uint32_t start = 0; start < hwm && start < L4F_MAX_BACKENDS; start += 4096) {
			uint32_t count = hwm - start < 4096 ? hwm - start : 4096, in = start - 1, out_b;
			LIBBPF_OPTS(bpf_map_batch_opts, bo);
			/* An array's lookup_batch reads from the key AFTER in_batch (kernel/bpf/syscall.c
			 * generic_map_lookup_batch: get_next_key), so a batch from `start` passes start - 1; passing
			 * start skipped ids 4096, 8192, ... (pins.c hwm_scan, 2026-12-07) */
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
	int err = ranges_dump(&o);
	if (err) {
		free(o.p);
		return reply_err(err, "dump l4f_src_ranges: %s", strerror(err));
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
		/* in_batch is the key before the first one read (see the backends' dump above) */
		uint32_t count = n - start < CHUNK ? n - start : CHUNK, in = start - 1, out_b;
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

/* Layout: vip counters, backend counters, stats slots (each as dump_percpu), u32 flows4, u32 flows6. */
void stats(void)
{
	struct out o = {0};
	int err = dump_percpu(&o, vip_stats_fd, L4F_MAX_VIPS);
	if (!err) err = dump_percpu(&o, backend_stats_fd, L4F_MAX_BACKENDS);
	if (!err) err = dump_percpu(&o, stats_fd, L4F_STATS_SLOTS);
	if (err) return reply_err(-err, "stats: %s", strerror(-err));
	put32(&o, count_flows(flows4_fd));
	put32(&o, count_flows(flows6_fd));
	reply(0, o.p, (uint32_t)o.len);
	free(o.p);
}

void prog_info(void)
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
	/* With the XDP fast path attached: the same three for its program. */
	int xfd = xdp_id ? bpf_prog_get_fd_by_id(xdp_id) : -1;
	struct bpf_prog_info xi = {0};
	il = sizeof(xi);
	if (xfd >= 0 && bpf_obj_get_info_by_fd(xfd, &xi, &il) == 0) {
		put32(&o, xdp_id);
		put(&o, &xi.run_time_ns, 8);
		put(&o, &xi.run_cnt, 8);
	}
	if (xfd >= 0) close(xfd);
	reply(0, o.p, (uint32_t)o.len);
	free(o.p);
}

void remove_all(void)
{
	LIBBPF_OPTS(bpf_tc_opts, to, .handle = TC_HANDLE, .priority = TC_PRIORITY);
	int err = bpf_tc_detach(&hook, &to);
	/* ENODEV: the interface was deleted, and its tc hook with it; the pins must go all the same. */
	if (err && err != -ENOENT && err != -EINVAL && err != -ENODEV)
		return reply_err(-err, "detaching from ifindex %d: %s", hook.ifindex, strerror(-err));
	err = xdp_detach_ours();
	if (err) return reply_err(err, "detaching XDP from ifindex %d: %s", hook.ifindex, strerror(err));
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
