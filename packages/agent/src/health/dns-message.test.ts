import { describe, expect, test } from 'vitest';
import { dnsAnswerRcode, dnsQuery } from './dns-message.js';

/** An answer to `q`: its header with QR (and RCODE `rcode`), then its question, as a server echoes it. */
function answer(q: ReturnType<typeof dnsQuery>, rcode: number, change: (b: Buffer) => void = () => undefined): Buffer {
  const b = Buffer.from(q.bytes);
  b.writeUInt16BE(0x8180 | rcode, 2); // QR, RD, RA
  change(b);
  return b;
}

describe('dns message (RFC 1035 §4.1)', () => {
  test('the query: ID, RD, one question in wire form, class IN', () => {
    const q = dnsQuery('www.Example.com', 'AAAA', 0x1234);
    expect(q.bytes.toString('hex')).toBe(
      [
        '1234', // ID
        '0100', // flags: RD
        '0001 0000 0000 0000', // QDCOUNT 1, AN/NS/AR 0
        '03 777777 07 4578616d706c65 03 636f6d 00', // 3www 7Example 3com, root
        '001c 0001', // AAAA, IN
      ]
        .join('')
        .replaceAll(' ', ''),
    );
    expect(dnsQuery('.', 'NS', 1).question.toString('hex')).toBe('0000020001');
    expect(dnsQuery('_sip._udp.example.com.', 'SRV', 1).question.toString('hex')).toMatch(/^045f736970045f756470/);
  });

  test('RCODEs are named; an unknown one by its number', () => {
    const q = dnsQuery('a.test', 'A', 7);
    expect(dnsAnswerRcode(q, answer(q, 0))).toEqual({ rcode: 'NOERROR' });
    expect(dnsAnswerRcode(q, answer(q, 2))).toEqual({ rcode: 'SERVFAIL' });
    expect(dnsAnswerRcode(q, answer(q, 3))).toEqual({ rcode: 'NXDOMAIN' });
    expect(dnsAnswerRcode(q, answer(q, 5))).toEqual({ rcode: 'REFUSED' });
    expect(dnsAnswerRcode(q, answer(q, 9))).toEqual({ rcode: 'RCODE 9' });
  });

  test('the question may come back in another case (RFC 4343)', () => {
    const q = dnsQuery('a.test', 'A', 7);
    const upper = answer(q, 0, (b) => b.write('A', 13, 'ascii'));
    expect(dnsAnswerRcode(q, upper)).toEqual({ rcode: 'NOERROR' });
  });

  /** `b` after `change`: a header or question field rewritten in place. */
  const edited = (change: (b: Buffer) => void) => (b: Buffer) => {
    change(b);
    return b;
  };
  test.each<[string, (b: Buffer) => Buffer, string]>([
    ['another ID (a stray or spoofed datagram)', edited((b) => b.writeUInt16BE(8, 0)), 'another query ID'],
    ['a query, not a response', edited((b) => b.writeUInt16BE(0x0100, 2)), 'a query, not a response'],
    ['another question', edited((b) => b.write('b', 13, 'ascii')), 'another question'],
    ['another type', edited((b) => b.writeUInt16BE(28, b.length - 4)), 'another question'],
    ['no question', edited((b) => b.writeUInt16BE(0, 4)), 'no question section'],
    ['too short', (b) => b.subarray(0, 12), '12 bytes, too short'],
  ])('not an answer: %s', (_name, change, why) => {
    const q = dnsQuery('a.test', 'A', 7);
    expect(dnsAnswerRcode(q, change(answer(q, 0)))).toEqual({ notAnswer: why });
  });
});
