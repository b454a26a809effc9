/**
 * The one DNS query a `dns` health check sends and how its answer is read (RFC 1035 §4.1): a header with a random
 * ID and RD set, one question (name, type, class IN), nothing else. An answer counts only when it is a response
 * (QR) to this query: the same ID and the same question, so a stray or spoofed datagram is not taken for the
 * member's answer. Only its RCODE is read.
 */
import { randomInt } from 'node:crypto';
import type { DnsQueryType, DnsRcode } from '@l4fleet/config';

/** RFC 1035 §3.2.2, RFC 3596 (AAAA), RFC 2782 (SRV). */
const QTYPE: Record<DnsQueryType, number> = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
};
const CLASS_IN = 1;
const HEADER_BYTES = 12;
/** RFC 1035 §4.1.1 RCODE values, and RFC 6895 §2.3's names. */
const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'] as const;

export interface DnsQuery {
  readonly id: number;
  readonly bytes: Buffer;
  /** The question section as sent (name, type, class), to match the answer's against. */
  readonly question: Buffer;
}

/** Name in wire form (RFC 1035 §3.1): length-prefixed labels, then the root's empty label. `.` is the root. */
function encodeName(name: string): Buffer {
  const labels = name === '.' ? [] : name.replace(/\.$/, '').split('.');
  return Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])),
    Buffer.from([0]),
  ]);
}

export function dnsQuery(name: string, type: DnsQueryType, id = randomInt(0, 0x10000)): DnsQuery {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD: a recursive resolver answers from its cache or upstream
  header.writeUInt16BE(1, 4); // QDCOUNT
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(QTYPE[type], 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  const question = Buffer.concat([encodeName(name), tail]);
  return { id, bytes: Buffer.concat([header, question]), question };
}

/** The answer's RCODE name (`NOERROR`, `RCODE 9`), or why the datagram is not an answer to `query`. */
export function dnsAnswerRcode(query: DnsQuery, reply: Buffer): { rcode: DnsRcode | string } | { notAnswer: string } {
  if (reply.length < HEADER_BYTES + query.question.length) return { notAnswer: `${reply.length} bytes, too short` };
  if (reply.readUInt16BE(0) !== query.id) return { notAnswer: 'another query ID' };
  const flags = reply.readUInt16BE(2);
  if ((flags & 0x8000) === 0) return { notAnswer: 'a query, not a response' };
  if (reply.readUInt16BE(4) < 1) return { notAnswer: 'no question section' };
  // Names compare case-insensitively (RFC 4343); a server may echo another case.
  const echoed = reply.subarray(HEADER_BYTES, HEADER_BYTES + query.question.length);
  if (echoed.toString('latin1').toLowerCase() !== query.question.toString('latin1').toLowerCase()) {
    return { notAnswer: 'another question' };
  }
  const code = flags & 0x000f;
  return { rcode: RCODE_NAMES[code] ?? `RCODE ${code}` };
}
