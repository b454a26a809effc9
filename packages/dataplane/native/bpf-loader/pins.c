/* Pins by path, and the backends' high-water mark the loader pins beside the object's maps. */
#include "loader.h"

/* An fd for the pinned map `name`, or -1. */
int pinned(const char *name)
{
	char path[1100];
	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	return bpf_obj_get(path);
}

/* Whether `name` is pinned and, unless both sizes are 0, a map with that key and value size. */
int pin_is(const char *name, uint32_t key_size, uint32_t value_size)
{
	char path[1100];
	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	if (!key_size && !value_size) return access(path, F_OK) == 0;
	int fd = bpf_obj_get(path);
	if (fd < 0) return 0;
	struct bpf_map_info info = {0};
	uint32_t il = sizeof(info);
	int ok = bpf_obj_get_info_by_fd(fd, &info, &il) == 0 && info.key_size == key_size &&
		 info.value_size == value_size;
	close(fd);
	return ok;
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
static int hwm_fd = -1;
uint32_t hwm;

#define SCAN_BATCH 4096u

/*
 * Raises *mark to the highest id in use + 1 among up to SCAN_BATCH entries from id `from`. An array's lookup_batch
 * takes in_batch as the key BEFORE the first one read (kernel/bpf/syscall.c generic_map_lookup_batch: get_next_key
 * of it), so the batch from `from` passes from - 1. Returns 0 or an errno.
 */
static int scan_from(uint32_t from, uint32_t *mark)
{
	static struct l4f_backend bs[SCAN_BATCH];
	static uint32_t ks[SCAN_BATCH];
	if (from >= L4F_MAX_BACKENDS) return 0;
	uint32_t count = SCAN_BATCH, in = from - 1, out_b;
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	if (bpf_map_lookup_batch(small_fd[2], from ? &in : NULL, &out_b, ks, bs, &count, &bo) && errno != ENOENT)
		return errno;
	for (uint32_t i = 0; i < count; i++)
		if (bs[i].family != 0 && ks[i] + 1 > *mark) *mark = ks[i] + 1;
	return 0;
}

/* The highest id in use + 1 by a scan of the whole array. Returns 0 or an errno. */
static int scan_backends(uint32_t *mark)
{
	*mark = 0;
	for (uint32_t start = 0; start < L4F_MAX_BACKENDS; start += SCAN_BATCH) {
		int err = scan_from(start, mark);
		if (err) return err;
	}
	return 0;
}

/*
 * Whether a pinned mark is believable: the SCAN_BATCH ids from it are unused (family 0). A mark written too low
 * (by hand, or a pin from elsewhere) would leave ids at or above it out of the dump, and the driver would hand them
 * out again beside their old backends; such a mark is rescanned instead (the batch costs ~0.3 ms a restart, 6.18).
 */
static int mark_holds(uint32_t mark)
{
	uint32_t above = mark;
	return scan_from(mark, &above) == 0 && above == mark;
}

/*
 * Opens the pinned mark, or creates and pins it: 0 when l4f_backends was just created (`fresh`), else by a
 * scan. Returns 0 or an errno (message in msg).
 */
int hwm_open(int fresh, char *msg, size_t msglen)
{
	uint32_t zero = 0;
	int fd = pinned(HWM_PIN);
	if (fd >= 0) {
		/* Sizes before the lookup (a pin of another layout would be copied past the mark); a mark past
		 * L4F_MAX_BACKENDS, which no id reaches, is unreadable too, and so is one with ids in use at or just
		 * above it (mark_holds): rescanned (a dump reads up to the mark). */
		struct bpf_map_info info = {0};
		uint32_t il = sizeof(info), mark;
		if (bpf_obj_get_info_by_fd(fd, &info, &il) || info.key_size != sizeof(zero) ||
		    info.value_size != sizeof(mark) || info.max_entries < 1) {
			close(fd); /* another layout: replaced below */
			fd = -1;
		} else if (!fresh && bpf_map_lookup_elem(fd, &zero, &mark) == 0 && mark <= L4F_MAX_BACKENDS &&
			   mark_holds(mark)) {
			hwm = mark;
			hwm_fd = fd;
			return 0;
		} else if (!fresh) {
			close(fd); /* unreadable: replaced below */
			fd = -1;
		}
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
int hwm_raise(uint32_t mark)
{
	if (mark <= hwm) return 0;
	uint32_t zero = 0;
	if (bpf_map_update_elem(hwm_fd, &zero, &mark, BPF_ANY)) return errno;
	hwm = mark;
	return 0;
}
