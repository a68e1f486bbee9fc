// The Omaha documents of spec §1.7, verbatim: the update check update_engine sends and the update
// offered in answer. The client side (building the request, reading the answer) and the update
// server (answering the request) are both held to them byte for byte.

/** update_engine's update check with a ping and an event. */
export const SPEC_CHECK_REQUEST = `<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" installsource="scheduler" ismachine="1">
    <os version="Chateau" platform="CoreOS" sp="4152.2.0_x86_64"></os>
    <app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="4152.2.0" track="stable" bootid="{3f0c1d1e-8a53-4a55-9a5e-4d2b8c1e7a10}" oem="qemu" oemversion="" alephversion="3975.2.1" machineid="0b2c6f1f4d7e4a9c8f3e2d1c0b9a8f7e" machinealias="db-1" lang="en-US" board="amd64-usr" hardware_class="" delta_okay="false" >
        <ping active="1"></ping>
        <updatecheck></updatecheck>
        <event eventtype="3" eventresult="2" previousversion=""></event>
    </app>
</request>
`;

/** What the update server and the Omaha module answer to it, with an update offered. */
export const SPEC_UPDATE_RESPONSE = `<?xml version="1.0" encoding="UTF-8"?>
<response protocol="3.0" server="bun-omaha">
  <daystart elapsed_seconds="0"></daystart>
  <app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" status="ok">
    <ping status="ok"></ping>
    <updatecheck status="ok">
      <urls><url codebase="https://updates.example.internal/amd64-usr/4230.2.0/"></url></urls>
      <manifest version="4230.2.0">
        <packages>
          <package name="flatcar_production_update.gz" hash="7q+AMyPfLG6MDIeWTVFPra22Mz0=" size="23" required="true"></package>
          <package name="oem-qemu.gz" hash="YGFijdFweA8Dn0fURPUU6Arz4sw=" hash_sha256="4321c39bec40289e14ab42503a533efb43dbe0e355be787bb3c89f4519f503b7" size="3" required="false"></package>
        </packages>
        <actions>
          <action event="postinstall" sha256="LxysmGf8yIgBvFgnNvoVbPnx1cVjKjA8S7oBAWC5JRk=" DisablePayloadBackoff="true"></action>
        </actions>
      </manifest>
    </updatecheck>
    <event status="ok"></event>
  </app>
</response>
`;
