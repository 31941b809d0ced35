import { describe, expect, it } from 'vitest';
import { deadlineIn, settledWithin } from '../../src/shared/deadline.js';

describe('settledWithin', () => {
  it('is true for work that settles in time, whether it resolves or rejects', async () => {
    expect(await settledWithin(Promise.resolve(1), 1_000)).toBe(true);
    expect(await settledWithin(Promise.reject(new Error('x')), 1_000)).toBe(true);
  });

  it('is false for work that never settles, once the time is up (0 or below: at once)', async () => {
    const never = new Promise<void>(() => {});
    expect(await settledWithin(never, 5)).toBe(false);
    expect(await settledWithin(never, -10)).toBe(false);
  });
});

describe('deadlineIn', () => {
  it('tells how long is left, never below 0', () => {
    let now = 1_000;
    const left = deadlineIn(500, () => now);
    expect(left()).toBe(500);
    now = 1_300;
    expect(left()).toBe(200);
    now = 9_000;
    expect(left()).toBe(0);
  });
});
