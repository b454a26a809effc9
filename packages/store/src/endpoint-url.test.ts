import { describe, expect, test } from 'vitest';
import { ETCD_ENDPOINT_FORM, etcdEndpointProblems } from './endpoint-url.js';

describe('store - etcd endpoint URLs', () => {
  test.each([
    ['http://127.0.0.1:2379'],
    ['https://etcd-1.example.net:2379'],
    ['http://[2001:db8::1]:2379'],
    ['http://localhost:1'],
  ])('%s is dialled as given', (url) => {
    expect(etcdEndpointProblems([url])).toEqual([]);
  });

  test.each([
    // etcd3 dials 443 without a port, even over http; a path made the host unparsable (DNS failure at the first call);
    // a user is not etcd auth; 0 and 99999 are no ports.
    ['http://127.0.0.1'],
    ['http://127.0.0.1:2379/'],
    ['http://127.0.0.1:2379/v3/'],
    ['http://127.0.0.1:2379?x=1'],
    ['http://127.0.0.1:0'],
    ['http://127.0.0.1:99999'],
    ['ftp://127.0.0.1:2379'],
    ['127.0.0.1:2379'],
    ['https://[::1]'],
  ])('%s is refused, named', (url) => {
    expect(etcdEndpointProblems(['http://127.0.0.1:2379', url])).toEqual([
      { index: 1, message: `${JSON.stringify(url)} is not ${ETCD_ENDPOINT_FORM}` },
    ]);
  });

  test('http:// mixed with https:// is refused (etcd3 throws "a mix of secure and insecure hosts")', () => {
    expect(etcdEndpointProblems(['https://a:2379', 'https://b:2379', 'http://c:2379'])).toEqual([
      {
        index: 2,
        message:
          '"http://c:2379" is http:// but "https://a:2379" is https://: all endpoints use one scheme (the etcd client dials them all alike)',
      },
    ]);
  });

  // The URL went into the error as given: `--etcd http://root:N3wS3cret@...` printed the password on stderr, and
  // etcd.endpoints in agent.yaml into the log and, on a reload, the config.reload event.
  test.each([
    ['http://root:N3wS3cret@127.0.0.1:2379', 'http://***@127.0.0.1:2379'],
    ['https://root:N3w@S3cret@127.0.0.1:2379', 'https://***@127.0.0.1:2379'],
    ['http://root:N3w/S3cret@127.0.0.1:2379', 'http://***@127.0.0.1:2379'],
    ['http://:N3wS3cret@127.0.0.1:2379', 'http://***@127.0.0.1:2379'],
    // Without a scheme (`--etcd root:N3wS3cret@host:2379`): masked all the same.
    ['root:N3wS3cret@127.0.0.1:2379', '***@127.0.0.1:2379'],
    ['root:N3w/S3cret@127.0.0.1:2379', '***@127.0.0.1:2379'],
    ['N3wS3cret@127.0.0.1:2379', '***@127.0.0.1:2379'],
    // A user alone is masked too: in a NATS URL it is a token, and one rule serves every printer.
    ['http://N3wS3cret@127.0.0.1:2379', 'http://***@127.0.0.1:2379'],
  ])('%s is refused with its password masked', (url, shown) => {
    const problems = etcdEndpointProblems(['http://127.0.0.1:2379', url]);
    expect(problems).toEqual([{ index: 1, message: `${JSON.stringify(shown)} is not ${ETCD_ENDPOINT_FORM}` }]);
    expect(JSON.stringify(problems)).not.toContain('S3cret');
  });
});
