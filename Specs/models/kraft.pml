/*
 * kraft.pml: the KRaft metadata quorum (Raft, Kafka style) as a Promela model for spin.
 * Runnel's implementation: Sources/RunnelRaft/RaftNode.swift. Words follow Kafka (epoch, not
 * term; high watermark, not commit index), see ARCHITECTURE.md sections 3a and 4.
 *
 * THE SYSTEM
 *   - N = 3 voters. Each has an epoch and a voted-for (Kafka's quorum-state file) and a log (the
 *     __cluster_metadata partition). These three are durable: every step below writes them
 *     before it sends anything (an action is atomic with its fsync), so a crash between steps
 *     keeps them. Role, known leader and high watermark are volatile and lost on a crash (a
 *     restarted node starts unattached).
 *   - A log entry is identified by its offset and the epoch of the leader that appended it; the
 *     model keeps only that epoch: log[n].at[k] is the epoch of n's entry at offset k, and
 *     leo[n] is n's log end offset (LEO). Each leader first appends a leader-change control
 *     record; its offset is the epoch start offset.
 *   - Election: a voter that times out becomes prospective and asks for pre-votes for epoch + 1
 *     (KIP-996). One pre-vote besides its own (a majority of 3) makes it a candidate: epoch + 1,
 *     a vote for itself (durable), then Vote requests; a refusal sends it back to unattached.
 *     (Being prospective changes nothing a voter checks, so the model takes the timeout, one
 *     pre-vote and the reaction to its answer as one step.) A voter grants a pre-vote or a vote only to
 *     a candidate whose log is at least as up to date as its own: (last epoch, LEO) compared as a
 *     pair; and it grants at most one vote per epoch (voted-for is durable; a voter that knows a
 *     leader in the epoch does not vote either). A candidate with a majority is the leader and
 *     sends BeginQuorumEpoch.
 *   - Replication is pull based (Fetch on __cluster_metadata): a follower fetches from the leader
 *     it knows, with its LEO as the fetch offset and the epoch of its last entry as
 *     lastFetchedEpoch. The leader looks up the end offset of that epoch in its own log
 *     (OffsetsForLeaderEpoch). If the follower's log diverges, the answer is the diverging epoch
 *     and end offset, and the follower truncates to where both logs agree. Otherwise the fetch
 *     shows that the follower holds the leader's log up to the fetch offset, and the leader
 *     answers with the entry at that offset (if any) and the high watermark.
 *   - High watermark (HW; offsets below it are committed): the largest offset a majority holds
 *     (the leader and its best follower). It only advances, and only once it passes the epoch
 *     start offset, i.e. once an entry of the leader's own epoch is on a majority (Raft's commit
 *     rule, and the reason for the leader-change record). A follower takes min(leader HW, LEO).
 *   - Any node may crash and restart at any step.
 *
 * THE NETWORK: loss, delay, reordering and duplication by nondeterministic delivery
 *   - BeginQuorumEpoch(e) carries only "l leads epoch e", which stays true. The model remembers
 *     every leader ever elected (ghost leaderOf[]) and lets any node receive that message at any
 *     later step, as often as the search likes: arbitrary delay, reordering and duplication.
 *   - A Vote request carries the candidate's epoch and (last epoch, LEO), which do not change
 *     while it is a candidate (a candidate appends nothing, and stands in an epoch only once).
 *     Any voter may receive it at any step while the candidate stands, any number of times.
 *     (Delivery after the candidacy ended is left out: the grant is then useless to the
 *     candidate, and keeping every old request in the state grows the search past 36 million
 *     states, too big for tools/test.)
 *   - Pre-votes change nothing on the voter, so asking and answering are one step.
 *   - A Vote response is delivered in the step that answers, or lost. A late grant is the same
 *     to the candidate as one delivered at once (nothing it depends on can change while it is
 *     still a candidate in that epoch) or as a lost one (once it is not).
 *   - A Fetch request is answered when sent (a request that finds no leader of its epoch gets
 *     no answer, which the follower sees as a timeout). Fetch responses go into a bag of POOL
 *     slots, kept sorted so that a bag is one state: any of them may be delivered next,
 *     delivered and kept (a duplicate), or dropped; a response sent to a full bag is lost.
 *     Followers may fetch again at any time, with earlier answers still in flight.
 *
 * THE PROPERTIES (assertions: in the steps, and in every state by the monitor at the end)
 *   A1 at most one leader per epoch (ghost leaderOf[], and no node hears of two leaders);
 *   A2 the epoch of a node never goes down, crashes included;
 *   A3 the committed log is one log: every prefix a leader puts below its HW is recorded (ghost
 *      cLog), and no leader ever commits a different entry at a recorded offset;
 *   A4 leader completeness: a new leader of epoch e holds every entry committed in an epoch < e;
 *   A5 no node ever truncates below its own HW or drops a committed entry it holds;
 *   A6 log matching: two logs holding the same (offset, epoch) agree on all offsets before it;
 *   A7 below its HW every node's log is the committed log; a leader's HW is held by a majority;
 *      an HW never decreases while its node is up.
 *
 * BOUNDS (each can be overridden: spin -DMAXEPOCH=4 -DPOOL=0 -run ...): epochs up to MAXEPOCH = 3,
 * logs up to MAXLOG = 3 entries, POOL = 1 fetch response in flight (POOL = 0: answers arrive at
 * once). Running out of epochs or log space is a valid end state. The three nodes are
 * interchangeable, and the search keeps one state per renaming of the nodes (see canonical()).
 *
 * VARIANTS THAT MUST FAIL (tools/test runs them and requires spin to find the violation):
 * expect-violation: -DOFFSET_ONLY_MATCH -DPOOL=2
 *   A follower that matches a fetch response to its log by the fetch offset alone (rather than
 *   the fetch offset and the last fetched epoch of the request, i.e. the request in flight that
 *   Kafka's NetworkClient matches by correlation id) applies a stale diverging response after it
 *   already caught up, and truncates an entry the leader counted toward the HW (A5).
 * expect-violation: -DCOMMIT_OLD_EPOCHS -DMAXEPOCH=4 -DPOOL=0
 *   A leader that advances its HW without waiting for an entry of its own epoch on a majority
 *   (the Raft paper's figure 8) commits an entry that a later leader overwrites (A3/A4).
 */

#define N        3
#define MAJORITY 2
#ifndef MAXEPOCH
#define MAXEPOCH 3
#endif
#ifndef MAXLOG
#define MAXLOG   3
#endif
#ifndef POOL
#define POOL     1
#endif
#define NONE     3          /* no node (voted-for, leader) */

/* roles (volatile) */
#define UNATTACHED  0       /* no leader known in this epoch; also where a restart begins */
#define FOLLOWER    1
#define CANDIDATE   2
#define LEADER      3

/* fetch response kinds */
#define K_EMPTY     0       /* no new entry; carries the HW */
#define K_ENTRY     1       /* the entry at the fetch offset (its epoch in d) and the HW */
#define K_DIVERGE   2       /* diverging epoch d, end offset o: truncate */

/* A fetch response packed into one int so that the bag is cheap to keep sorted (0 = empty):
 * 1 | from 2 bits | to 2 | epoch 3 | fetchOffset 3 | lastFetchedEpoch 3 | kind 2 | d 3 | hw 3 | o 3 */
#define RESP(f,to,e,fo,lfe,kind,d,h,o) (1 | ((f) << 1) | ((to) << 3) | ((e) << 5) | ((fo) << 8) \
    | ((lfe) << 11) | ((kind) << 14) | ((d) << 16) | ((h) << 19) | ((o) << 22))
#define R_FROM(r)  (((r) >> 1) & 3)
#define R_TO(r)    (((r) >> 3) & 3)
#define R_EPOCH(r) (((r) >> 5) & 7)
#define R_FO(r)    (((r) >> 8) & 7)
#define R_LFE(r)   (((r) >> 11) & 7)
#define R_KIND(r)  (((r) >> 14) & 3)
#define R_D(r)     (((r) >> 16) & 7)
#define R_HW(r)    (((r) >> 19) & 7)
#define R_O(r)     (((r) >> 22) & 7)

typedef Log { byte at[MAXLOG] }

/* durable */
byte epoch[N];
byte voted[N];
Log  log[N];
byte leo[N];
/* volatile */
byte role[N];
byte leader[N];
byte hw[N];
/* the network: fetch responses in flight (one spare slot so that POOL = 0 compiles) */
int pool[POOL + 1];
/* ghosts: requests ever sent, and the record the properties need */
byte leaderOf[MAXEPOCH + 1];            /* who led epoch e (so BeginQuorumEpoch(e) exists), or NONE */
byte cLen;                              /* the committed log: offsets [0, cLen) */
Log  cLog;

/* temporaries of one atomic step: hidden, not part of the state */
hidden int r, tr;
hidden byte i, j, k, q, x, y, ee, eo, ce, cl, ok, mv, nv, sa, sb, tb, hs, hq;
hidden int ka, kb;

#define LAST_EPOCH(n) (leo[n] == 0 -> 0 : log[n].at[leo[n] - 1])
/* candidate (last epoch le, end offset lo) is at least as up to date as node v */
#define UP_TO_DATE(le, lo, v) ((le) > LAST_EPOCH(v) || ((le) == LAST_EPOCH(v) && (lo) >= leo[v]))

/* ---- the bag of fetch responses, sorted in decreasing order, empty (0) slots last ------ */

inline put(msg) {
#if POOL == 0
    r = msg
#else
    if
    :: pool[POOL - 1] == 0 ->
        pool[POOL - 1] = msg;
        q = POOL - 1;
        do
        :: q > 0 && pool[q - 1] < pool[q] -> tr = pool[q - 1]; pool[q - 1] = pool[q]; pool[q] = tr; q--
        :: else -> break
        od
    :: else -> skip                     /* full: the response is lost */
    fi
#endif
}

inline take(slot) {
    r = pool[slot];
    q = slot;
    do
    :: q < POOL - 1 -> pool[q] = pool[q + 1]; q++
    :: else -> break
    od;
    pool[POOL - 1] = 0
}

/* ---- helpers ------------------------------------------------------------------------- */

/* ee = the largest epoch <= want in n's log (0 if none), eo = the end offset of that epoch */
inline endOffsetForEpoch(n, want) {
    ee = 0; eo = 0;
    do
    :: eo < leo[n] && log[n].at[eo] <= want -> ee = log[n].at[eo]; eo++
    :: else -> break
    od
}

inline setEpoch(n, ep) {
    assert(ep >= epoch[n]);                                     /* A2 */
    if
    :: ep > epoch[n] -> epoch[n] = ep; voted[n] = NONE; leader[n] = NONE
    :: else -> skip
    fi
}

inline becomeUnattached(n, ep) {
    setEpoch(n, ep); role[n] = UNATTACHED; leader[n] = NONE
}

inline becomeFollower(n, ep, l) {
    setEpoch(n, ep); role[n] = FOLLOWER; leader[n] = l
}

/* prospective -> candidate: epoch + 1 and the vote for itself are durable before any Vote
 * request goes out (the requests are then received in later steps, see REQS) */
inline startElection(n) {
    setEpoch(n, epoch[n] + 1);
    role[n] = CANDIDATE;
    voted[n] = n
}

inline becomeLeader(n) {
    assert(leaderOf[epoch[n]] == NONE);                         /* A1 */
    leaderOf[epoch[n]] = n;                                     /* BeginQuorumEpoch is sent */
    /* A4: unless a leader of a later epoch exists (then this one is stale, and what that one
     * committed need not be here), everything committed so far was committed in an earlier
     * epoch, and must be in this log */
    ok = 1;
    x = epoch[n] + 1;
    do
    :: x <= MAXEPOCH -> if :: leaderOf[x] != NONE -> ok = 0 :: else fi; x++
    :: else -> break
    od;
    x = 0;
    do
    :: ok && x < cLen -> assert(x < leo[n] && log[n].at[x] == cLog.at[x]); x++
    :: else -> break
    od;
    printf("  %d is the leader of epoch %d\n", n, epoch[n]);
    role[n] = LEADER;
    leader[n] = n;
    /* the leader-change record opens the epoch; a leader that finds its log full (a bound of
     * the model) can never commit, which is safe */
    if
    :: leo[n] < MAXLOG -> log[n].at[leo[n]] = epoch[n]; leo[n]++
    :: else
    fi
}

/* A matching fetch at offset fo shows that the fetcher holds the leader's log up to fo. The
 * leader's HW is the largest offset held by a majority, which for 3 voters is the leader and
 * its best follower: the largest such fo, once past the epoch start offset (the number of
 * entries of older epochs). The leader need not keep every follower's LEO (Kafka's replica
 * state) in this model: a fetch is answered when it is sent, so a follower's LEO as the leader
 * saw it only grows, and any earlier fo past the epoch start already moved the HW. */
inline maybeAdvanceHW(n, fo) {
    hs = 0;                                                     /* the epoch start offset */
#ifndef COMMIT_OLD_EPOCHS
    do
    :: hs < leo[n] && log[n].at[hs] < epoch[n] -> hs++
    :: else -> break
    od;
#endif
    if
    :: fo > hs && fo > hw[n] ->
        hq = 0;
        do
        :: hq < fo ->
            if
            :: hq < cLen -> assert(cLog.at[hq] == log[n].at[hq])     /* A3 */
            :: else -> cLog.at[hq] = log[n].at[hq]; cLen = hq + 1
            fi;
            hq++
        :: else -> break
        od;
        assert(fo > hw[n]);                                     /* A7: only ever up */
        printf("  leader %d: HW %d\n", n, fo);
        hw[n] = fo
    :: else
    fi
}

inline truncate(n, to) {
    if
    :: to < leo[n] ->
        printf("  %d truncates to offset %d\n", n, to);
        assert(to >= hw[n]);                                    /* A5: never below the HW */
        q = to;
        do
        :: q < leo[n] ->
            assert(!(q < cLen && log[n].at[q] == cLog.at[q]));  /* A5: never a committed entry */
            log[n].at[q] = 0; q++
        :: else -> break
        od;
        leo[n] = to
    :: else
    fi
}

/* ---- the steps ------------------------------------------------------------------------- */

/* Election timeout (or fetch timeout of a follower): the node becomes prospective and asks
 * voter v for a pre-vote for epoch + 1. Pre-votes change nothing on the voter, so asking is one
 * step with its answer; and a prospective node acts like an unattached one (it knows no leader
 * and may vote), so the model goes straight from the answer to the next role: a candidate on a
 * grant (itself and v are a majority), unattached on a refusal. */
inline preVote(p, v) {
    if
    :: epoch[v] > epoch[p] -> becomeUnattached(p, epoch[v])     /* we are behind */
    :: else ->
        if
        :: UP_TO_DATE(LAST_EPOCH(p), leo[p], v) -> startElection(p)
        :: else -> becomeUnattached(p, epoch[p])                /* refused */
        fi
    fi
}

/* voter v receives candidate c's Vote request for epoch e (c is still a candidate in e, so the
 * request holds c's log as it is now); `answered`: whether the response reaches c, or is lost */
inline vote(v, c, e, answered) {
    ce = LAST_EPOCH(c);
    cl = leo[c];
    ok = 0;
    if
    :: e >= epoch[v] ->
        if :: e > epoch[v] -> becomeUnattached(v, e) :: else fi;
        /* may vote: knows no leader, has not voted for another, is not standing itself */
        mv = (leader[v] == NONE && (voted[v] == NONE || voted[v] == c) && role[v] != LEADER && role[v] != CANDIDATE);
        if
        :: mv && UP_TO_DATE(ce, cl, v) ->
            voted[v] = c;                                       /* durable before the answer */
            ok = 1
        :: else
        fi
    :: else
    fi;
    if
    :: answered ->
        if
        :: epoch[v] > epoch[c] -> becomeUnattached(c, epoch[v])
        :: ok && role[c] == CANDIDATE && epoch[c] == e -> becomeLeader(c)   /* self + v = 2 of 3 */
        :: else
        fi
    :: else
    fi
}

/* node f receives leader l's BeginQuorumEpoch for epoch e (sent when l was elected) */
inline beginEpoch(f, l, e) {
    if
    :: e < epoch[f] -> skip                                     /* fenced: an old leader */
    :: e > epoch[f] || leader[f] == NONE -> becomeFollower(f, e, l)
    :: else -> assert(leader[f] == l)                           /* A1: two leaders in an epoch */
    fi
}

/* follower f fetches from the leader it knows; the leader answers into the bag */
inline fetch(f) {
    j = leader[f];
    if
    :: role[j] == LEADER && epoch[j] == epoch[f] ->
        x = leo[f];                                             /* the fetch offset */
        k = LAST_EPOCH(f);                                      /* lastFetchedEpoch */
        ok = 1;
        if
        :: x > 0 ->
            endOffsetForEpoch(j, k);
            if
            :: ee != k || x > eo ->
                ok = 0;
                if :: eo > x -> eo = x :: else fi;
                put(RESP(j, f, epoch[j], x, k, K_DIVERGE, ee, 0, eo))
            :: else
            fi
        :: else
        fi;
        if
        :: ok ->
            maybeAdvanceHW(j, x);   /* a matching fetch: f's log is ours up to x */
            if
            :: x < leo[j] -> put(RESP(j, f, epoch[j], x, k, K_ENTRY, log[j].at[x], hw[j], 0))
            :: else -> put(RESP(j, f, epoch[j], x, k, K_EMPTY, 0, hw[j], 0))
            fi
        :: else
        fi
    :: else                     /* no leader of this epoch there: the fetch times out */
    fi
}

/* a fetch response r reaches its follower */
inline onFetchResponse() {
    j = R_TO(r);
    k = R_FROM(r);
    /* only the answer to a fetch from this very log: same epoch and leader, and the request's
     * fetch offset and last fetched epoch are this log's end (log matching: the same log) */
    ok = (role[j] == FOLLOWER && leader[j] == k && R_EPOCH(r) == epoch[j] && R_FO(r) == leo[j]);
#ifndef OFFSET_ONLY_MATCH
    ok = (ok && R_LFE(r) == LAST_EPOCH(j));
#endif
    if
    :: ok && R_KIND(r) == K_DIVERGE ->
        endOffsetForEpoch(j, R_D(r));
        if :: eo > R_O(r) -> eo = R_O(r) :: else fi;
        truncate(j, eo)
    :: ok && R_KIND(r) != K_DIVERGE ->
        if
        :: R_KIND(r) == K_ENTRY && R_D(r) >= LAST_EPOCH(j) && R_D(r) <= epoch[j] ->
            log[j].at[leo[j]] = R_D(r); leo[j]++                /* appended and fsynced */
        :: else
        fi;
        y = R_HW(r);
        if :: y > leo[j] -> y = leo[j] :: else fi;
        if :: y > hw[j] -> hw[j] = y :: else fi                 /* A7: only ever up */
    :: else                                                     /* stale: ignored */
    fi
}

inline crash(n) {
    /* restart: log, epoch and voted-for survive; the rest starts over */
    role[n] = UNATTACHED;
    leader[n] = NONE;
    hw[n] = 0
}

/* ---- the invariants, in every state (the monitor process at the end) ---------------------- */

inline checkInvariants() {
    i = 0;
    do
    :: i < N ->
        /* A7: below its HW a log is the committed log */
        assert(hw[i] <= leo[i] && hw[i] <= cLen);
        x = 0;
        do
        :: x < hw[i] -> assert(log[i].at[x] == cLog.at[x]); x++
        :: else -> break
        od;
        /* epochs in a log go up, and none is past the node's epoch */
        x = 1;
        do
        :: x < leo[i] -> assert(log[i].at[x - 1] <= log[i].at[x]); x++
        :: else -> break
        od;
        assert(leo[i] == 0 || log[i].at[leo[i] - 1] <= epoch[i]);
        /* A7: a leader's HW is held by a majority (by A6 the entry below it is enough) */
        if
        :: role[i] == LEADER && hw[i] > 0 ->
            nv = 0; k = 0;
            do
            :: k < N ->
                if :: leo[k] >= hw[i] && log[k].at[hw[i] - 1] == log[i].at[hw[i] - 1] -> nv++ :: else fi;
                k++
            :: else -> break
            od;
            assert(nv >= MAJORITY)
        :: else
        fi;
        /* A6: log matching */
        j = i + 1;
        do
        :: j < N ->
            x = 0;
            do
            :: x < leo[i] && x < leo[j] ->
                if
                :: log[i].at[x] == log[j].at[x] ->
                    y = 0;
                    do
                    :: y < x -> assert(log[i].at[y] == log[j].at[y]); y++
                    :: else -> break
                    od
                :: else
                fi;
                x++
            :: else -> break
            od;
            j++
        :: else -> break
        od;
        i++
    :: else -> break
    od
}

/* ---- symmetry: the three nodes are interchangeable ---------------------------------------
 * The steps treat every node alike and so do the properties, so a state and the same state
 * with two node ids swapped are equivalent. After every step the nodes are sorted by their own
 * state (and every node id in the state renamed to match), so the search keeps one state of
 * each class. Ties leave some duplicates, which costs states but not soundness. A counterexample
 * trail shows the nodes renamed as they are sorted. */

#define RENAME(v) if :: v == sa -> v = sb :: v == sb -> v = sa :: else fi
#define SWAPB(arr) tb = arr[sa]; arr[sa] = arr[sb]; arr[sb] = tb

/* the key a node sorts by */
#define NODEKEY(n) (epoch[n] + 8 * role[n] + 64 * leo[n] + 512 * hw[n] \
    + 4096 * (log[n].at[0] + 8 * log[n].at[1] + 64 * LOGAT2(n)) + 2097152 * (voted[n] == n))
#if MAXLOG > 2
#define LOGAT2(n) log[n].at[2]
#else
#define LOGAT2(n) 0
#endif

inline renameInMessage(slot) {
    tr = pool[slot];
    if :: tr != 0 ->
        x = R_FROM(tr); y = R_TO(tr);
        RENAME(x); RENAME(y);
        pool[slot] = (tr & ~((3 << 1) | (3 << 3))) | (x << 1) | (y << 3)
    :: else
    fi
}

inline swapNodes(a, b) {
    sa = a; sb = b;
    SWAPB(epoch); SWAPB(voted); SWAPB(leo); SWAPB(role); SWAPB(leader); SWAPB(hw);
    q = 0;
    do
    :: q < MAXLOG -> tb = log[sa].at[q]; log[sa].at[q] = log[sb].at[q]; log[sb].at[q] = tb; q++
    :: else -> break
    od;
    q = 0;
    do
    :: q < N -> RENAME(voted[q]); RENAME(leader[q]); q++
    :: else -> break
    od;
    q = 0;
    do
    :: q <= MAXEPOCH -> RENAME(leaderOf[q]); q++
    :: else -> break
    od;
#if POOL > 0
    renameInMessage(0);
#endif
#if POOL > 1
    renameInMessage(1);
#endif
#if POOL > 2
    renameInMessage(2);
#endif
    skip
}

inline sortPool() {
    /* insertion sort, decreasing */
    i = 1;
    do
    :: i < POOL ->
        j = i;
        do
        :: j > 0 && pool[j - 1] < pool[j] -> tr = pool[j - 1]; pool[j - 1] = pool[j]; pool[j] = tr; j--
        :: else -> break
        od;
        i++
    :: else -> break
    od
}

inline canonical() {
#ifndef NOSYMMETRY
    ka = NODEKEY(0); kb = NODEKEY(1);
    if :: ka > kb -> swapNodes(0, 1) :: else fi;
    ka = NODEKEY(1); kb = NODEKEY(2);
    if :: ka > kb -> swapNodes(1, 2) :: else fi;
    ka = NODEKEY(0); kb = NODEKEY(1);
    if :: ka > kb -> swapNodes(0, 1) :: else fi;
    sortPool();
#endif
    skip
}

/* one step (the loop in init then sorts the nodes; the monitor checks the invariants) */
#define STEP(body) d_step { body }

/* the steps of node n; a and b are the other two nodes */
/* a leader appends a record (a metadata write proposed by the active controller) */
inline append(n) {
    printf("leader %d appends at offset %d (epoch %d)\n", n, leo[n], epoch[n]);
    log[n].at[leo[n]] = epoch[n];
    leo[n]++
}

/* follower n fetches; with POOL = 0 the answer arrives in the same step */
inline fetchStep(n) {
    printf("%d fetches from %d at offset %d, last epoch %d\n", n, leader[n], leo[n], LAST_EPOCH(n));
    r = 0;
    fetch(n);
    if :: POOL == 0 && r != 0 -> onFetchResponse() :: else fi
}

#define PREVOTE(n, v) \
    STEP(printf("%d times out and asks %d for a pre-vote (epoch %d)\n", n, v, epoch[n] + 1); preVote(n, v))

/* the steps of node n; a and b are the other two nodes */
#define NODE(n, a, b) \
    :: role[n] != LEADER && epoch[n] < MAXEPOCH -> PREVOTE(n, a) \
    :: role[n] != LEADER && epoch[n] < MAXEPOCH -> PREVOTE(n, b) \
    :: role[n] == LEADER && leo[n] < MAXLOG -> STEP(append(n)) \
    :: role[n] == FOLLOWER -> STEP(fetchStep(n)) \
    :: role[n] != UNATTACHED || leader[n] != NONE || hw[n] != 0 -> STEP(printf("%d crashes and restarts\n", n); crash(n))

/* voter v receives a Vote request of epoch e from c, or a BeginQuorumEpoch of epoch e */
#define REQS(v, c, e) \
    :: role[c] == CANDIDATE && epoch[c] == e -> \
        STEP(printf("%d gets %d's vote request for epoch %d\n", v, c, e); vote(v, c, e, 1)) \
    :: role[c] == CANDIDATE && epoch[c] == e -> \
        STEP(printf("%d gets %d's vote request for epoch %d, answer lost\n", v, c, e); vote(v, c, e, 0)) \
    :: leaderOf[e] == c -> STEP(printf("%d gets BeginQuorumEpoch(%d) from %d\n", v, e, c); beginEpoch(v, c, e))

#define EPOCH(e) \
    REQS(0, 1, e) REQS(0, 2, e) REQS(1, 0, e) REQS(1, 2, e) REQS(2, 0, e) REQS(2, 1, e)

/* a fetch response is delivered, delivered and kept (a duplicate), or lost */
#define SLOT(s) \
    :: pool[s] != 0 -> STEP(printf("fetch response to %d delivered\n", R_TO(pool[s])); take(s); onFetchResponse()) \
    :: pool[s] != 0 -> \
        STEP(printf("fetch response to %d delivered, a copy stays\n", R_TO(pool[s])); r = pool[s]; onFetchResponse()) \
    :: pool[s] != 0 -> STEP(printf("fetch response to %d lost\n", R_TO(pool[s])); take(s))

init {
    d_step {
        i = 0;
        do
        :: i < N -> voted[i] = NONE; leader[i] = NONE; i++
        :: else -> break
        od;
        i = 0;
        do
        :: i <= MAXEPOCH -> leaderOf[i] = NONE; i++
        :: else -> break
        od;
        i = 0
    }
    /* Each iteration is one atomic step: a nondeterministic choice of what happens next, then
     * the renaming into the sorted form. Only the states between steps are stored. Running out
     * of epochs or log space is a valid end. */
end:
    do
    :: atomic {
        if
    NODE(0, 1, 2)
    NODE(1, 0, 2)
    NODE(2, 0, 1)
    EPOCH(1)
    EPOCH(2)
#if MAXEPOCH > 2
    EPOCH(3)
#endif
#if MAXEPOCH > 3
    EPOCH(4)
#endif
#if POOL > 0
    SLOT(0)
#endif
#if POOL > 1
    SLOT(1)
#endif
#if POOL > 2
    SLOT(2)
#endif
#if POOL > 3
    SLOT(3)
#endif
        fi;
        d_step { canonical() }
    }
    od
}

/* The invariants are checked in every stored state by a monitor: its one step leaves the state
 * as it was, so each state is checked once, however many steps lead to it. */
active proctype invariants() {
end:
    do
    :: d_step { checkInvariants(); skip }
    od
}
