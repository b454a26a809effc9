/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The kernel's jhash, for the flow hash (bit-identical to nft's and @l4fleet/maglev's) and the flow cache. */
#ifndef L4F_NODE_JHASH_H
#define L4F_NODE_JHASH_H

#include <linux/types.h>

/* ---- the kernel's jhash (include/linux/jhash.h, Bob Jenkins' lookup3), as nft_jhash calls it ---- */
#define JHASH_INITVAL 0xdeadbeef
static __always_inline __u32 rol32(__u32 w, unsigned int s) { return (w << s) | (w >> (32 - s)); }
#define JHASH_MIX(a, b, c)                                                                                    \
	do {                                                                                                 \
		a -= c; a ^= rol32(c, 4); c += b;                                                            \
		b -= a; b ^= rol32(a, 6); a += c;                                                            \
		c -= b; c ^= rol32(b, 8); b += a;                                                            \
		a -= c; a ^= rol32(c, 16); c += b;                                                           \
		b -= a; b ^= rol32(a, 19); a += c;                                                           \
		c -= b; c ^= rol32(b, 4); b += a;                                                            \
	} while (0)
#define JHASH_FINAL(a, b, c)                                                                                  \
	do {                                                                                                 \
		c ^= b; c -= rol32(b, 14);                                                                   \
		a ^= c; a -= rol32(c, 11);                                                                   \
		b ^= a; b -= rol32(a, 25);                                                                   \
		c ^= b; c -= rol32(b, 16);                                                                   \
		a ^= c; a -= rol32(c, 4);                                                                    \
		b ^= a; b -= rol32(a, 14);                                                                   \
		c ^= b; c -= rol32(b, 24);                                                                   \
	} while (0)

/* jhash over `n` 32-bit words (n = 1, 4 or 10: every key length here leaves a 4-byte tail). Words are
 * the key's bytes read in CPU (little-endian) order, as the kernel's jhash reads them. Returns c, the kernel's
 * hash; `second` gets b, mixed as thoroughly (lookup3's hashlittle2 returns the two), for the flow cache's tag. */
static __always_inline __u32 jhash_words2(const __u32 *k, int n, __u32 seed, __u32 *second)
{
	__u32 a, b, c;
	a = b = c = JHASH_INITVAL + (__u32)(n * 4) + seed;
	int i = 0;
#pragma unroll
	for (int r = 0; r < 3; r++) {
		if (n - i > 3) {
			a += k[i];
			b += k[i + 1];
			c += k[i + 2];
			JHASH_MIX(a, b, c);
			i += 3;
		}
	}
	a += k[n - 1];
	JHASH_FINAL(a, b, c);
	*second = b;
	return c;
}

static __always_inline __u32 jhash_words(const __u32 *k, int n, __u32 seed)
{
	__u32 unused;
	return jhash_words2(k, n, seed, &unused);
}

#endif
