export { Backoff, type BackoffOptions, DEFAULT_BACKOFF_INITIAL_MS, DEFAULT_BACKOFF_MAX_MS } from './backoff.js';
export type { HeldPath } from './codec.js';
export { BgpError, type BgpErrorCode, fromGrpcError } from './errors.js';
export { createFakeSpeaker, type FakeSpeaker } from './fake-speaker.js';
export { apiAddressProblem, DEFAULT_CALL_TIMEOUT_MS, validateApiAddress } from './gobgp-client.js';
export {
  createGobgpSpeaker,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_LIVENESS_INTERVAL_MS,
  DEFAULT_LIVENESS_TIMEOUT_MS,
  DEFAULT_RESYNC_INTERVAL_MS,
  type GobgpSpeaker,
  type GobgpSpeakerOptions,
  GRACEFUL_SHUTDOWN_COMMUNITY,
} from './gobgp-speaker.js';
export { GOBGP_PROTO_PATH, PROTO_LOADER_OPTIONS } from './proto.js';
export { type PathPlan, type PeerPlan, planPaths, planPeers, type SentLocalAddresses } from './reconcile.js';
export type {
  Advertisement,
  GlobalConfig,
  Peer,
  PeerEvent,
  PeerStatus,
  SessionState,
  Speaker,
} from './types.js';
export {
  type CanonicalAdvertisement,
  type CanonicalGlobal,
  type CanonicalPeer,
  canonicalAdvertisement,
  canonicalAdvertisements,
  canonicalGlobal,
  canonicalIp,
  canonicalPeer,
  canonicalPeers,
  DEFAULT_BGP_PORT,
  DEFAULT_CONNECT_RETRY_S,
  DEFAULT_HOLD_TIME_S,
  DEFAULT_KEEPALIVE_S,
  formatCommunity,
  type IpFamily,
  ipFamily,
  type ParsedPrefix,
  parseCommunity,
  parsePrefix,
  validateAsn,
  validateRouterId,
} from './validate.js';
