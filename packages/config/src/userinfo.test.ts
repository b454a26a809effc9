import { describe, expect, test } from 'vitest';
import { maskUserinfo, maskUserinfoInText } from './userinfo.js';

describe('config - maskUserinfo', () => {
  test.each([
    ['http://root:S3cret@198.18.0.1:2379', 'http://***@198.18.0.1:2379'],
    ['root:S3cret@198.18.0.1:2379', '***@198.18.0.1:2379'],
    ['S3cret@198.18.0.1:2379', '***@198.18.0.1:2379'],
    ['nats://agent:S3c@r/et@198.18.0.1:4222', 'nats://***@198.18.0.1:4222'],
    ['tls://S3cret@[2001:db8::1]:4222', 'tls://***@[2001:db8::1]:4222'],
    ['root:S3c\nret@198.18.0.1:2379', '***@198.18.0.1:2379'],
    ['http://198.18.0.1:2379', 'http://198.18.0.1:2379'],
    ['198.18.0.1:2379', '198.18.0.1:2379'],
  ])('%j is shown as %j', (url, shown) => {
    expect(maskUserinfo(url)).toBe(shown);
    expect(maskUserinfo(url)).not.toContain('S3c');
  });
});

describe('config - maskUserinfoInText', () => {
  test.each([
    ['connect to nats://ops:S3cret@198.18.0.2:4222 refused', 'connect to nats://***@198.18.0.2:4222 refused'],
    ['dial ops:S3c@ret@198.18.0.2:4222: refused', 'dial ***@198.18.0.2:4222: refused'],
    ['nats://a:S3cret@h1:4222,nats://h2:4222', 'nats://***@h1:4222,nats://h2:4222'],
    ['no userinfo\nhere', 'no userinfo\nhere'],
  ])('%j is shown as %j', (text, shown) => {
    expect(maskUserinfoInText(text)).toBe(shown);
  });
});
