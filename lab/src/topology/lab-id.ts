/**
 * The one rule for a lab id. The id is part of every name the lab makes (the root-namespace interface `l4f-<id>-h` has
 * at most 15 characters, IFNAMSIZ) and is the name of the lab's state directory, which `down` removes: so no `/`, no
 * `..`, never empty. Every command checks it (cli-options.ts labId, model.ts buildTopology), as does whatever lists
 * labs by name (runtime/resources.ts, runtime/docker.ts).
 */

/** The id's characters, for patterns that find it inside a longer name (model.ts labIdOfNamespace). */
export const LAB_ID_CHARS = '[a-z0-9]{1,8}';

/** The rule in words, for messages. */
export const LAB_ID_RULE = '1-8 of [a-z0-9]';

const LAB_ID = new RegExp(`^${LAB_ID_CHARS}$`);

export function isLabId(id: string): boolean {
  return LAB_ID.test(id);
}
