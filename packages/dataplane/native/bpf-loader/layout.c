/*
 * Pins of another definition than the object's, made anew before the full path's load.
 *
 * libbpf reuses a pinned map only when its type, key and value sizes, entries, flags and map_extra are the object's
 * (libbpf.c map_is_reuse_compat); otherwise bpf_object__load fails ("couldn't reuse pinned map ...: parameter
 * mismatch"), at every start, and so every apply and verify fail while the attached program forwards over the old
 * maps. A pin of another layout (left by a hand, or a build whose node-maps.h differed) is therefore removed before
 * the load, which creates and pins that map anew; the attach then replaces the program (it reads a map the attached
 * one does not: same_pinned_maps, start.c), the other maps keep their entries, and the driver writes the new map's
 * (its read-back finds it empty). Removing l4f_backends or l4f_vips loses their ids: stale_before_load(), called
 * after this, finds that pin gone and the flows are cleared (stale.c). Said on stderr, one line per map (the driver
 * logs it as the warning bpfMapRebuilt, src/bpf/loader.ts). The flow maps' size is not repaired here: another
 * flowTableSize is refused first, naming both sizes (flows_pinned_size, start.c), by design.
 */
#include "loader.h"

/* Removes each pin of `o`'s maps whose definition is not the object's. Returns 0 or an errno (msg names the pin). */
int pins_fit(struct bpf_object *o, char *msg, size_t msglen)
{
	struct bpf_map *m;
	bpf_object__for_each_map(m, o)
	{
		const char *path = bpf_map__pin_path(m);
		int fd = path ? bpf_obj_get(path) : -1;
		if (fd < 0) continue; /* not pinned by name, or no pin yet: the load creates it */
		struct bpf_map_info info = {0};
		uint32_t il = sizeof(info);
		int got = bpf_obj_get_info_by_fd(fd, &info, &il) == 0;
		close(fd);
		if (got && info.type == bpf_map__type(m) && info.key_size == bpf_map__key_size(m) &&
		    info.value_size == bpf_map__value_size(m) && info.max_entries == bpf_map__max_entries(m) &&
		    info.map_flags == bpf_map__map_flags(m) && info.map_extra == bpf_map__map_extra(m))
			continue;
		if (unlink(path) && errno != ENOENT) {
			int err = errno;
			snprintf(msg, msglen, "%s: of another definition than %s's, not removed: %s", path,
				 bpf_map__name(m), strerror(err));
			return err;
		}
		fprintf(stderr,
			"l4fleet-bpf: %s: type %u, key %u, value %u bytes, %u entries, flags %#x, not the object's "
			"%u, %u, %u, %u, %#x: map made anew\n",
			path, info.type, info.key_size, info.value_size, info.max_entries, info.map_flags,
			bpf_map__type(m), bpf_map__key_size(m), bpf_map__value_size(m), bpf_map__max_entries(m),
			bpf_map__map_flags(m));
	}
	return 0;
}
