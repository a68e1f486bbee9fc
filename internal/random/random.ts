// One seeded random source for everything that must replay a run from a number: update schedules
// (the daemon's --seed) and the randomized tests that print their seed on failure.

/** A random float in [0, 1). */
export type Rand = () => number;

/** mulberry32: small, fast and the same on every run, so a seed reproduces the whole sequence. */
export function seededRand(seed: number): Rand {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
