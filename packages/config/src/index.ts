export {
  additionalHealthChecksField,
  checkLabel,
  healthCheckPath,
  healthChecksOf,
  healthChecksRequiredField,
  healthChecksRequiredOf,
  MAX_ADDITIONAL_HEALTH_CHECKS,
} from './additional-health-checks.js';
export { addressText, canonicalAddress, endpointText } from './address.js';
export { unusableAddress } from './address-use.js';
export { DEFAULT_MIN_ACTIVE_MEMBERS, minActiveMembersField, minActiveMembersOf } from './backup-activation.js';
export { predictChurn, type VipChurn } from './churn.js';
export { escapeControls } from './control-text.js';
export {
  DEFAULT_GUE_PORT,
  DEFAULT_HEALTH_FALL,
  DEFAULT_HEALTH_INTERVAL_MS,
  DEFAULT_HEALTH_RISE,
  DEFAULT_HEALTH_TIMEOUT_MS,
  DEFAULT_HTTP_EXPECT_STATUS,
  DEFAULT_HTTP_PATH,
  DEFAULT_MEMBER_WEIGHT,
  DEFAULT_POOL_FORWARDING,
  DEFAULT_VIP_HASH,
  DEFAULT_VIP_TABLE_SIZE,
  defaultHealthCheck,
  MAX_MEMBER_WEIGHT,
} from './defaults.js';
export { type ChangeKind, diffFleets, type FleetChange, type FleetDiff } from './diff.js';
export { ConfigError, type ConfigErrorCode, type ConfigProblem, formatProblem } from './errors.js';
export { explainFlow, type FlowExplanation } from './explain.js';
export {
  addressField,
  boolField,
  checkKeys,
  intField,
  isRawObject,
  listField,
  oneOfField,
  Problems,
  type RawObject,
  sectionField,
  showValue,
  stringField,
  valueText,
} from './fields.js';
export {
  DEFAULT_DNS_QUERY_TYPE,
  DEFAULT_DNS_RCODE,
  DNS_QUERY_TYPES,
  DNS_RCODES,
  describeHealthCheck,
  HEALTH_CHECK_TYPES,
  HTTP_CHECK_METHODS,
  HTTP_CHECK_TYPES,
  isHostName,
  isHttpCheck,
  isQueryName,
  statusExpected,
} from './health-check.js';
export { ineffectiveSettings } from './ineffective.js';
export {
  BPF_MAX_VIP_MEMBERS,
  capProblems,
  fleetBytesProblem,
  fleetSizeProblems,
  fleetTextProblem,
  MAX_EXPECT_BYTES,
  MAX_FLEET_BYTES,
  MAX_FLEET_DEPTH,
  MAX_HTTP_PATH_CHARS,
  MAX_IDLE_TIMEOUT_S,
  MAX_MEMBERS_PER_POOL,
  MAX_POOLS,
  MAX_PROBLEMS_REPORTED,
  MAX_SOURCE_RANGES_PER_VIP,
  MAX_TCP_CLOSE_TIMEOUT_S,
  MAX_TCP_HANDSHAKE_TIMEOUT_S,
  MAX_TCP_PAYLOAD_BYTES,
  MAX_TOTAL_MEMBER_CHECKS,
  MAX_TOTAL_MEMBERS,
  MAX_TOTAL_SOURCE_RANGES,
  MAX_TOTAL_TABLE_SLOTS,
  MAX_UDP_PAYLOAD_BYTES,
  MAX_VIP_TABLE_SIZE,
  MAX_VIPS,
  MAX_YAML_ALIASES,
  MAX_YAML_INDENT_COLUMNS,
  MAX_YAML_NODES,
  MIN_PROFILE_TIMEOUT_S,
  textShapeProblem,
  utf8Bytes,
} from './limits.js';
export { LISTEN_ADDRESS_FORM, type ListenAddress, parseListenAddress } from './listen-address.js';
export { LOG_LEVELS, type LogLevelName, logLevelFromEnv, logLevelNamed } from './log-level.js';
export {
  type AnnouncementChange,
  announcementChanges,
  announcementRule,
  belowMinUpText,
  DEFAULT_MIN_UP_MEMBERS,
  enoughUp,
  minUpMembersField,
  minUpMembersOf,
  notAnnouncedReason,
  takingFlowsText,
  usableMembers,
} from './min-up-members.js';
export { NODE_NAME, POOL_NAME } from './names.js';
export { DEFAULT_ON_MEMBER_DOWN, ON_MEMBER_DOWN, onMemberDownOf } from './on-member-down.js';
export { parseFleet, parseFleetText } from './parse.js';
export { previousChecksum, withPreviousOwners } from './previous-owners.js';
export {
  DEFAULT_ON_TIMEOUT,
  DEFAULT_TCP_CLOSE_TIMEOUT_S,
  DEFAULT_TCP_HANDSHAKE_TIMEOUT_S,
  DEFAULT_TCP_IDLE_TIMEOUT_S,
  DEFAULT_UDP_IDLE_TIMEOUT_S,
  defaultProfile,
  type OnTimeout,
  type VipProfile,
} from './profile.js';
export {
  DEFAULT_SECOND_CHANCE_ENABLED,
  DEFAULT_SECOND_CHANCE_RETAIN_S,
  defaultSecondChance,
  MAX_PREVIOUS_TABLES,
  MAX_SECOND_CHANCE_RETAIN_S,
  type SecondChance,
  secondChanceActive,
  secondChanceField,
  secondChanceOf,
} from './second-chance.js';
export { directReturnProblems } from './semantics.js';
export {
  isRampPercent,
  MAX_SLOW_START_S,
  type MemberRamp,
  type MemberRamps,
  NO_RAMPS,
  nextRampStepMs,
  RAMP_PERCENTS,
  rampedWeight,
  rampPercentAt,
  rampSinceForPercent,
  slowStartField,
  slowStartOf,
  startedMembers,
} from './slow-start.js';
export {
  ipv4InIpv6,
  parseSourcePrefix,
  type SourcePrefix,
  sourceAdmits,
  sourceRangesField,
} from './source-ranges.js';
export {
  backendsForPool,
  backupsServe,
  buildVipTable,
  type DecidedStatus,
  downMembers,
  effectiveWeight,
  tableChecksum,
  tableInputsOf,
  tableMembers,
  type VipTable,
} from './table.js';
export {
  type EarlierPoolTable,
  earlierTables,
  type HistoryMember,
  nextExpiryMs,
  type PoolHistory,
  recordPoolTable,
  sameTableInputs,
  type TableHistory,
} from './table-history.js';
export type {
  DnsQueryType,
  DnsRcode,
  Fleet,
  Forwarding,
  HashMode,
  HealthCheck,
  HealthCheckType,
  HttpCheckMethod,
  Member,
  MemberState,
  MemberStatus,
  OnMemberDown,
  Pool,
  Protocol,
  StatusRange,
  Vip,
  VipState,
} from './types.js';
export { maskUserinfo, maskUserinfoInText } from './userinfo.js';
export { memberKey, parseVipKey, vipKey } from './vip-key.js';
export {
  servedVips,
  VIP_STATES,
  vipDraining,
  vipServed,
  vipStateField,
  vipStateOf,
  withVipState,
} from './vip-state.js';
export { STRICT_YAML_OPTIONS } from './yaml-text.js';
