/*
 * Flows remembered over ids that start again, and the record that keeps that known across a failed start.
 *
 * When the full path's load creates l4f_backends or l4f_vips (its pin gone) while the flow LRUs keep theirs, backend
 * and VIP ids start again from 0 and the driver hands them to other addresses (ids.ts never reuses an id while the
 * pins live, and here they did not), so a remembered flow would go on to whatever backend now has its id (pick()
 * checks only live and vip_id). Both flow maps are emptied before any apply: the flows re-hash by the table, which
 * every node shares. Said on stderr (the driver logs it as bpfFlowsCleared, src/bpf/loader.ts).
 *
 * The load pins the new map at once. A start that fails after it (the tc or XDP attach, the MAC, the meta) used to
 * leave the next start with every pin present and nothing to tell that the flows were never cleared: it kept them
 * (and, with the old program still attached and the meta naming it, took the fast path over a l4f_backends that
 * program does not read). So the need is recorded before the load, in a one-entry array pinned beside the maps
 * (STALE_PIN, value: which map started empty, STALE_BACKENDS | STALE_VIPS), and the record is removed only once both
 * flow maps are empty. While it is pinned every start takes the full path (reuse(), start.c), whose attach replaces
 * a program that uses other maps (same_pinned_maps), and clears the flows. Not in node-maps.h: the program never
 * reads it.
 */
#include "loader.h"

#define STALE_BACKENDS 1u
#define STALE_VIPS 2u

/* What the record says (or this start found): STALE_BACKENDS | STALE_VIPS; 0 = the flows are not stale. */
static uint32_t stale;

int stale_recorded(void) { return pin_is(STALE_PIN, 0, 0); }

/*
 * Before the full path's load: whether it will create l4f_backends (returned in *fresh) or l4f_vips while a flow
 * map is pinned, or an earlier start recorded that and failed. Records it (STALE_PIN) before anything is created.
 * Returns 0 or an errno (msg names the pin).
 */
int stale_before_load(int *fresh, char *msg, size_t msglen)
{
	*fresh = !pin_is("l4f_backends", 0, 0);
	int flows = pin_is("l4f_flows4", 0, 0) || pin_is("l4f_flows6", 0, 0);
	uint32_t now = flows ? (*fresh ? STALE_BACKENDS : 0) | (pin_is("l4f_vips", 0, 0) ? 0 : STALE_VIPS) : 0;
	uint32_t zero = 0, was = 0;
	int fd = pinned(STALE_PIN);
	if (fd >= 0) {
		struct bpf_map_info info = {0};
		uint32_t il = sizeof(info);
		/* Another layout, or unreadable: still a record that the flows were not cleared. */
		if (bpf_obj_get_info_by_fd(fd, &info, &il) || info.key_size != 4 || info.value_size != 4 ||
		    bpf_map_lookup_elem(fd, &zero, &was) || (was & (STALE_BACKENDS | STALE_VIPS)) == 0)
			was = STALE_BACKENDS;
		close(fd);
	}
	stale = now | was;
	if (now == 0 || fd >= 0) return 0; /* nothing new to record, or recorded already */
	char path[1100];
	snprintf(path, sizeof(path), "%s/%s", pin_dir, STALE_PIN);
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, STALE_PIN, 4, 4, 1, NULL);
	if (fd < 0 || bpf_map_update_elem(fd, &zero, &now, BPF_ANY) || bpf_obj_pin(fd, path)) {
		int err = errno;
		snprintf(msg, msglen, "%s (flows to clear: l4f_%s not pinned): %s", path,
			 now & STALE_BACKENDS ? "backends" : "vips", strerror(err));
		if (fd >= 0) close(fd);
		return err;
	}
	close(fd);
	return 0;
}

/*
 * After the full path's load and attach: empties both flow maps when stale_before_load() found them stale, then
 * removes the record. Returns 0 or an errno (msg says which map; the record stays for the next start).
 */
int stale_clear(char *msg, size_t msglen)
{
	if (!stale) return 0;
	const char *which = stale & STALE_BACKENDS ? "l4f_backends" : "l4f_vips";
	int e4 = clear_flows(flows4_fd);
	int e6 = e4 ? 0 : clear_flows(flows6_fd);
	if (e4 || e6) {
		snprintf(msg, msglen, "clearing l4f_flows%d (%s created anew): %s", e4 ? 4 : 6, which,
			 strerror(e4 ? e4 : e6));
		return e4 ? e4 : e6;
	}
	char path[1100];
	snprintf(path, sizeof(path), "%s/%s", pin_dir, STALE_PIN);
	if (unlink(path) && errno != ENOENT) {
		int err = errno;
		snprintf(msg, msglen, "%s: %s", path, strerror(err));
		return err;
	}
	fprintf(stderr, "l4fleet-bpf: %s/%s was not pinned and starts empty: flows remembered over its ids cleared\n",
		pin_dir, which);
	stale = 0;
	return 0;
}
