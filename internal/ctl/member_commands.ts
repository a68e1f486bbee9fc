// member list|add|remove|update (ctlv2/command/member_commands.go). Unlike the key commands
// these check their arguments before connecting, print bare errors and exit 1.
import { errorText } from "./format.ts";
import { goQuote } from "./goflag.ts";
import { Exit, ExitCode } from "./io.ts";
import type { CommandFn } from "./key_commands.ts";
import type { Session } from "./session.ts";

function fail(s: Session, text: string): never {
  s.io.err(text);
  throw new Exit(ExitCode.BadArgs);
}

export const memberListCommand: CommandFn = async (s, args) => {
  if (args.length !== 0) fail(s, "No arguments accepted\n");
  const c = await s.mustNewClient();
  const signal = s.totalTimeout();
  const members = await c.members({ signal }).catch((e) => fail(s, `${errorText(e)}\n`));
  const leader = await c.leader({ signal }).catch((e) => fail(s, `Failed to get leader:  ${errorText(e)}\n`));
  let out = "";
  for (const m of members) {
    if (m.name === "") out += `${m.id}[unstarted]: peerURLs=${m.peerURLs.join(",")}\n`;
    else {
      out += `${m.id}: name=${m.name} peerURLs=${m.peerURLs.join(",")} clientURLs=${m.clientURLs.join(",")} isLeader=${m.id === leader.id}\n`;
    }
  }
  s.io.out(out);
};

export const memberAddCommand: CommandFn = async (s, args) => {
  if (args.length !== 2) fail(s, "Provide a name and a single member peerURL\n");
  const c = await s.mustNewClient();
  const [name, url] = [args[0]!, args[1]!];
  const signal = s.totalTimeout();
  const m = await c.addMember([url], { signal }).catch((e) => fail(s, `${errorText(e)}\n`));
  s.io.out(`Added member named ${name} with ID ${m.id} to cluster\n`);
  const members = await c.members({ signal }).catch((e) => fail(s, `${errorText(e)}\n`));
  // The line to start the new member with: every peer URL, the new one under its given name.
  const conf = members.flatMap((mb) => mb.peerURLs.map((u) => `${mb.id === m.id ? name : mb.name}=${u}`));
  s.io.out(`\nETCD_NAME=${goQuote(name)}\nETCD_INITIAL_CLUSTER=${goQuote(conf.join(","))}\nETCD_INITIAL_CLUSTER_STATE="existing"\n`);
};

export const memberRemoveCommand: CommandFn = async (s, args) => {
  if (args.length !== 1) fail(s, "Provide a single member ID\n");
  const id = args[0]!;
  const c = await s.mustNewClient();
  const signal = s.totalTimeout();
  const members = await c
    .members({ signal })
    .catch((e) => fail(s, `Error while verifying ID against known members: ${errorText(e)}\n`));
  let found = false;
  for (const m of members) {
    if (m.id === id) found = true;
    if (m.name === id) {
      s.io.err(`Found a member named ${m.name}; if this is correct, please use its ID, eg:\n\tetcdctl member remove ${m.id}\n`);
      s.io.err(
        "For more details, read the documentation at https://github.com/etcd-io/etcd/blob/master/Documentation/runtime-configuration.md#remove-a-member\n\n",
      );
    }
  }
  if (!found) fail(s, `Couldn't find a member in the cluster with an ID of ${id}.\n`);
  await c.removeMember(id, { signal }).catch((e) => fail(s, `Received an error trying to remove member ${id}: ${errorText(e)}`));
  s.io.out(`Removed member ${id} from cluster\n`);
};

export const memberUpdateCommand: CommandFn = async (s, args) => {
  if (args.length !== 2) {
    fail(s, "Provide an ID and a list of comma separated peerURL (0xabcd http://example.com,http://example1.com)\n");
  }
  const c = await s.mustNewClient();
  const [id, urls] = [args[0]!, args[1]!];
  await c.updateMember(id, urls.split(","), { signal: s.totalTimeout() }).catch((e) => fail(s, `${errorText(e)}\n`));
  s.io.out(`Updated member with ID ${id} in cluster\n`);
};
