import { describe, expect, test } from 'vitest';
import { DashboardError } from './errors.js';
import { parseListen, parseMetricsTargets } from './options.js';

describe('options', () => {
  test('options - --agent-metrics: NODE=URL pairs; a bare host:port gets /metrics', () => {
    expect(parseMetricsTargets('n1=http://127.0.0.1:9469, n2=http://127.0.0.2:9469/m')).toEqual(
      new Map([
        ['n1', 'http://127.0.0.1:9469/metrics'],
        ['n2', 'http://127.0.0.2:9469/m'],
      ]),
    );
  });

  test.each(['n1=http://host:99999', 'n1=http://[::1', 'n1=http://a%zz:1'])(
    'options - --agent-metrics %j that is not a URL is OPTION_INVALID naming the option and the value',
    (text) => {
      let caught: unknown;
      try {
        parseMetricsTargets(text);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(DashboardError);
      expect(caught).toMatchObject({ code: 'OPTION_INVALID' });
      expect((caught as Error).message).toBe(
        `agent-metrics: ${JSON.stringify(text)}: ${JSON.stringify(text.slice(3))} is not a URL`,
      );
    },
  );

  test.each([
    ['n1=http://admin:s3cret@198.18.0.11:9469', 'n1=http://***@198.18.0.11:9469'],
    ['n1=http://admin@198.18.0.11:9469', 'n1=http://***@198.18.0.11:9469'],
    ['n1=http://:s3cret@198.18.0.11:9469/metrics', 'n1=http://***@198.18.0.11:9469/metrics'],
  ])('options - --agent-metrics %j with credentials is refused, the password masked', (text, shown) => {
    let caught: unknown;
    try {
      parseMetricsTargets(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DashboardError);
    expect(caught).toMatchObject({ code: 'OPTION_INVALID' });
    expect((caught as Error).message).toBe(
      `agent-metrics: ${JSON.stringify(shown)}: a user or password in the URL is not supported (an agent's /metrics takes none)`,
    );
    expect((caught as Error).message).not.toContain('s3cret');
  });

  test('options - --agent-metrics with a / in the password (each parser splits it its own way): masked whole', () => {
    expect(() => parseMetricsTargets('n1=http://admin:s3cret/x@198.18.0.11:9469')).toThrow(DashboardError);
    try {
      parseMetricsTargets('n1=http://admin:s3cret/x@198.18.0.11:9469');
    } catch (err) {
      expect((err as Error).message).not.toMatch(/s3cret|admin/);
    }
  });

  test('options - --agent-metrics without a scheme: the password is masked in the refusal too', () => {
    expect(() => parseMetricsTargets('n1=admin:s3cret@198.18.0.11:9469')).toThrow(
      'agent-metrics: "n1=***@198.18.0.11:9469" is not NODE=http://HOST:PORT[/metrics]',
    );
  });

  // The list was split on ',' before masking: a password with a comma left a first half without its '@', shown as it was.
  test.each([
    ['n1=http://admin:Xy9,Tq7@198.18.0.11:9469', '"n1=http://***@198.18.0.11:9469"'],
    ['n1=http://198.18.0.10:9469,n2=http://admin:Xy9,Tq7@198.18.0.11:9469', '"n1=http://***@198.18.0.11:9469"'],
    ['n1=http://admin:Xy9@h,Tq7@198.18.0.11:9469', '"n1=http://***@198.18.0.11:9469"'],
  ])('options - --agent-metrics %j: a password with a comma is masked whole in the refusal', (text, shown) => {
    let caught: unknown;
    try {
      parseMetricsTargets(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DashboardError);
    expect((caught as Error).message).toMatch(new RegExp(`^agent-metrics: ${shown.replace(/[.*]/g, '\\$&')}`));
    expect((caught as Error).message).not.toMatch(/Xy9|Tq7|admin/);
  });

  test('options - --agent-metrics: a password is masked in the error of a URL that does not parse either', () => {
    expect(() => parseMetricsTargets('n1=http://admin:s3cret@host:99999')).toThrow(
      'agent-metrics: "n1=http://***@host:99999": "http://***@host:99999" is not a URL',
    );
  });

  test.each([
    ['127.0.0.1:9470', '127.0.0.1', 9470],
    ['0.0.0.0:0', '0.0.0.0', 0],
    ['localhost:9470', 'localhost', 9470],
    ['[0:0:0:0:0:0:0:1]:9470', '::1', 9470],
  ])('options - --listen %j: the address canonical (the URL printed is what was bound)', (text, host, port) => {
    expect(parseListen(text)).toEqual({ host, port });
  });

  // 0:0 bound 0.0.0.0 and printed http://0:PORT/; 127.1 (inet_aton shorthand) bound 127.0.0.1; a name other than
  // localhost, or 300.1.1.1, failed at the bind with getaddrinfo's ENOTFOUND.
  test.each(['0:0', '127.1:0', '300.1.1.1:9470', 'dashboard.example:9470', 'nowhere', '127.0.0.1:65536', '[x]:1'])(
    'options - --listen %j is OPTION_INVALID naming the option and the value',
    (text) => {
      let caught: unknown;
      try {
        parseListen(text);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(DashboardError);
      expect(caught).toMatchObject({ code: 'OPTION_INVALID' });
      expect((caught as Error).message).toMatch(
        new RegExp(`^listen: ${JSON.stringify(text).replace(/[.[\]]/g, '\\$&')} is not ADDRESS:PORT`),
      );
    },
  );
});
