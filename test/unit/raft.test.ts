// Raft elections and leadership: randomized timeouts, pre-vote, check-quorum and the leader
// lease, leadership transfer.
import { describe, expect, test } from "bun:test";
import { decodeConfChange } from "../../internal/raft/confchange.ts";
import { RawNode } from "../../internal/raft/rawnode.ts";
import { MemoryStorage } from "../../internal/raft/storage.ts";
import { ErrProposalDropped, type Message, newMessage } from "../../internal/raft/types.ts";
import { TestCluster, bytes } from "../sim/testcluster.ts";

const ids = ["a", "b", "c"];

describe("election", () => {
  test("a bootstrapped cluster elects exactly one leader, known to all", () => {
    const c = new TestCluster(ids);
    c.tick(40);
    const lead = c.leader();
    expect(lead).toBeDefined();
    const leaders = ids.filter((id) => c.raft(id).state === "StateLeader");
    expect(leaders).toEqual([lead!]);
    for (const id of ids) {
      expect(c.raft(id).lead).toBe(lead!);
      // Bootstrap is term 1; one election.
      expect(c.raft(id).term).toBe(2);
    }
  });

  test("the election timeout is drawn from [electionTick, 2*electionTick)", () => {
    for (const [r, expected] of [
      [0, 10],
      [0.5, 15],
      [0.999, 19],
    ] as const) {
      const storage = new MemoryStorage();
      const rn = new RawNode({ id: "a", peers: ["a", "b", "c"], storage, random: () => r });
      // The bootstrap configuration must be applied before the node may campaign.
      const rd = rn.ready();
      storage.append(rd.entries);
      for (const e of rd.committedEntries) rn.applyConfChange(decodeConfChange(e.data).cc);
      rn.advance();
      let ticks = 0;
      while (rn.raft.state === "StateFollower" && ticks < 100) {
        rn.tick();
        ticks++;
      }
      expect(ticks).toBe(expected);
      expect(rn.raft.state).toBe("StatePreCandidate");
    }
  });

  test("votes go only to candidates whose log is at least as up to date, once per term", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    c.isolate("c");
    c.node("a").rn.propose(bytes("x"));
    c.stabilize();
    c.heal();
    // Logs: 1-3 bootstrap (term 1), 4 a's empty entry (term 2), 5 "x" (term 2), which c lacks.
    // The "transfer" context sets b's leader lease aside for this test.
    const b = c.raft("b");
    const req = (from: string, term: number, index: number, logTerm: number): Message =>
      newMessage({ type: "MsgVote", from, to: "b", term, index, logTerm, context: "transfer" });
    b.step(req("c", 5, 4, 2));
    expect(b.msgs.pop()).toMatchObject({ type: "MsgVoteResp", to: "c", reject: true });
    b.step(req("a", 5, 5, 2));
    expect(b.msgs.pop()).toMatchObject({ type: "MsgVoteResp", to: "a", reject: false });
    expect(b.vote).toBe("a");
    // Same term, another candidate: already voted.
    b.step(req("c", 5, 9, 4));
    expect(b.msgs.pop()).toMatchObject({ type: "MsgVoteResp", to: "c", reject: true });
  });

  test("a single voter elects itself and commits at once", () => {
    const c = new TestCluster(["solo"]);
    c.tick(20);
    expect(c.leader()).toBe("solo");
    c.node("solo").rn.propose(bytes("x"));
    c.stabilize();
    const applied = c.node("solo").applied;
    expect(new TextDecoder().decode(applied[applied.length - 1]!.data)).toBe("x");
  });
});

describe("pre-vote", () => {
  test("a partitioned node does not raise its term, and rejoins without deposing the leader", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    const term = c.raft("a").term;
    c.isolate("c");
    c.tick(100);
    expect(c.raft("c").term).toBe(term);
    expect(c.raft("a").state).toBe("StateLeader");
    c.heal();
    c.tick(5);
    expect(c.leader()).toBe("a");
    expect(c.raft("a").term).toBe(term);
    expect(c.raft("c").lead).toBe("a");
  });

  test("without pre-vote (and check-quorum) the same node inflates its term and disrupts the leader", () => {
    const c = new TestCluster(ids, { preVote: false, checkQuorum: false });
    c.elect("a");
    const term = c.raft("a").term;
    c.isolate("c");
    c.tick(100);
    expect(c.raft("c").term).toBeGreaterThan(term + 2);
    c.heal();
    c.tick(30);
    // The leader learned of the higher term and stepped down.
    expect(c.raft("a").term).toBeGreaterThan(term + 2);
  });

  test("pre-votes are granted for a future term without changing the voter's term or vote", () => {
    const c = new TestCluster(ids);
    c.tick(40);
    const b = c.raft("b");
    const { term, vote } = b;
    b.becomeFollower(term, ""); // no leader: no lease
    b.step(newMessage({ type: "MsgPreVote", from: "c", to: "b", term: term + 1, index: 100, logTerm: term }));
    expect(b.msgs.pop()).toMatchObject({ type: "MsgPreVoteResp", reject: false, term: term + 1 });
    expect(b.term).toBe(term);
    expect(b.vote).toBe(vote);
  });
});

describe("check-quorum and the leader lease", () => {
  test("a leader that stops hearing from a quorum steps down at the next quorum check", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    c.isolate("a");
    // Checks come every election timeout; the first still counts the followers heard before.
    c.tick(10, ["a"]);
    expect(c.raft("a").state).toBe("StateLeader");
    c.tick(10, ["a"]);
    expect(c.raft("a").state).toBe("StateFollower");
    expect(c.raft("a").lead).toBe("");
  });

  test("a follower that heard from the leader recently ignores a higher-term vote request", () => {
    const c = new TestCluster(ids, { preVote: false });
    c.elect("a");
    const b = c.raft("b");
    const term = b.term;
    b.step(newMessage({ type: "MsgVote", from: "c", to: "b", term: term + 1, index: 99, logTerm: term }));
    expect(b.msgs).toEqual([]);
    expect(b.term).toBe(term);
  });

  test("...unless it is a campaign the leader asked for (transfer)", () => {
    const c = new TestCluster(ids, { preVote: false });
    c.elect("a");
    const b = c.raft("b");
    const term = b.term;
    b.step(newMessage({ type: "MsgVote", from: "c", to: "b", term: term + 1, index: 99, logTerm: term, context: "transfer" }));
    expect(b.msgs.pop()).toMatchObject({ type: "MsgVoteResp", reject: false });
    expect(b.term).toBe(term + 1);
  });

  test("a stale leader is told the new term when it sends with an old one", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    c.isolate("a");
    // a is not ticked, so it keeps believing it leads; b and c elect a new leader.
    c.tick(40, ["b", "c"]);
    expect(c.leader()).not.toBe("a");
    c.heal();
    // a still believes it leads its old term; its next heartbeat draws an answer with the new one.
    c.tick(1, ["a"]);
    expect(c.raft("a").state).toBe("StateFollower");
    expect(c.raft("a").term).toBe(c.raft("b").term);
    expect(c.raft("b").lead).not.toBe("a");
  });
});

describe("leadership transfer", () => {
  test("to an up-to-date follower: MsgTimeoutNow, and it wins the next term", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    const term = c.raft("a").term;
    c.node("a").rn.transferLeadership("b");
    c.stabilize();
    expect(c.sent.some((m) => m.type === "MsgTimeoutNow" && m.to === "b")).toBe(true);
    expect(c.leader()).toBe("b");
    expect(c.raft("b").term).toBe(term + 1);
  });

  test("asked of a follower, the request is forwarded to the leader", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    c.node("c").rn.transferLeadership("c");
    c.stabilize();
    expect(c.leader()).toBe("c");
  });

  test("a lagging target is caught up first; proposals are dropped meanwhile; an unfinished transfer expires", () => {
    const c = new TestCluster(ids);
    c.elect("a");
    c.isolate("c");
    for (let i = 0; i < 3; i++) c.node("a").rn.propose(bytes(`v${i}`));
    c.stabilize();
    c.node("a").rn.transferLeadership("c");
    c.stabilize();
    expect(c.raft("a").leadTransferee).toBe("c");
    expect(() => c.node("a").rn.propose(bytes("during"))).toThrow(ErrProposalDropped);
    // The target stays unreachable for an election timeout: the transfer is abandoned.
    c.tick(10, ["a"]);
    expect(c.raft("a").state).toBe("StateLeader");
    expect(c.raft("a").leadTransferee).toBe("");
    c.node("a").rn.propose(bytes("after"));
    // Reachable again, the target catches up and takes over.
    c.heal();
    c.node("a").rn.transferLeadership("c");
    c.stabilize();
    expect(c.leader()).toBe("c");
    expect(c.raft("c").log.lastIndex()).toBeGreaterThanOrEqual(c.raft("a").log.lastIndex());
  });
});
