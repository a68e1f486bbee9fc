// Omaha event types, results and update_engine's error codes (ActionExitCode), with the names a
// server shows for them. The numbers are the wire contract (spec update-engine §1.3).

/** `event@eventtype`. update_engine sends 3, 13 and 14; the others are Omaha's or Nebraska's. */
export const EventType = {
  Unknown: 0,
  DownloadComplete: 1,
  InstallComplete: 2,
  UpdateComplete: 3,
  Uninstall: 4,
  DownloadStarted: 5,
  InstallStarted: 6,
  NewApplicationInstallStarted: 9,
  SetupStarted: 10,
  SetupFinished: 11,
  UpdateApplicationStarted: 12,
  UpdateDownloadStarted: 13,
  UpdateDownloadFinished: 14,
  UpdateInstallerStarted: 15,
  SetupUpdateBegin: 16,
  SetupUpdateComplete: 17,
  RegisterProductComplete: 20,
  OEMInstallFirstCheck: 30,
  AppSpecificCommandStarted: 40,
  AppSpecificCommandEnded: 41,
  SetupFailure: 100,
  ComServerFailure: 102,
  SetupUpdateFailure: 103,
  /** Nebraska's own "installed" (success only). */
  Installed: 800,
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

/** `event@eventresult`. */
export const EventResult = {
  Error: 0,
  Success: 1,
  SuccessReboot: 2,
  SuccessRestartBrowser: 3,
  Cancelled: 4,
  ErrorInstallerMSI: 5,
  ErrorInstallerOther: 6,
  NoUpdate: 7,
  ErrorInstallerSystem: 8,
  UpdateDeferred: 9,
  HandoffError: 10,
} as const;
export type EventResult = (typeof EventResult)[keyof typeof EventResult];

/** update_engine's ActionExitCode values; what `event@errorcode` carries (plus flag bits). */
export const ErrorCode = {
  Success: 0,
  Error: 1,
  OmahaRequestError: 2,
  OmahaResponseHandlerError: 3,
  FilesystemCopierError: 4,
  PostinstallRunnerError: 5,
  SetBootableFlagError: 6,
  InstallDeviceOpenError: 7,
  KernelDeviceOpenError: 8,
  DownloadTransferError: 9,
  PayloadHashMismatchError: 10,
  PayloadSizeMismatchError: 11,
  DownloadPayloadVerificationError: 12,
  DownloadNewPartitionInfoError: 13,
  DownloadWriteError: 14,
  NewRootfsVerificationError: 15,
  NewKernelVerificationError: 16,
  SignedDeltaPayloadExpectedError: 17,
  DownloadPayloadPubKeyVerificationError: 18,
  PostinstallBootedFromFirmwareB: 19,
  DownloadStateInitializationError: 20,
  DownloadInvalidMetadataMagicString: 21,
  DownloadSignatureMissingInManifest: 22,
  DownloadManifestParseError: 23,
  DownloadMetadataSignatureError: 24,
  DownloadMetadataSignatureVerificationError: 25,
  DownloadMetadataSignatureMismatch: 26,
  DownloadOperationHashVerificationError: 27,
  DownloadOperationExecutionError: 28,
  DownloadOperationHashMismatch: 29,
  OmahaRequestEmptyResponseError: 30,
  OmahaRequestXMLParseError: 31,
  DownloadInvalidMetadataSize: 32,
  DownloadInvalidMetadataSignature: 33,
  OmahaResponseInvalid: 34,
  OmahaUpdateIgnoredPerPolicy: 35,
  OmahaUpdateDeferredPerPolicy: 36,
  OmahaErrorInHTTPResponse: 37,
  DownloadOperationHashMissingError: 38,
  DownloadMetadataSignatureMissingError: 39,
  OmahaUpdateDeferredForBackoff: 40,
  PostinstallPowerwashError: 41,
  NewPCRPolicyVerificationError: 42,
  NewPCRPolicyHTTPError: 43,
  RollbackError: 44,
  /** Internal: a download that stopped early and will resume; never reported. */
  DownloadIncomplete: 100,
  /** 2000 + HTTP status of a failed update check. */
  OmahaRequestHTTPResponseBase: 2000,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Bits OR-ed into a reported code. The original ORs them into a C int and prints it with %d, so
 * with the dev-mode bit the wire value is negative; JavaScript's `|` gives the same 32-bit value.
 */
export const ErrorFlag = {
  DevMode: 1 << 31,
  Resumed: 1 << 30,
  TestImage: 1 << 29,
  TestOmahaUrl: 1 << 28,
} as const;
export type ErrorFlag = (typeof ErrorFlag)[keyof typeof ErrorFlag];

const FLAG_MASK = ErrorFlag.DevMode | ErrorFlag.Resumed | ErrorFlag.TestImage | ErrorFlag.TestOmahaUrl;

/** A code as it goes on the wire: the base code with the flags OR-ed in. */
export function withFlags(code: number, flags: readonly ErrorFlag[]): number {
  return flags.reduce((acc, f) => acc | f, code);
}

/** A non-2xx HTTP status on an update check as update_engine reports it (codes outside 0..999 become 999). */
export function httpErrorCode(status: number): number {
  const s = status < 0 || status >= 1000 ? 999 : status;
  return ErrorCode.OmahaRequestHTTPResponseBase + s;
}

const invert = (o: Record<string, number>): Map<number, string> => new Map(Object.entries(o).map(([k, v]) => [v, k]));
const EVENT_TYPE_NAMES = invert(EventType);
const EVENT_RESULT_NAMES = invert(EventResult);
const ERROR_CODE_NAMES = invert(ErrorCode);
const FLAG_NAMES: [number, string][] = [
  [ErrorFlag.DevMode, "DevModeFlag"],
  [ErrorFlag.Resumed, "ResumedFlag"],
  [ErrorFlag.TestImage, "TestImageFlag"],
  [ErrorFlag.TestOmahaUrl, "TestOmahaUrlFlag"],
];

export function eventTypeName(t: number): string {
  return EVENT_TYPE_NAMES.get(t) ?? `EventType${t}`;
}

export function eventResultName(r: number): string {
  return EVENT_RESULT_NAMES.get(r) ?? `EventResult${r}`;
}

export interface DecodedErrorCode {
  /** The code without flag bits. */
  code: number;
  flags: ErrorFlag[];
  /** e.g. "DownloadInvalidMetadataMagicString with TestOmahaUrlFlag", "OmahaRequestHTTPResponseBase+503". */
  name: string;
}

/** Splits a wire `errorcode` (possibly negative, see ErrorFlag) into its code and flags. */
export function decodeErrorCode(wire: number): DecodedErrorCode {
  const code = wire & ~FLAG_MASK;
  const flags = FLAG_NAMES.filter(([bit]) => (wire & bit) !== 0).map(([bit]) => bit as ErrorFlag);
  let base = ERROR_CODE_NAMES.get(code);
  if (base === undefined && code > ErrorCode.OmahaRequestHTTPResponseBase && code < ErrorCode.OmahaRequestHTTPResponseBase + 1000) {
    base = `OmahaRequestHTTPResponseBase+${code - ErrorCode.OmahaRequestHTTPResponseBase}`;
  }
  base ??= `ErrorCode${code}`;
  const flagNames = FLAG_NAMES.filter(([bit]) => (wire & bit) !== 0).map(([, n]) => n);
  return { code, flags, name: flagNames.length ? `${base} with ${flagNames.join(", ")}` : base };
}

/** The result an error event carries: "update deferred" for the policy/backoff codes, else error. */
export function resultForError(code: number): EventResult {
  const c = code & ~FLAG_MASK;
  return c === ErrorCode.OmahaUpdateIgnoredPerPolicy || c === ErrorCode.OmahaUpdateDeferredPerPolicy || c === ErrorCode.OmahaUpdateDeferredForBackoff
    ? EventResult.UpdateDeferred
    : EventResult.Error;
}
