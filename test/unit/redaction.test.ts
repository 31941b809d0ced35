import { describe, expect, it } from 'vitest';
import { NAME, nameFrom } from '../../src/shared/names.js';
import { hideCredentials, safeMessage } from '../../src/shared/redaction.js';

describe('hideCredentials', () => {
  it('hides each address credentials and keeps its host, in a list or inside a message', () => {
    // A message keeps what is not a URL's user info: a path with an @, the hosts.
    expect(safeMessage(new Error("ENOENT: open '/etc/nats/edge@pi.creds'"))).toBe("ENOENT: open '/etc/nats/edge@pi.creds'");
    expect(safeMessage('nats://u:p@h:4222 failed for ops@x.com')).toBe('nats://[redacted]@h:4222 failed for ops@x.com');
    expect(hideCredentials('nats://u:p@a:4222,nats://b:4222,tls://tok@c:4443')).toBe('nats://[redacted]@a:4222,nats://b:4222,tls://[redacted]@c:4443');
    expect(safeMessage(new Error('connect ECONNREFUSED nats://user:hunter2@nats-1:4222'))).toBe('connect ECONNREFUSED nats://[redacted]@nats-1:4222');
    expect(safeMessage('no credentials in nats://host:4222')).toBe('no credentials in nats://host:4222');
  });

  it('leaks no part of a password holding @, /, a comma or a line break', () => {
    for (const text of ['nats://u:hun@ter/2@h:4222', 'nats://u:hun,ter2@h', 'nats://u:hun\nter2@h', 'u:hunter2@h', 'nats://alice:hunter2://xyz@h:4222']) {
      const shown = hideCredentials(text);
      expect(shown, text).not.toMatch(/hun/);
      expect(shown, text).toMatch(/\[redacted\]@h/);
    }
  });
});

describe('the name pattern', () => {
  it('takes 1 to 64 of a-z, 0-9, _ and -, and makes one from any text', () => {
    expect(['data', 'a_b-9', 'x'.repeat(64)].every((name) => NAME.test(name))).toBe(true);
    expect(['', 'Data', 'a.b', 'x'.repeat(65), 'a/b'].some((name) => NAME.test(name))).toBe(false);
    expect(nameFrom('Pi.Local', 'localhost')).toBe('pi-local');
    expect(nameFrom('', 'localhost')).toBe('localhost');
  });
});
