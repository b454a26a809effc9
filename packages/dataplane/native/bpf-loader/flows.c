/*
 * The flow caches (l4f_flows4 / l4f_flows6: arrays of struct l4f_flow_set, node-core.h "The flow cache"), counted
 * and emptied in place through a mapping of the array (BPF_F_MMAPABLE): one pass over its memory, where a hash map
 * took a syscall per key (or per batch).
 */

#include "loader.h"

/* Sets of the flow caches for `flows` remembered flows (flowTableSize): at least one. */
uint32_t flow_sets(uint32_t flows)
{
	return flows > L4F_FLOW_WAYS ? (flows + L4F_FLOW_WAYS - 1) / L4F_FLOW_WAYS : 1;
}

/*
 * Whether the pinned flow caches, when there are any, hold `flows` flows. libbpf refuses to reuse a pin of another
 * size ("couldn't reuse pinned map ...: parameter mismatch", on stderr) and the load fails with EINVAL alone; this
 * says it in the driver's terms. A pin of another layout (an older build's flow LRU) is not compared: pins_fit
 * makes it anew (layout.c). Returns 0 or EINVAL (msg then says which map and both sizes).
 */
int flows_pinned_size(uint32_t flows, char *msg, size_t msglen)
{
	static const char *const names[] = {"l4f_flows4", "l4f_flows6"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int fd = pinned(names[i]);
		if (fd < 0) continue;
		struct bpf_map_info info = {0};
		uint32_t il = sizeof(info);
		int got = bpf_obj_get_info_by_fd(fd, &info, &il) == 0;
		close(fd);
		if (got && info.type == BPF_MAP_TYPE_ARRAY && info.value_size == sizeof(struct l4f_flow_set) &&
		    info.max_entries != flow_sets(flows)) {
			snprintf(msg, msglen,
				 "flowTableSize %u, pinned maps have %u (%s/%s): a flow map is sized when first pinned; "
				 "to resize it, stop the agent (the node withdraws its VIPs and forwards none meanwhile), "
				 "remove the pins directory %s, then start it (its flows start empty)",
				 flows, info.max_entries * L4F_FLOW_WAYS, pin_dir, names[i], pin_dir);
			return EINVAL;
		}
	}
	return 0;
}

/* Sizes the flow caches and tells the program their number of sets (l4f_flow_sets, node-map-defs.h). */
int size_flows(struct bpf_object *o, uint32_t flows)
{
	struct bpf_map *f4 = bpf_object__find_map_by_name(o, "l4f_flows4");
	struct bpf_map *f6 = bpf_object__find_map_by_name(o, "l4f_flows6");
	struct bpf_map *ro = bpf_object__find_map_by_name(o, ".rodata.flows");
	uint32_t sets = flow_sets(flows);
	if (!f4 || !f6 || !ro || bpf_map__set_max_entries(f4, sets) || bpf_map__set_max_entries(f6, sets) ||
	    bpf_map__set_initial_value(ro, &sets, sizeof(sets)))
		return -1;
	return 0;
}

/* Whether `fd` is a flow cache as node-maps.h lays it out (an array of struct l4f_flow_set), filling `info`. */
static int flow_cache_info(int fd, struct bpf_map_info *info)
{
	uint32_t il = sizeof(*info);
	memset(info, 0, sizeof(*info));
	return bpf_obj_get_info_by_fd(fd, info, &il) == 0 && info->type == BPF_MAP_TYPE_ARRAY &&
	       info->key_size == 4 && info->value_size == sizeof(struct l4f_flow_set);
}

int is_flow_cache(int fd)
{
	struct bpf_map_info info;
	return flow_cache_info(fd, &info);
}

/* The array's memory, mapped (`len` set), or MAP_FAILED (errno set). */
static void *map_sets(int fd, int prot, size_t *len)
{
	struct bpf_map_info info;
	if (!flow_cache_info(fd, &info)) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	*len = (size_t)info.max_entries * sizeof(struct l4f_flow_set);
	return mmap(NULL, *len, prot, MAP_SHARED, fd, 0);
}

/* Entries that hold a flow (a tag set). 0 when the map cannot be read. */
uint32_t count_flows(int fd)
{
	size_t len;
	const struct l4f_flow_set *sets = map_sets(fd, PROT_READ, &len);
	if (sets == MAP_FAILED) return 0;
	uint32_t n = 0;
	for (size_t i = 0; i < len / sizeof(*sets); i++)
		for (int w = 0; w < L4F_FLOW_WAYS; w++) n += sets[i].way[w].tag != 0;
	munmap((void *)sets, len);
	return n;
}

/*
 * Forgets every flow: each entry's tag is emptied (the program treats a zero tag as no flow), then its value. Flows
 * the program adds meanwhile may survive: a clear is a point in time. Returns 0 or an errno.
 */
int clear_flows(int fd)
{
	size_t len;
	struct l4f_flow_set *sets = map_sets(fd, PROT_READ | PROT_WRITE, &len);
	if (sets == MAP_FAILED) return errno;
	for (size_t i = 0; i < len / sizeof(*sets); i++)
		for (int w = 0; w < L4F_FLOW_WAYS; w++) {
			__atomic_store_n(&sets[i].way[w].tag, 0, __ATOMIC_RELEASE);
			sets[i].way[w].value = 0;
		}
	munmap(sets, len);
	return 0;
}
