/*
 * The XDP fast path (--xdp native): attached in native (driver) mode in front of the tc program, or detached when
 * no longer asked for. Like tc's, the attachment is the kernel's (netlink), not a link held by this process, so it
 * stays when the loader exits. Only a program named l4f_node_xdp is ever replaced or detached: another XDP
 * program on the interface is the operator's, and the start fails rather than replace it.
 */
#include "loader.h"

#include <sys/ioctl.h>

#define XDP_PROG_NAME "l4f_node_xdp"

int xdp_wanted;
unsigned int xdp_id;

/* The id of the XDP program attached in native mode (0: none); *ours: it is an l4f_node_xdp. */
static unsigned int attached(int *ours)
{
	uint32_t id = 0;
	*ours = 0;
	if (bpf_xdp_query_id(hook.ifindex, XDP_FLAGS_DRV_MODE, &id) || id == 0) return 0;
	int fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0) return id;
	struct bpf_prog_info info = {0};
	uint32_t il = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &il) == 0 && !strcmp(info.name, XDP_PROG_NAME)) *ours = 1;
	close(fd);
	return id;
}

int xdp_matches(void)
{
	int ours;
	unsigned int id = attached(&ours);
	if (xdp_wanted && ours) xdp_id = id;
	return xdp_wanted ? ours : id == 0 || !ours;
}

/* The interface's MAC into l4f_ifaces: the program forwards only frames sent to it. */
static int remember_mac(int map_fd, const char *ifname, char *msg, size_t msglen)
{
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int err = s < 0 || ioctl(s, SIOCGIFHWADDR, &ifr) ? errno : 0;
	if (s >= 0) close(s);
	if (err) {
		snprintf(msg, msglen, "xdp: MAC of %s: %s", ifname, strerror(err));
		return err;
	}
	struct l4f_iface v = {0};
	memcpy(v.mac, ifr.ifr_hwaddr.sa_data, 6);
	uint32_t key = (uint32_t)hook.ifindex;
	if (bpf_map_update_elem(map_fd, &key, &v, BPF_ANY)) {
		err = errno;
		snprintf(msg, msglen, "xdp: l4f_ifaces: %s", strerror(err));
		return err;
	}
	return 0;
}

int xdp_mac(int map_fd, const char *ifname, char *msg, size_t msglen)
{
	if (!xdp_wanted) return 0;
	if (map_fd < 0) {
		snprintf(msg, msglen, "xdp: map l4f_ifaces: not found");
		return ENOENT;
	}
	return remember_mac(map_fd, ifname, msg, msglen);
}

int xdp_attach(struct bpf_program *prog, char *msg, size_t msglen)
{
	int ours;
	unsigned int id = attached(&ours);
	if (!xdp_wanted) {
		xdp_id = 0;
		if (!ours) return 0;
		int err = bpf_xdp_detach(hook.ifindex, XDP_FLAGS_DRV_MODE, NULL);
		if (err) snprintf(msg, msglen, "xdp: detaching %u: %s", id, strerror(-err));
		return -err;
	}
	if (id && !ours) {
		snprintf(msg, msglen, "xdp: interface %d already runs XDP program %u, not ours: not replaced", hook.ifindex,
			 id);
		return EBUSY;
	}
	int fd = prog ? bpf_program__fd(prog) : -1;
	if (fd < 0) {
		snprintf(msg, msglen, "xdp: the object has no program " XDP_PROG_NAME);
		return EINVAL;
	}
	/* Without XDP_FLAGS_UPDATE_IF_NOEXIST the kernel swaps the program atomically (dev_xdp_attach). */
	int err = bpf_xdp_attach(hook.ifindex, fd, XDP_FLAGS_DRV_MODE, NULL);
	if (err) {
		snprintf(msg, msglen, "xdp: native mode on ifindex %d: %s%s", hook.ifindex, strerror(-err),
			 err == -EOPNOTSUPP ? " (the driver has no native XDP: use the tc data plane alone)" : "");
		return -err;
	}
	xdp_id = 0;
	bpf_xdp_query_id(hook.ifindex, XDP_FLAGS_DRV_MODE, &xdp_id);
	return 0;
}

int xdp_detach_ours(void)
{
	int ours;
	if (!attached(&ours) || !ours) return 0;
	return -bpf_xdp_detach(hook.ifindex, XDP_FLAGS_DRV_MODE, NULL);
}

/* " xdp ID" and, per family whose forwarding is off on the interface, " nofwd4" / " nofwd6" (bpf_fib_lookup
 * refuses there: the fast path is idle for that family). */
void xdp_describe(const char *ifname, char *msg, size_t msglen)
{
	if (!xdp_wanted) return;
	size_t n = strlen(msg);
	snprintf(msg + n, msglen - n, " xdp %u", xdp_id);
	const char *fam[2] = {"ipv4", "ipv6"};
	for (int i = 0; i < 2; i++) {
		char path[128], v = '0';
		snprintf(path, sizeof(path), "/proc/sys/net/%s/conf/%s/forwarding", fam[i], ifname);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (read(fd, &v, 1) != 1) v = '0';
			close(fd);
		}
		if (v == '0') {
			n = strlen(msg);
			snprintf(msg + n, msglen - n, " nofwd%d", i ? 6 : 4);
		}
	}
}
