// CrAU payloads (spec §3): build, verify, apply from a file, and download-and-apply with resume.
export { Applier, type ApplyOptions, type ApplyResult, type PartitionTarget, type PlannedOp } from "./apply.ts";
export { buildPayload, type BuildOptions, type BuildResult } from "./build.ts";
export { downloadAndApply, type DownloadOptions, type DownloadResult } from "./download.ts";
export { CHECK_CODES, PayloadError, type PayloadCheck } from "./errors.ts";
export { applyPayloadFile, inspectPayload, verifyPayload, type FileCheckOptions, type PayloadInfo, type VerifyResult } from "./file.ts";
export { HOLE, OpType, ProcedureType, type DeltaArchiveManifest, type InstallOperation } from "./proto.ts";
export { b64, hex, MAGIC, SIGNATURE_VERSION } from "./format.ts";
