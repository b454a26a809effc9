/* The maps' fds and the slot tables' mappings, shared by the loader's files (loader.h). */
#include "loader.h"

/* Small maps written element by element: index in the OP_UPDATE/OP_DELETE `map` field. */
const char *const small_maps[N_SMALL] = {"l4f_vips", "l4f_vip_addrs", "l4f_backends", "l4f_config",
					   "l4f_src_ranges"};

/* What node-maps.h says each small map's key and value are: a pinned map of other sizes is not ours to write. */
const uint32_t small_key_size[N_SMALL] = {sizeof(struct l4f_vip_key), sizeof(struct l4f_addr_key), 4, 4,
					 sizeof(struct l4f_src_key)};
const uint32_t small_value_size[N_SMALL] = {sizeof(struct l4f_vip), 4, sizeof(struct l4f_backend),
					   sizeof(struct l4f_config), 4};

struct bpf_object *obj; /* NULL after a start over the pins (fast path) */
int small_fd[N_SMALL];
int tables_fd, flows4_fd, flows6_fd, vip_stats_fd, backend_stats_fd, stats_fd;
int inner_fd[L4F_MAX_TABLES];
/* Each table's slots, mapped shared (BPF_F_MMAPABLE): writes are plain stores the program sees at once. */
uint32_t *inner_mem[L4F_MAX_TABLES];
uint32_t inner_size[L4F_MAX_TABLES];
struct bpf_tc_hook hook;
int prog_fd;
unsigned int prog_id;
char pin_dir[512];
