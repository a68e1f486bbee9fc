// etcd v2 error codes (v2error/error.go): the exact messages and HTTP statuses clients match on.

export const ErrorCode = {
  KeyNotFound: 100,
  TestFailed: 101,
  NotFile: 102,
  NotDir: 104,
  NodeExist: 105,
  RootROnly: 107,
  DirNotEmpty: 108,
  Unauthorized: 110,
  PrevValueRequired: 201,
  TTLNaN: 202,
  IndexNaN: 203,
  InvalidField: 209,
  InvalidForm: 210,
  RefreshValue: 211,
  RefreshTTLRequired: 212,
  RaftInternal: 300,
  LeaderElect: 301,
  WatcherCleared: 400,
  EventIndexCleared: 401,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const messages: Record<ErrorCode, string> = {
  100: "Key not found",
  101: "Compare failed",
  102: "Not a file",
  104: "Not a directory",
  105: "Key already exists",
  107: "Root is read only",
  108: "Directory not empty",
  110: "The request requires user authentication",
  201: "PrevValue is Required in POST form",
  202: "The given TTL in POST form is not a number",
  203: "The given index in POST form is not a number",
  209: "Invalid field",
  210: "Invalid POST form",
  211: "Value provided on refresh",
  212: "A TTL must be provided on refresh",
  300: "Raft Internal Error",
  301: "During Leader Election",
  400: "watcher is cleared due to etcd recovery",
  401: "The event in requested index is outdated and cleared",
};

/** An etcd v2 API error. `index` is the store index at failure (0 for request validation errors). */
export class EtcdError extends Error {
  constructor(
    readonly errorCode: ErrorCode,
    readonly errorCause: string = "",
    readonly index: number = 0,
  ) {
    super(messages[errorCode]);
  }

  get status(): number {
    switch (this.errorCode) {
      case 100:
        return 404;
      case 101:
      case 105:
        return 412;
      case 102:
      case 108:
        return 403;
      case 110:
        return 401;
      case 300:
      case 301:
        return 500;
      default:
        return 400;
    }
  }

  /** The JSON body etcd sends, field order included (cause omitted when empty). */
  toJSON(): { errorCode: number; message: string; cause?: string; index: number } {
    return this.errorCause === ""
      ? { errorCode: this.errorCode, message: this.message, index: this.index }
      : { errorCode: this.errorCode, message: this.message, cause: this.errorCause, index: this.index };
  }
}
