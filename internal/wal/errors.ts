/** The log is damaged somewhere a crash cannot explain: refuse to start rather than guess. */
export class WalCorruptError extends Error {
  override readonly name = "WalCorruptError";
  constructor(
    message: string,
    readonly file: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

export function corrupt(what: string, file: string, offset: number): WalCorruptError {
  return new WalCorruptError(`wal: ${what} in ${file} at offset ${offset}`, file, offset);
}
