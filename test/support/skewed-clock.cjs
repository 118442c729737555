/**
 * Preload (`node --require test/support/skewed-clock.cjs`) that shifts the process's wall clock by
 * CLOCK_SKEW_MS milliseconds (negative: behind): `Date.now()`, `new Date()` and `Date()` read the
 * shifted time, as on a host whose clock is off. Dates built from a value (`new Date(ms)`,
 * `new Date('2026-...')`) keep that value, and timers and `performance.now()` are untouched, as with
 * a real wall-clock offset.
 */
'use strict';

const skew = Number(process.env.CLOCK_SKEW_MS ?? 0);
if (!Number.isFinite(skew)) throw new Error(`CLOCK_SKEW_MS: "${process.env.CLOCK_SKEW_MS}" is not a number`);

if (skew !== 0) {
  const RealDate = Date;
  const realNow = RealDate.now.bind(RealDate);
  const now = () => realNow() + skew;
  const SkewedDate = new Proxy(RealDate, {
    construct(target, args, newTarget) {
      return Reflect.construct(target, args.length === 0 ? [now()] : args, newTarget === SkewedDate ? target : newTarget);
    },
    apply() {
      return new RealDate(now()).toString();
    },
    get(target, prop, receiver) {
      if (prop === 'now') return now;
      return Reflect.get(target, prop, receiver);
    },
  });
  globalThis.Date = SkewedDate;
}
