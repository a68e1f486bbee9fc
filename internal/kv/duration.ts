// Go's time.Duration.String(), which etcd's stats print ("1.005464933s", "1m0.58s", "350ms").

function trimFraction(n: number, digits: number): string {
  const t = n.toFixed(digits);
  return t.includes(".") ? t.replace(/\.?0+$/, "") : t;
}

export function goDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms < 0) return `-${goDuration(-ms)}`;
  if (ms < 1e-3) return `${trimFraction(ms * 1e6, 0)}ns`;
  if (ms < 1) return `${trimFraction(ms * 1e3, 3)}µs`;
  if (ms < 1000) return `${trimFraction(ms, 6)}ms`;
  const totalSeconds = ms / 1000;
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = trimFraction(totalSeconds % 60, 9);
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}
