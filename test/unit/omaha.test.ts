// The Omaha documents: the request byte for byte as update_engine writes it, the server's parse of
// it, the response as §1.7 shows it, and the client's reading of responses with every error case.
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  buildRequest,
  buildResponse,
  checkEvent,
  COREOS_APP_ID,
  decodeErrorCode,
  ErrorCode,
  ErrorFlag,
  EventResult,
  EventType,
  eventTypeName,
  interpretCheckReply,
  isUpdatedAndRebooted,
  normalizeAppId,
  parseRequest,
  parseResponse,
  resultForError,
  UPDATER_VERSION,
  withFlags,
  type RequestParams,
} from "../../internal/omaha/index.ts";
import { SPEC_CHECK_REQUEST, SPEC_UPDATE_RESPONSE } from "../helpers/omaha-spec.ts";

const PARAMS: RequestParams = {
  updaterVersion: UPDATER_VERSION,
  interactive: false,
  os: { version: "Chateau", platform: "CoreOS", sp: "4152.2.0_x86_64" },
  app: {
    appid: COREOS_APP_ID,
    version: "4152.2.0",
    track: "stable",
    bootid: "{3f0c1d1e-8a53-4a55-9a5e-4d2b8c1e7a10}",
    oem: "qemu",
    oemversion: "",
    alephversion: "3975.2.1",
    machineid: "0b2c6f1f4d7e4a9c8f3e2d1c0b9a8f7e",
    machinealias: "db-1",
    lang: "en-US",
    board: "amd64-usr",
    hardware_class: "",
    delta_okay: false,
  },
};

// §1.7, verbatim.
const CHECK_REQUEST = SPEC_CHECK_REQUEST;
const UPDATE_RESPONSE = SPEC_UPDATE_RESPONSE;

describe("request documents (client side)", () => {
  test("the update check of §1.7, byte for byte", () => {
    const body = buildRequest(PARAMS, { kind: "updatecheck", event: checkEvent("", "4152.2.0") });
    expect(body).toBe(CHECK_REQUEST);
  });

  test("an error event: only the event, errorcode with the flag bits (§1.7's 268435474)", () => {
    const code = withFlags(ErrorCode.DownloadPayloadPubKeyVerificationError, [ErrorFlag.TestOmahaUrl]);
    expect(code).toBe(268435474);
    const body = buildRequest(PARAMS, { kind: "event", event: { type: EventType.UpdateComplete, result: EventResult.Error, errorCode: code } });
    const lines = body.split("\n");
    const check = CHECK_REQUEST.split("\n");
    expect(lines.slice(0, 4)).toEqual(check.slice(0, 4));
    expect(lines.slice(4)).toEqual(['        <event eventtype="3" eventresult="0" errorcode="268435474"></event>', "    </app>", "</request>", ""]);
  });

  test.each([
    [{ type: 13, result: 1 }, '<event eventtype="13" eventresult="1"></event>'],
    [{ type: 14, result: 1 }, '<event eventtype="14" eventresult="1"></event>'],
    [{ type: 3, result: 1 }, '<event eventtype="3" eventresult="1"></event>'],
    [{ type: 3, result: 9, errorCode: 40 }, '<event eventtype="3" eventresult="9" errorcode="40"></event>'],
    [{ type: 3, result: 0, errorCode: withFlags(21, [ErrorFlag.DevMode]) }, '<event eventtype="3" eventresult="0" errorcode="-2147483627"></event>'],
  ])("event %p", (event, xml) => {
    const body = buildRequest(PARAMS, { kind: "event", event });
    expect(body).toContain(`\n        ${xml}\n    </app>\n`);
    expect(body).not.toContain("<ping");
    expect(body).not.toContain("<updatecheck");
  });

  test("ping-only while waiting for a reboot; ondemandupdate when interactive", () => {
    const body = buildRequest({ ...PARAMS, interactive: true }, { kind: "ping" });
    expect(body).toContain('installsource="ondemandupdate" ismachine="1">');
    expect(body).toContain(' delta_okay="false" >\n        <ping active="1"></ping>\n    </app>\n</request>\n');
  });

  test("attribute values are escaped as libxml2 does (non-ASCII as character references), and read back", () => {
    const alias = `a"<b>&c Zürich 🚀\r`;
    const body = buildRequest({ ...PARAMS, app: { ...PARAMS.app, machinealias: alias } }, { kind: "ping" });
    expect(body).toContain('machinealias="a&quot;&lt;b&gt;&amp;c Z&#xFC;rich &#x1F680;&#13;"');
    expect([...body].every((c) => c.charCodeAt(0) < 0x80)).toBe(true);
    const p = parseRequest(body);
    expect(p.ok && p.request.apps[0]!.machinealias).toBe(alias);
  });

  test.each([
    [null, "4152.2.0", { type: 3, result: 2, previousVersion: "0.0.0.0" }],
    ["", "4152.2.0", { type: 3, result: 2, previousVersion: "" }],
    ["4100.0.0", "4152.2.0", { type: 3, result: 2, previousVersion: "4100.0.0" }],
    ["4152.2.0", "4152.2.0", { type: 3, result: 0, errorCode: 44 }],
  ])("check event for previous-version %p running %p", (pref, running, event) => {
    expect(checkEvent(pref, running)).toEqual(event);
  });
});

describe("request documents (server side)", () => {
  test("parses what the client builds", () => {
    const r = parseRequest(CHECK_REQUEST);
    if (!r.ok) throw new Error(r.error);
    expect(r.request.protocol).toBe("3.0");
    expect(r.request.installsource).toBe("scheduler");
    expect(r.request.os).toEqual({ version: "Chateau", platform: "CoreOS", sp: "4152.2.0_x86_64", arch: "" });
    const app = r.request.apps[0]!;
    expect(app).toMatchObject({ ...PARAMS.app, from_track: "" });
    expect(app.ping).toEqual({ active: "1", a: "", r: "" });
    expect(app.updatecheck).toEqual({ targetversionprefix: "" });
    expect(app.events).toEqual([{ type: 3, result: 2, previousVersion: "" }]);
    expect(isUpdatedAndRebooted(app.events[0]!)).toBe(false);
    expect(isUpdatedAndRebooted({ type: 3, result: 2, previousVersion: "4100.0.0" })).toBe(true);
    expect(isUpdatedAndRebooted({ type: 3, result: 2, previousVersion: "0.0.0.0" })).toBe(false);
  });

  test("an event request has no ping and no updatecheck; negative codes survive", () => {
    const r = parseRequest(buildRequest(PARAMS, { kind: "event", event: { type: 3, result: 0, errorCode: -2147483627 } }));
    if (!r.ok) throw new Error(r.error);
    expect(r.request.apps[0]!.ping).toBeNull();
    expect(r.request.apps[0]!.updatecheck).toBeNull();
    expect(r.request.apps[0]!.events).toEqual([{ type: 3, result: 0, errorCode: -2147483627 }]);
    expect(decodeErrorCode(-2147483627)).toEqual({ code: 21, flags: [ErrorFlag.DevMode], name: "DownloadInvalidMetadataMagicString with DevModeFlag" });
  });

  test.each([
    ["<request", /malformed XML/],
    ['<request protocol="3.0"><app appid="x"></app></request><request/>', /malformed XML|more than one/],
    ['<response protocol="3.0"/>', /not <request>/],
    ['<request protocol="2.0"><app appid="x"/></request>', /request@protocol: protocol must be "3.0"/],
    ['<request><app appid="x"/></request>', /request@protocol/],
    ['<request protocol="3.0"></request>', /without <app>/],
    ['<request protocol="3.0"><app version="1"/></request>', /app\[0\]@appid/],
    ['<request protocol="3.0"><app appid="x"><event eventtype="three" eventresult="1"/></app></request>', /app\[0\]\/event\[0\]@eventtype: must be a decimal integer/],
    ['<request protocol="3.0"><app appid="x"><event eventresult="1"/></app></request>', /event\[0\]@eventtype/],
    ['<request protocol="3.0"><app appid="x" version="&bogus;"/></request>', /malformed XML: undefined entity/],
  ])("refuses %p", (xml, message) => {
    const r = parseRequest(xml);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(message);
  });

  test.each([
    ["-12", -12],
    ["0", 0],
    ["-", "Invalid safe integer: Received NaN"],
    ["99999999999999999999", "Invalid safe integer: Received 100000000000000000000"],
    ["--1", "must be a decimal integer"],
    ["+1", "must be a decimal integer"],
    ["1.0", "must be a decimal integer"],
    [" 1", "must be a decimal integer"],
    ["0x1", "must be a decimal integer"],
    ["\u0661", "must be a decimal integer"],
    ["", "must be a decimal integer"],
  ])("event codes are decimal integers: %p", (code, expected) => {
    const r = parseRequest(`<request protocol="3.0"><app appid="x"><event eventtype="3" eventresult="0" errorcode="${code}"/></app></request>`);
    if (typeof expected === "number") expect(r.ok && r.request.apps[0]!.events[0]!.errorCode).toBe(expected);
    else expect(r).toEqual({ ok: false, error: `app[0]/event[0]@errorcode: ${expected}` });
  });

  test("app ids compare without braces or case", () => {
    expect(normalizeAppId("{E96281A6-d1af-4bde-9a0a-97b76e56dc57}")).toBe(normalizeAppId("e96281a6-d1af-4bde-9a0a-97b76e56dc57"));
  });
});

describe("codes", () => {
  test("names for display", () => {
    expect(eventTypeName(13)).toBe("UpdateDownloadStarted");
    expect(eventTypeName(800)).toBe("Installed");
    expect(decodeErrorCode(268435477).name).toBe("DownloadInvalidMetadataMagicString with TestOmahaUrlFlag");
    expect(decodeErrorCode(2503).name).toBe("OmahaRequestHTTPResponseBase+503");
    expect(decodeErrorCode(44)).toEqual({ code: 44, flags: [], name: "RollbackError" });
    expect(decodeErrorCode(withFlags(10, [ErrorFlag.Resumed, ErrorFlag.TestOmahaUrl])).name).toBe("PayloadHashMismatchError with ResumedFlag, TestOmahaUrlFlag");
  });
  test("deferrals are result 9, everything else 0", () => {
    expect([35, 36, 40, 40 | ErrorFlag.TestOmahaUrl, 44, 10].map(resultForError)).toEqual([9, 9, 9, 9, 0, 0]);
  });
});

describe("response documents (server side)", () => {
  test("the update response of §1.7, byte for byte, with its hashes", () => {
    const payload = Buffer.from("flatcar-example-payload");
    const xml = buildResponse({
      server: "bun-omaha",
      apps: [
        {
          appid: COREOS_APP_ID,
          status: "ok",
          ping: true,
          events: 1,
          updatecheck: {
            status: "ok",
            codebases: ["https://updates.example.internal/amd64-usr/4230.2.0/"],
            version: "4230.2.0",
            packages: [
              { name: "flatcar_production_update.gz", hash: createHash("sha1").update(payload).digest("base64"), size: payload.length, required: true },
              { name: "oem-qemu.gz", hash: "YGFijdFweA8Dn0fURPUU6Arz4sw=", hashSha256: "4321c39bec40289e14ab42503a533efb43dbe0e355be787bb3c89f4519f503b7", size: 3, required: false },
            ],
            postinstall: { sha256: createHash("sha256").update(payload).digest("base64"), disablePayloadBackoff: true },
          },
        },
      ],
    });
    expect(xml).toBe(UPDATE_RESPONSE);
  });

  test("noupdate, error statuses, PollInterval, event acks, several apps", () => {
    const xml = buildResponse({
      server: "s",
      apps: [
        { appid: "a", status: "ok", ping: true, updatecheck: { status: "noupdate", pollInterval: 3600 } },
        { appid: "b", status: "error-unknownApplication", events: 2 },
        { appid: "c", status: "ok", updatecheck: { status: "error-internal" } },
      ],
    });
    expect(xml).toBe(`<?xml version="1.0" encoding="UTF-8"?>
<response protocol="3.0" server="s">
  <daystart elapsed_seconds="0"></daystart>
  <app appid="a" status="ok">
    <ping status="ok"></ping>
    <updatecheck status="noupdate" PollInterval="3600"></updatecheck>
  </app>
  <app appid="b" status="error-unknownApplication">
    <event status="ok"></event>
    <event status="ok"></event>
  </app>
  <app appid="c" status="ok">
    <updatecheck status="error-internal"></updatecheck>
  </app>
</response>
`);
    expect(parseResponse(xml)).toEqual({ kind: "noupdate", pollInterval: 3600 });
  });
});

describe("response documents (client side)", () => {
  test("the §1.7 update", () => {
    const r = parseResponse(UPDATE_RESPONSE);
    expect(r).toEqual({
      kind: "update",
      pollInterval: 0,
      offer: {
        version: "4230.2.0",
        urls: ["https://updates.example.internal/amd64-usr/4230.2.0/flatcar_production_update.gz"],
        packageName: "flatcar_production_update.gz",
        size: 23,
        sha256: "LxysmGf8yIgBvFgnNvoVbPnx1cVjKjA8S7oBAWC5JRk=",
        isDeltaPayload: false,
        disablePayloadBackoff: true,
        maxFailureCountPerUrl: 10,
        packages: [
          { name: "flatcar_production_update.gz", size: 23, hash: "7q+AMyPfLG6MDIeWTVFPra22Mz0=", hashSha256: "" },
          { name: "oem-qemu.gz", size: 3, hash: "YGFijdFweA8Dn0fURPUU6Arz4sw=", hashSha256: "4321c39bec40289e14ab42503a533efb43dbe0e355be787bb3c89f4519f503b7" },
        ],
      },
    });
  });

  const wrap = (uc: string, app = "") => `<response protocol="3.0"><app appid="x" status="ok">${app}${uc}</app></response>`;
  const OK_BODY = (o: { urls?: string; pkg?: string; action?: string; manifest?: boolean } = {}) =>
    `<updatecheck status="ok">${o.urls ?? '<urls><url codebase="http://a/b"/><url codebase="http://c/"/></urls>'}` +
    (o.manifest === false ? "" : `<manifest version="2.0.0"><packages>${o.pkg ?? '<package name="p.gz" size="100"/>'}</packages>` +
      `<actions>${o.action ?? '<action event="postinstall" sha256="abc="/>'}</actions></manifest>`) +
    `</updatecheck>`;
  const err = (code: number) => ({ kind: "error" as const, code });

  test.each<[string, string, Record<string, unknown>]>([
    ["noupdate", wrap('<updatecheck status="noupdate"><urls></urls></updatecheck>'), { kind: "noupdate", pollInterval: 0 }],
    ["noupdate with PollInterval", wrap('<updatecheck status="noupdate" PollInterval="7200"/>'), { kind: "noupdate", pollInterval: 7200 }],
    ["unparsable PollInterval is 0", wrap('<updatecheck status="noupdate" PollInterval="7200s"/>'), { kind: "noupdate", pollInterval: 0 }],
    ["app@status is not inspected", `<response><app status="error-internal"><updatecheck status="noupdate"/></app></response>`, { kind: "noupdate" }],
    ["empty body", "", err(ErrorCode.OmahaRequestEmptyResponseError)],
    ["malformed XML", "<response><app>", err(ErrorCode.OmahaRequestXMLParseError)],
    ["not XML at all", "Service Unavailable", err(ErrorCode.OmahaRequestXMLParseError)],
    ["no updatecheck", wrap("", '<ping status="ok"/>'), err(ErrorCode.OmahaResponseInvalid)],
    ["other document element", '<request><app><updatecheck status="noupdate"/></app></request>', err(ErrorCode.OmahaResponseInvalid)],
    ["updatecheck without status", wrap("<updatecheck/>"), err(ErrorCode.OmahaResponseInvalid)],
    ["status error-internal", wrap('<updatecheck status="error-internal" PollInterval="60"/>'), { kind: "error", code: 34, pollInterval: 60 }],
    ["no manifest", wrap(OK_BODY({ manifest: false })), err(34)],
    ["no urls", wrap(OK_BODY({ urls: "" })), err(34)],
    ["empty codebase", wrap(OK_BODY({ urls: '<urls><url codebase="http://a/"/><url codebase=""/></urls>' })), err(34)],
    ["url without codebase", wrap(OK_BODY({ urls: "<urls><url/></urls>" })), err(34)],
    ["no package", wrap(OK_BODY({ pkg: "" })), err(34)],
    ["package without name", wrap(OK_BODY({ pkg: '<package size="1"/>' })), err(34)],
    ["package without size", wrap(OK_BODY({ pkg: '<package name="p"/>' })), err(34)],
    ["package size 0", wrap(OK_BODY({ pkg: '<package name="p" size="0"/>' })), err(34)],
    ["package size negative", wrap(OK_BODY({ pkg: '<package name="p" size="-5"/>' })), err(34)],
    ["no action", wrap(OK_BODY({ action: "" })), err(34)],
    ["no postinstall action", wrap(OK_BODY({ action: '<action event="install" sha256="x"/>' })), err(34)],
    ["postinstall without sha256", wrap(OK_BODY({ action: '<action event="postinstall"/>' })), err(34)],
  ])("%s", (_name, xml, expected) => {
    expect(parseResponse(xml)).toMatchObject(expected);
  });

  test("urls get the package name appended (a / added where missing); first package and first postinstall win", () => {
    const r = parseResponse(
      wrap(
        OK_BODY({
          pkg: '<package name="p.gz" size="100"/><package name="q.gz" size="7"/>',
          action: '<action event="preinstall" sha256="no"/><action event="postinstall" sha256="yes=" IsDeltaPayload="true" MaxFailureCountPerUrl="3"/><action event="postinstall" sha256="later"/>',
        }),
      ),
    );
    if (r.kind !== "update") throw new Error(JSON.stringify(r));
    expect(r.offer.urls).toEqual(["http://a/b/p.gz", "http://c/p.gz"]);
    expect(r.offer.size).toBe(100);
    expect(r.offer.sha256).toBe("yes=");
    expect(r.offer.isDeltaPayload).toBe(true);
    expect(r.offer.disablePayloadBackoff).toBe(false);
    expect(r.offer.maxFailureCountPerUrl).toBe(3);
    expect(r.offer.packages.map((p) => p.name)).toEqual(["p.gz", "q.gz"]);
  });

  test("the first updatecheck in document order is the one read", () => {
    const xml = `<response><app appid="a"><ping/></app><app appid="b"><updatecheck status="noupdate"/></app><app><updatecheck status="ok"/></app></response>`;
    expect(parseResponse(xml)).toEqual({ kind: "noupdate", pollInterval: 0 });
  });

  test("size is read like sscanf %i (leading number only)", () => {
    const r = parseResponse(wrap(OK_BODY({ pkg: '<package name="p" size=" 123abc"/>' })));
    expect(r.kind === "update" && r.offer.size).toBe(123);
  });

  test.each([
    [500, 2500],
    [503, 2503],
    [404, 2404],
    [302, 2302],
    [1200, 2999],
  ])("HTTP %d is error %d", (status, code) => {
    expect(interpretCheckReply(status, UPDATE_RESPONSE)).toMatchObject({ kind: "error", code });
  });

  test("a 2xx reply goes to the body", () => {
    expect(interpretCheckReply(200, UPDATE_RESPONSE).kind).toBe("update");
    expect(interpretCheckReply(200, "")).toMatchObject({ kind: "error", code: 30 });
  });
});
