/**
 * Node and pool names become etcd key segments, NATS subject tokens and file names (the agent's last state), so
 * they are bounded and carry no `/`: 1-63 of A-Z a-z 0-9 . _ -, starting alphanumeric (a DNS label's length).
 */
export const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Pool names are key segments too (`health/<node>/<pool>`): the same rule. */
export const POOL_NAME = NODE_NAME;
