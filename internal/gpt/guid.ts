// GUIDs as GPT stores them: the first three fields little-endian, the last two as written
// ("mixed endian"), so 5DFBF5F4-2848-4BAC-... is on disk as f4 f5 fb 5d 48 28 ac 4b ...

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const ZERO_GUID = "00000000-0000-0000-0000-000000000000";

/** Upper case canonical form (as cgpt and sgdisk print), or undefined when `s` is not a GUID. */
export function parseGuid(s: string): string | undefined {
  return GUID_RE.test(s) ? s.toUpperCase() : undefined;
}

export function decodeGuid(b: Uint8Array, off: number): string {
  const h = (i: number) => b[off + i]!.toString(16).padStart(2, "0");
  const run = (idx: number[]) => idx.map(h).join("");
  return [
    run([3, 2, 1, 0]),
    run([5, 4]),
    run([7, 6]),
    run([8, 9]),
    run([10, 11, 12, 13, 14, 15]),
  ].join("-").toUpperCase();
}

export function encodeGuid(guid: string, b: Uint8Array, off: number): void {
  const hex = guid.replaceAll("-", "");
  const byte = (i: number) => parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  for (let i = 0; i < 16; i++) b[off + i] = byte(order[i]!);
}

/** A random (version 4) GUID, as cgpt and sgdisk give new partitions and disks. */
export function randomGuid(): string {
  return crypto.randomUUID().toUpperCase();
}

// Type GUIDs of the CoreOS layout (§4.1) and the ones cgpt names in `show`.
export const TYPE = {
  efi: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
  bios: "21686148-6449-6E6F-744E-656564454649",
  usr: "5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6",
  data: "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
  reserved: "C95DC21A-DF0E-4340-8D7B-26CBFA9A03E0",
  resize: "3884DD41-8582-4404-B9A8-E9B84F2DF50E",
  rootRaid: "BE9067B9-EA49-4F15-B4F6-F36F8C9E1818",
  chromeosKernel: "FE3A2A5D-4F32-41A7-B725-ACCC3285A309",
  chromeosRootfs: "3CB8E202-3B7E-47DD-8A3C-7FF2A13CFCEC",
  chromeosReserved: "2E0A753D-9E48-43B0-8337-B15192CB1B5E",
  unused: ZERO_GUID,
} as const;

/** Fixed PARTUUIDs of the two USR slots: grub.cfg picks vmlinuz-a by USR-A's. */
export const USR_A_UUID = "7130C94A-213A-4E5A-8E26-6CCE9662F132";
export const USR_B_UUID = "E03DD35C-7C2D-4A47-B3FE-27F15780A57C";

/** Names as Flatcar's cgpt prints them in `show` (Debian cgpt only names the ChromeOS and EFI ones). */
const TYPE_NAMES: Record<string, string> = {
  [TYPE.efi]: "EFI System Partition",
  [TYPE.bios]: "BIOS Boot Partition",
  [TYPE.usr]: "Alias for coreos-rootfs",
  [TYPE.data]: "Alias for linux-data",
  [TYPE.reserved]: "CoreOS reserved",
  [TYPE.resize]: "CoreOS auto-resize",
  [TYPE.rootRaid]: "CoreOS RAID",
  [TYPE.chromeosKernel]: "ChromeOS kernel",
  [TYPE.chromeosRootfs]: "ChromeOS rootfs",
  [TYPE.chromeosReserved]: "ChromeOS reserved",
};

export function typeName(guid: string): string {
  return TYPE_NAMES[guid] ?? guid;
}

/** Aliases accepted where a type is asked for (cgpt's names plus the coreos-/flatcar- ones). */
const TYPE_ALIASES: Record<string, string> = {
  efi: TYPE.efi,
  bios: TYPE.bios,
  "coreos-usr": TYPE.usr,
  "coreos-rootfs": TYPE.usr,
  "flatcar-usr": TYPE.usr,
  "flatcar-rootfs": TYPE.usr,
  data: TYPE.data,
  "linux-data": TYPE.data,
  "coreos-reserved": TYPE.reserved,
  "flatcar-reserved": TYPE.reserved,
  "coreos-resize": TYPE.resize,
  "flatcar-resize": TYPE.resize,
  "coreos-root-raid": TYPE.rootRaid,
  kernel: TYPE.chromeosKernel,
  rootfs: TYPE.chromeosRootfs,
  unused: TYPE.unused,
};

export function parseType(s: string): string | undefined {
  return TYPE_ALIASES[s.toLowerCase()] ?? parseGuid(s);
}
