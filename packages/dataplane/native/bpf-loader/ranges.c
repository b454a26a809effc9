/*
 * l4f_src_ranges, the VIPs' source prefixes (an LPM trie: node-maps.h struct l4f_src_key): written and read back in
 * batches. Up to 32,768 entries (16,384 per apply at most, @l4fleet/config MAX_TOTAL_SOURCE_RANGES) one syscall
 * each would cost a first apply or a restart ~1-2 us each on this kind of VM; the kernel's generic batch ops
 * (kernel/bpf/syscall.c generic_map_update_batch, generic_map_delete_batch, generic_map_lookup_batch) loop over
 * them in one call (16,384 updates 15 ms, a read-back of 16,384 10 ms against 19 ms by get_next_key, 6.18). A kernel
 * without batch ops for the map type gets one syscall per element.
 */
#include "loader.h"

#define KS sizeof(struct l4f_src_key)

/* EINVAL or the kernel's ENOTSUPP (524, no userspace name): no batch op for this map type on this kernel. */
static int no_batch(int err) { return err == EINVAL || err == 524 || err == EOPNOTSUPP; }

/* One element at a time, from `at` on. Returns 0 or an errno; *failed = the element that failed. */
static int one_by_one(int fd, const char *keys, const uint32_t *vals, uint32_t at, uint32_t n, uint32_t *failed)
{
	for (; at < n; at++) {
		const char *k = keys + (size_t)at * KS;
		int r = vals ? bpf_map_update_elem(fd, k, &vals[at], BPF_ANY) : bpf_map_delete_elem(fd, k);
		if (r && !(vals == NULL && errno == ENOENT)) {
			*failed = at;
			return errno;
		}
	}
	return 0;
}

/*
 * Writes `n` entries of the request: (key, u32 value) pairs, or keys when `del`. A prefix to delete that is not
 * there is not an error (as for the other maps): the batch stops at it (count = the elements done before it), it is
 * skipped and the rest goes on. Returns 0 or an errno, with *failed the element that failed.
 */
int ranges_write(const char *e, uint32_t n, int del, uint32_t *failed)
{
	int fd = small_fd[SMALL_SRC_RANGES];
	const char *keys = e;
	char *own = NULL; /* the keys of an update, apart from its values */
	uint32_t *vals = NULL;
	if (!del && n > 0) {
		/* The request interleaves keys and values; a batch takes them as two arrays. */
		own = malloc((size_t)n * KS);
		vals = malloc((size_t)n * 4);
		if (!own || !vals) exit(1);
		for (uint32_t i = 0; i < n; i++) {
			memcpy(own + (size_t)i * KS, e + (size_t)i * (KS + 4), KS);
			memcpy(&vals[i], e + (size_t)i * (KS + 4) + KS, 4);
		}
		keys = own;
	}
	int err = 0;
	for (uint32_t at = 0; at < n;) {
		uint32_t count = n - at;
		LIBBPF_OPTS(bpf_map_batch_opts, bo);
		int r = del ? bpf_map_delete_batch(fd, keys + (size_t)at * KS, &count, &bo)
			    : bpf_map_update_batch(fd, keys + (size_t)at * KS, vals + at, &count, &bo);
		if (r == 0) break;
		err = errno;
		if (no_batch(err) && count == 0) {
			err = one_by_one(fd, keys, vals, at, n, failed);
			break;
		}
		at += count;
		if (!(del && err == ENOENT)) {
			*failed = at;
			break;
		}
		at++; /* the absent prefix */
		err = 0;
	}
	free(own);
	free(vals);
	return err;
}

/* The fallback of ranges_dump: every key by get_next_key. */
static int walk(struct out *o, uint32_t *n)
{
	struct l4f_src_key key, next;
	int fd = small_fd[SMALL_SRC_RANGES];
	void *prev = NULL;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		put(o, &key, KS);
		(*n)++;
	}
	return errno == ENOENT ? 0 : errno;
}

/*
 * Appends u32 n, n x key (the values are all 1: not read). The cursor of a generic batch lookup is a key (its
 * in_batch / out_batch point at key_size bytes), unlike a hash map's bucket number. Returns 0 or an errno.
 */
int ranges_dump(struct out *o)
{
	enum { CHUNK = 4096 };
	static struct l4f_src_key keys[CHUNK];
	static uint32_t vals[CHUNK];
	struct l4f_src_key in, out;
	int fd = small_fd[SMALL_SRC_RANGES];
	size_t at = o->len;
	uint32_t n = 0;
	put32(o, 0);
	for (int first = 1;; first = 0) {
		uint32_t count = CHUNK;
		LIBBPF_OPTS(bpf_map_batch_opts, bo);
		int r = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys, vals, &count, &bo);
		int err = r ? errno : 0;
		if (r && err != ENOENT) {
			if (!(first && no_batch(err))) return err;
			err = walk(o, &n);
			if (err) return err;
			break;
		}
		put(o, keys, (size_t)count * KS);
		n += count;
		if (r) break; /* ENOENT: that was the last */
		in = out;
	}
	memcpy(o->p + at, &n, 4);
	return 0;
}
