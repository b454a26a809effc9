/**
 * The second-chance bench's figures (second-chance.ts) are of the paths they name only if b1 took them: the miss
 * flood sent on to b0 (counter `forwarded`), the hit flood decapsulated with b1's socket (`local`). A wrong path
 * leaves one counter near 0 and doubles the other; fewer than half a flood's packets in either fails the bench.
 */
export function checkSecondChancePaths(f: Readonly<Record<string, number>>): void {
  const packets = f.scPackets ?? 0;
  const want = packets / 2;
  const forwarded = f.scForwarded ?? 0;
  const local = f.scLocal ?? 0;
  if (forwarded < want || local < want || packets === 0) {
    throw new Error(
      `second chance: b1 forwarded ${forwarded} and decapsulated with its socket ${local} of ${packets} packets ` +
        `per flood (each should be at least ${want}): the figures are not of the paths they name`,
    );
  }
}
