/** Why a data-plane call refused its input or failed. Stable strings: callers and tests switch on them. */
export type DataPlaneErrorCode =
  | 'OPTIONS_INVALID'
  | 'VIP_INVALID'
  | 'VIP_DUPLICATE'
  | 'BACKEND_INVALID'
  | 'BACKEND_FAMILY_MISMATCH'
  | 'BACKEND_PORT_MISMATCH'
  | 'SLOTS_INVALID'
  | 'FORWARDING_UNSUPPORTED'
  | 'NODE_ADDRESS_MISSING'
  | 'NAT_FORWARDING_DISABLED'
  | 'BPF_UNAVAILABLE'
  | 'BPF_FAILED'
  | 'BPF_LOADER_LOST'
  | 'BPF_STATE_UNREADABLE'
  | 'BPF_IDS_EXHAUSTED'
  | 'TOO_LARGE'
  | 'INTERFACE_UNKNOWN'
  | 'NFT_FAILED'
  | 'NFT_BATCH_LOST'
  | 'NFT_STATE_UNREADABLE'
  | 'LISTEN_FAILED'
  | 'CLOSED'
  | 'BACKEND_HOST_UNSUITABLE'
  | 'BACKEND_SETUP_FAILED'
  | 'BACKEND_RECORD_INVALID';

/**
 * The one error type of @l4fleet/dataplane; `message` names the offending field and value. Validation runs before
 * anything is sent to the kernel, and the kernel applies each nft transaction atomically. The nftables driver writes
 * its NAT table in a transaction of its own: refused, it fails the apply after the netdev table changed (package
 * README, "Errors").
 */
export class DataPlaneError extends Error {
  override readonly name = 'DataPlaneError';
  readonly code: DataPlaneErrorCode;
  /**
   * ApplyResult.repaired of a call that failed after it repaired drift (the proxy reopened some lost listeners, then
   * one could not listen again): the agent counts those as drift even though the call failed. Absent otherwise.
   */
  readonly repaired?: readonly string[];

  constructor(code: DataPlaneErrorCode, message: string, options?: { cause?: unknown; repaired?: readonly string[] }) {
    super(message, options);
    this.code = code;
    if (options?.repaired !== undefined) this.repaired = options.repaired;
  }
}
