// The application's side of Raft: the Ready/advance contract, proposals, ReadIndex, snapshots
// sent to lagging followers, membership changes, and messages that survive a JSON transport.
import { describe, expect, test } from "bun:test";
import { decodeConfChange, encodeConfChange } from "../../internal/raft/confchange.ts";
import { RawNode } from "../../internal/raft/rawnode.ts";
import { MemoryStorage } from "../../internal/raft/storage.ts";
import { ErrConfChangePending, ErrProposalDropped, ErrStepLocalMsg, newMessage } from "../../internal/raft/types.ts";
import { TestCluster, bytes } from "../sim/testcluster.ts";

const text = (d: Uint8Array) => new TextDecoder().decode(d);
const ids = ["a", "b", "c"];

describe("Ready and advance", () => {
  test("a bootstrapped node's first Ready: the peers as committed conf-change entries of term 1", () => {
    const storage = new MemoryStorage();
    const rn = new RawNode({ id: "a", peers: ids, storage, random: () => 0 });
    expect(rn.hasReady()).toBe(true);
    const rd = rn.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: "", commit: 3 });
    expect(rd.entries.map((e) => [e.index, e.term, e.type])).toEqual([
      [1, 1, 1],
      [2, 1, 1],
      [3, 1, 1],
    ]);
    expect(rd.committedEntries.map((e) => decodeConfChange(e.data).cc)).toEqual(ids.map((nodeId) => ({ type: "add", nodeId })));
    expect(rd.mustSync).toBe(true);
    expect(() => rn.ready()).toThrow(/before advance/);
    expect(rn.hasReady()).toBe(false);
    storage.append(rd.entries);
    storage.setHardState(rd.hardState!);
    rn.advance();
    expect(rn.hasReady()).toBe(false);
    expect(() => rn.advance()).toThrow(/without a Ready/);
    expect(rn.status()).toMatchObject({ term: 1, commit: 3, applied: 3, voters: ids });
  });

  test("peers are ignored when the storage already holds state (a restart)", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    c.node("a").rn.propose(bytes("x"));
    c.stabilize();
    const before = c.raft("b").log.lastIndex();
    const b = c.start("b", c.node("b").storage, ["z"]);
    expect(b.rn.raft.log.lastIndex()).toBe(before);
    expect([...b.rn.raft.prs.keys()]).toEqual([]);
  });

  test("a restarted node redelivers committed entries after `applied`", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    for (const v of ["x", "y"]) c.node("a").rn.propose(bytes(v));
    c.stabilize();
    const b = c.start("b", c.node("b").storage);
    c.stabilize();
    expect(b.applied.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(text(b.applied[5]!.data)).toBe("y");
    // The bootstrap conf changes were re-applied: b knows the voters again.
    expect([...b.rn.raft.prs.keys()]).toEqual(ids);
  });

  test("an applied index beyond the durable commit index (lost unsynced) counts as committed", () => {
    const storage = new MemoryStorage();
    storage.append([1, 2, 3, 4, 5].map((index) => ({ index, term: 1, type: 0 as const, data: bytes(`e${index}`) })));
    storage.setHardState({ term: 1, vote: "", commit: 3 });
    const rn = new RawNode({ id: "a", storage, random: () => 0, applied: 5 });
    expect(rn.status()).toMatchObject({ commit: 5, applied: 5 });
    expect(rn.hasReady()).toBe(true);
    expect(rn.ready().committedEntries).toEqual([]);
  });

  test("only a changed term or vote (or new entries) needs an fsync; a commit index does not", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    const b = c.node("b").rn;
    const commit = b.raft.log.committed;
    c.isolate("b");
    c.node("a").rn.propose(bytes("x"));
    c.stabilize();
    // b gets the entry, acks it; it is committed by a and c; then a heartbeat tells b the commit.
    const lead = c.raft("a");
    b.step(newMessage({ type: "MsgApp", from: "a", to: "b", term: lead.term, index: commit, logTerm: lead.log.term(commit), entries: lead.log.entries(commit + 1, Infinity), commit }));
    let rd = b.ready();
    expect(rd.mustSync).toBe(true);
    c.node("b").storage.append(rd.entries);
    b.advance();
    b.step(newMessage({ type: "MsgHeartbeat", from: "a", to: "b", term: lead.term, commit: commit + 1 }));
    rd = b.ready();
    expect(rd.hardState?.commit).toBe(commit + 1);
    expect(rd.entries).toEqual([]);
    expect(rd.mustSync).toBe(false);
    b.advance();
  });

  test("proposals made between Readys are batched into one", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    const rn = c.node("a").rn;
    for (let i = 0; i < 100; i++) rn.propose(bytes(`v${i}`));
    const rd = rn.ready();
    expect(rd.entries.length).toBe(100);
    c.node("a").storage.append(rd.entries);
    rn.advance();
    c.transmit(rd.messages);
    expect(c.node("c").applied.filter((e) => e.data.length > 0 && e.type === 0).length).toBe(100);
  });

  test("proposals: forwarded by followers, dropped without a leader, local messages refused from peers", () => {
    const c = new TestCluster(ids);
    expect(() => c.node("b").rn.propose(bytes("early"))).toThrow(ErrProposalDropped);
    c.elect("a");
    c.node("b").rn.propose(bytes("via b"));
    c.stabilize();
    expect(c.node("a").applied.some((e) => text(e.data) === "via b")).toBe(true);
    expect(() => c.node("a").rn.step(newMessage({ type: "MsgHup", from: "b" }))).toThrow(ErrStepLocalMsg);
  });

  test("status reports the leader's view of each follower", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    const s = c.node("a").rn.status();
    expect(s).toMatchObject({ id: "a", state: "StateLeader", lead: "a", leadTransferee: "" });
    expect(s.progress.b).toEqual({ match: s.commit, next: s.commit + 1, state: "StateReplicate", paused: false });
    expect(c.node("b").rn.status().progress).toEqual({});
  });
});

describe("ReadIndex", () => {
  test("the leader answers only after a quorum acknowledges a heartbeat carrying the request", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    c.isolate("a");
    c.node("a").rn.readIndex("r1");
    c.stabilize();
    expect(c.node("a").readStates).toEqual([]);
    c.heal();
    c.tick(1, ["a"]);
    expect(c.node("a").readStates).toEqual([{ index: c.raft("a").log.committed, ctx: "r1" }]);
  });

  test("a follower's request goes to the leader and comes back with the leader's commit index", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    c.node("a").rn.propose(bytes("x"));
    c.stabilize();
    c.node("c").rn.readIndex("r2");
    c.stabilize();
    expect(c.node("c").readStates).toEqual([{ index: c.raft("a").log.committed, ctx: "r2" }]);
  });

  test("a new leader serves reads only once an entry of its own term is committed", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    c.filter = (m) => !(m.type === "MsgApp" && m.from === "b");
    c.node("a").rn.transferLeadership("b");
    c.stabilize();
    expect(c.leader()).toBe("b");
    const b = c.raft("b");
    expect(b.log.committed).toBeLessThan(b.log.lastIndex());
    c.node("b").rn.readIndex("r3");
    c.stabilize();
    expect(c.node("b").readStates).toEqual([]);
    c.filter = null;
    c.tick(1, ["b"]);
    expect(c.node("b").readStates).toEqual([{ index: b.log.lastIndex(), ctx: "r3" }]);
  });

  test("a single voter answers at once; without a leader the request is dropped", () => {
    const solo = new TestCluster(["s"]);
    solo.tick(20);
    solo.node("s").rn.readIndex("r4");
    solo.stabilize();
    expect(solo.node("s").readStates.map((r) => r.ctx)).toEqual(["r4"]);
    const c = new TestCluster(ids);
    c.node("b").rn.readIndex("r5");
    c.stabilize();
    expect(c.node("b").readStates).toEqual([]);
  });
});

describe("snapshots", () => {
  test("a follower that needs compacted entries gets the leader's snapshot, then entries again", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    c.isolate("c");
    for (let i = 0; i < 10; i++) c.node("a").rn.propose(bytes(`v${i}`));
    c.stabilize();
    const snap = c.snapshot("a", bytes("a's state"));
    c.heal();
    c.sent = [];
    c.tick(1);
    expect(c.sent.filter((m) => m.type === "MsgSnap" && m.to === "c").length).toBe(1);
    const follower = c.node("c");
    expect(follower.storage.snapshot()).toMatchObject({ index: snap.index, term: snap.term, voters: ids });
    expect(text(follower.storage.snapshot().data)).toBe("a's state");
    expect(follower.rn.raft.log.committed).toBe(snap.index);
    c.node("a").rn.propose(bytes("after"));
    c.stabilize();
    expect(text(follower.applied[follower.applied.length - 1]!.data)).toBe("after");
    expect(c.node("a").rn.status().progress.c?.state).toBe("StateReplicate");
  });

  test("a lost snapshot, once reported, is sent again", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    c.isolate("c");
    for (let i = 0; i < 5; i++) c.node("a").rn.propose(bytes(`v${i}`));
    c.stabilize();
    c.snapshot("a");
    c.heal();
    c.filter = (m) => m.type !== "MsgSnap";
    c.tick(3);
    expect(c.node("a").rn.status().progress.c).toMatchObject({ state: "StateSnapshot", paused: true });
    c.filter = null;
    c.node("a").rn.reportSnapshot("c", false);
    c.tick(2);
    expect(c.node("c").storage.snapshot().index).toBeGreaterThan(0);
    expect(c.raft("c").log.lastIndex()).toBe(c.raft("a").log.lastIndex());
  });
});

describe("membership changes", () => {
  test("one at a time: a second change is refused until the first is applied; a joiner catches up", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    const a = c.node("a").rn;
    c.isolate("a");
    a.proposeConfChange({ type: "add", nodeId: "d" }, bytes("d's peer URLs"));
    c.stabilize();
    expect(() => a.proposeConfChange({ type: "add", nodeId: "e" })).toThrow(ErrConfChangePending);
    c.heal();
    c.tick(1);
    const cc = c.node("b").applied.find((e) => e.type === 1 && e.index > 3)!;
    expect(decodeConfChange(cc.data)).toEqual({ cc: { type: "add", nodeId: "d" }, data: bytes("d's peer URLs") });
    expect([...c.raft("b").prs.keys()]).toEqual(["a", "b", "c", "d"]);
    // The new member starts empty, without peers, and learns everything from the leader.
    const d = c.start("d");
    c.tick(2);
    expect(d.rn.raft.log.lastIndex()).toBe(c.raft("a").log.lastIndex());
    expect([...d.rn.raft.prs.keys()]).toEqual(["a", "b", "c", "d"]);
    a.proposeConfChange({ type: "remove", nodeId: "c" });
    c.stabilize();
    expect([...c.raft("a").prs.keys()]).toEqual(["a", "b", "d"]);
  });

  test("a new leader takes no change before its first entry is applied", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    c.filter = (m) => !(m.type === "MsgApp" && m.from === "b");
    c.node("a").rn.transferLeadership("b");
    c.stabilize();
    expect(c.leader()).toBe("b");
    expect(() => c.node("b").rn.proposeConfChange({ type: "add", nodeId: "d" })).toThrow(ErrConfChangePending);
    c.filter = null;
    c.tick(1);
    c.node("b").rn.proposeConfChange({ type: "add", nodeId: "d" });
    c.stabilize();
    expect([...c.raft("b").prs.keys()]).toContain("d");
  });

  test("a forwarded change that meets a pending one becomes a no-op entry", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    c.filter = (m) => !(m.type === "MsgAppResp");
    c.node("a").rn.proposeConfChange({ type: "add", nodeId: "d" });
    c.node("b").rn.proposeConfChange({ type: "add", nodeId: "e" });
    c.stabilize();
    const last = c.raft("a").log.entries(c.raft("a").log.lastIndex(), Infinity)[0]!;
    expect([last.type, last.data.length]).toEqual([0, 0]);
  });

  test("a leader that removes itself steps down and the others elect a new one", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    c.node("a").rn.proposeConfChange({ type: "remove", nodeId: "a" });
    c.stabilize();
    expect(c.raft("a").state).toBe("StateFollower");
    c.stop("a");
    c.tick(40);
    const lead = c.leader();
    expect(lead === "b" || lead === "c").toBe(true);
    expect([...c.raft(lead!).prs.keys()]).toEqual(["b", "c"]);
  });

  test("conf-change entries carry the change and the app's bytes", () => {
    const data = bytes("payload");
    expect(decodeConfChange(encodeConfChange({ type: "remove", nodeId: "8e9e05c52164694d" }, data))).toEqual({
      cc: { type: "remove", nodeId: "8e9e05c52164694d" },
      data,
    });
    expect(() => decodeConfChange(bytes("\u0003x"))).toThrow(/malformed/);
  });
});

describe("transport", () => {
  test("messages are plain data: a cluster runs with every message through JSON", () => {
    const c = new TestCluster(ids, { json: true });
    c.tick(40);
    const lead = c.leader()!;
    c.isolate("c");
    for (let i = 0; i < 5; i++) c.node(lead).rn.propose(bytes(`v${i}`));
    c.stabilize();
    c.snapshot(lead);
    c.heal();
    c.tick(2);
    c.node("c").rn.readIndex("json-read");
    c.stabilize();
    expect(c.raft("c").log.committed).toBe(c.raft(lead).log.committed);
    expect(c.node("c").readStates.map((r) => r.ctx)).toEqual(["json-read"]);
    expect(c.sent.some((m) => m.type === "MsgSnap")).toBe(true);
  });
});
