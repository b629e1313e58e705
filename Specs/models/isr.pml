/*
 * isr.pml: Kafka's partition data replication (ISR, high watermark, acks=all) with leader
 * failover, as a Promela model for spin. Runnel's implementation: Sources/RunnelReplication
 * (LeaderState.swift) and the partition leader election in RunnelController; see
 * ARCHITECTURE.md section 5. Words follow Kafka.
 *
 * THE SYSTEM: one partition with 3 replicas (brokers 0, 1, 2) and the controller.
 *   - The controller holds the partition's committed state: leader, leader epoch and ISR
 *     (cLeader, cEpoch, cIsr). It is the KRaft quorum of kraft.pml, taken here as one reliable
 *     process: a change is "committed" when the controller makes it.
 *   - Each replica has a log, log end offset (LEO) and high watermark (HW), and its own view
 *     of the partition state (vLeader, vEpoch, vIsr): the metadata it has applied. Brokers apply
 *     the controller's latest state at any later step (metadata propagation is asynchronous).
 *   - A log entry is (leader epoch, record id), packed as 4 * epoch + id: the epoch of the
 *     leader that appended it (Kafka's leader-epoch cache is derived from these) and which
 *     producer record it is. Records have ids 1..MAXREC, each produced once.
 *   - The leader (a replica whose view says it leads) appends produced records; followers fetch
 *     from the leader in their view, with their LEO as the fetch offset and the epoch of their
 *     last entry. The leader checks the pair against its leader-epoch cache: a diverging
 *     follower is told the diverging epoch and its end offset and truncates there; otherwise
 *     the leader notes the follower's LEO and answers with the entry at the fetch offset and
 *     the HW. A follower takes min(leader HW, its LEO) as its HW.
 *   - HW = min LEO over the ISR, and only ever up. While an ISR change is in flight the leader
 *     uses the maximal ISR: the committed ISR plus any replica being added.
 *   - ISR changes go through the controller (AlterPartition) and take effect at the leader
 *     once committed: the leader may propose dropping a lagging follower (LEO behind its own:
 *     replica.lag.time.max.ms passed) or adding a follower that reached the HW and this
 *     leader's epoch start offset. The controller commits a proposal made in the current leader
 *     epoch from the current ISR, with only live replicas added, and the answer reaches the
 *     leader with it; otherwise it is refused.
 *   - Producer (acks=all, one request in flight): the leader appends only while its ISR has at
 *     least MIN_ISR = 2 members (else NOT_ENOUGH_REPLICAS), and acknowledges the record when,
 *     still leader in the same epoch, its HW covers it and the maximal ISR has at least MIN_ISR
 *     members. A request may also fail or time out at any time (the record is then unacked,
 *     whether or not it is in the log).
 *   - The leader's view of a follower's LEO comes from that follower's current incarnation
 *     only (KIP-903: AlterPartition carries the broker epochs of the replicas it adds, and the
 *     controller refuses stale ones), so a replica that lost data in a crash is not added back
 *     to the ISR on the strength of what it had before.
 *   - Crash: any replica may crash at any time. It keeps its log below the partition's HW (the
 *     committed records) and an arbitrary part of the rest: its uncommitted tail may be lost or
 *     kept. The controller fences it at once: it leaves the ISR (unless it is the last member;
 *     the ISR never becomes empty), and if it led, the partition has no leader. A restarted
 *     replica keeps its log and its HW checkpoint and starts with no metadata.
 *   - Zombies (with -DMAXFENCE=1 or more): the controller may fence a live leader whose
 *     broker session expired (it was cut off from the controller) and, in the same step, elect
 *     a live, unfenced ISR member; the fenced replica leaves the ISR as a crashed one would
 *     (unless it is the last member) but runs on, with its log, its leader state and its stale
 *     view, and goes on acting as the leader of its old epoch until it applies newer metadata.
 *     Followers that have not applied the change yet go on fetching from it. Every replica
 *     keeps leader state of its own (a zombie and the new leader at once), and an
 *     AlterPartition is refused unless its sender leads in the controller's current epoch.
 *     The controller may unfence the replica later. With zombies the fault model is the
 *     simulation's: not every ISR member loses its page cache at once, so the controller's last
 *     ISR member keeps its whole log when it crashes. Without that, a zombie leader whose stale
 *     view still names a follower that has since crashed, lost its unflushed tail and stayed as
 *     the controller's last ISR member can acknowledge a record that no electable replica
 *     holds: the case KIP-966 (eligible leader replicas) closes in Kafka.
 *   - Step aside (Runnel's rule for a leader cut off from the controller and its followers,
 *     PartitionReplica.checkIsolation): a fenced leader may step aside at any step; aside, it
 *     appends and acknowledges nothing and the produce request it holds fails. It may take its
 *     clients back at any later step (the rule's inputs are timings the model does not keep),
 *     and unfencing ends it. With -DASIDE_ANYTIME any leader may step aside at any step.
 *   - Election: while the partition has no leader the controller elects a live ISR member
 *     (unclean.leader.election.enable=false) and bumps the leader epoch. The new leader starts
 *     when it applies that metadata: its epoch start offset is its LEO, it knows no follower
 *     positions yet, and its HW is its own (with an ISR of one: its LEO).
 *
 * THE PROPERTIES (assertions; the monitor at the end checks every state)
 *   - No record acknowledged to the producer is ever lost: ghost ackOff[id] is the offset + 1
 *     of the acknowledged record id, and the controller's current leader, whenever there is
 *     one, has that record at that offset.
 *   - What a consumer may read is never taken back: below its HW, every replica's log is the
 *     current leader's log; and a follower never truncates below its HW.
 *   - Leadership: at most one replica acts as the leader of a leader epoch, and none acts as
 *     the leader of an epoch newer than the controller's, or of the current one unless the
 *     controller names it (or, having fenced it, no one yet); without zombies, at most one live
 *     replica acts as a leader at all.
 *
 * BOUNDS: MAXREC = 2 records, leader epochs up to MAXEPOCH = 3 (1 is the initial epoch, led by
 * replica 0 with ISR {0, 1, 2}), MAXLOG = 3 entries. The replicas are interchangeable and the
 * search keeps one state per renaming of them (see canonical()).
 *
 * VARIANTS THAT MUST FAIL (tools/test runs each and requires spin to find a violation):
 * expect-violation: -DUNCLEAN
 *   unclean.leader.election.enable=true: when no ISR member is alive the controller may elect
 *   any live replica, whose log may lack acknowledged records. (Under UNCLEAN the consumer
 *   property is not checked, as an unclean election gives it up by design; the run is about
 *   acknowledged records.)
 * expect-violation: -DEAGER_SHRINK
 *   The leader uses a shrunk ISR before the controller commits it: it advances the HW past a
 *   replica that is still in the controller's ISR, which may then be elected.
 * expect-violation: -DNO_MAXIMAL_ISR
 *   The HW ignores a replica being added to the ISR: once the controller commits the addition,
 *   an ISR member lacks records below the HW.
 * expect-violation: -DNO_BROKER_EPOCH_CHECK
 *   Without KIP-903, a follower that lost its uncommitted tail in a crash is added back to the
 *   ISR on the strength of the LEO it had before; the HW (and so the acknowledgements) passes
 *   records it no longer has, and it is later elected without them.
 * expect-violation: -DUNFLUSHED_LOSS
 *   A crash may lose everything above the replica's own HW, which lags on followers and on a
 *   new leader (Kafka's default: records are acknowledged before they are fsynced). The last
 *   ISR member can then lose an acknowledged record and be elected again (the case KIP-966,
 *   eligible leader replicas, addresses).
 * expect-violation: -DMAXFENCE=1 -DZOMBIE_EAGER_SHRINK
 *   A leader cut off from the controller takes a missing AlterPartition answer as a timeout
 *   and applies its own shrink: the zombie advances its HW past a replica the controller still
 *   has in the ISR, which is then elected without the acknowledged record.
 * expect-violation: -DMAXFENCE=1 -DNO_LEADER_EPOCH_CHECK
 *   The controller accepts an AlterPartition from a fenced leader of an ended epoch (without
 *   the leader-epoch check, FENCED_LEADER_EPOCH): the zombie's ISR change overwrites the new
 *   leader's.
 *
 * VARIANTS THAT MUST HOLD (tools/test runs each and requires errors: 0):
 * expect-pass: -DMAXFENCE=1
 *   One zombie leader, with the step-aside rule.
 */

#define N        3
#define MIN_ISR  2
#ifndef MAXEPOCH
#define MAXEPOCH 3
#endif
#ifndef MAXLOG
#define MAXLOG   3
#endif
#ifndef MAXREC
#define MAXREC   2
#endif
#ifndef MAXFENCE
#define MAXFENCE 0          /* fencings of a live replica (zombies) in one run */
#endif
/* when a leader may step aside: with ASIDE_ANYTIME at any step, else only while fenced */
#ifdef ASIDE_ANYTIME
#define ASIDE_OK(n) (1)
#else
#define ASIDE_OK(n) (fenced[n])
#endif
#define NONE     3
#define ALL      7          /* ISR bitmask of all three */

#define EPOCH_OF(x) ((x) / 4)
#define ID_OF(x)    ((x) % 4)
#define BIT(n)      (1 << (n))
#define SIZE(s)     ((((s) >> 0) & 1) + (((s) >> 1) & 1) + (((s) >> 2) & 1))

typedef Log { byte at[MAXLOG] }

/* the controller: the committed partition state */
byte cLeader = 0;
byte cEpoch = 1;
byte cIsr = ALL;
/* replicas */
bit  alive[N];
Log  log[N];
byte leo[N];
byte hw[N];
byte vLeader[N];                        /* the applied metadata; vEpoch 0 = none yet */
byte vEpoch[N];
byte vIsr[N];
/* the controller's view of broker sessions: a live replica it fenced (session expired) */
bit  fenced[N];
byte nFenced;                           /* fencings of live replicas so far (bound MAXFENCE) */
/* a leader's volatile state, per replica (a zombie and the new leader both have one): what
 * it saw of each follower, 8 * fresh + LEO (fresh: from the follower's current incarnation),
 * its AlterPartition in flight (0, or 64 + 8 * base ISR + new ISR), and whether it stepped
 * aside (Runnel's rule: appends and acknowledges nothing) */
typedef Row { byte seen[N] }
Row  fl[N];
byte pend[N];
bit  aside[N];
/* the producer: the request in flight */
byte nextId = 1;
byte reqOff;                            /* 0, or offset + 1 of the record in flight */
byte reqEpoch;
byte reqLeader;
/* ghosts: where each acknowledged record is (offset + 1), 0 if not acknowledged; and the
 * partition HW, the highest HW any leader reached (everything below it is committed) */
byte ackOff[MAXREC + 1];
byte gHW;


hidden byte i, j, k, q, x, y, ee, eo, de, ok, ms, es, sa, sb, tb, pn, pb, r;
hidden int ka, kb;

#define PEND_NEW(n)   (pend[n] & 7)
#define PEND_BASE(n)  ((pend[n] >> 3) & 7)
#define PROPOSE(n, isr) pend[n] = 64 + 8 * vIsr[n] + (isr)
#define FLEO(l, f)    (fl[l].seen[f] & 7)           /* f's LEO as leader l saw it */
#define LAST_EPOCH(n) (leo[n] == 0 -> 0 : EPOCH_OF(log[n].at[leo[n] - 1]))
#define LEADS(n)      (alive[n] && vLeader[n] == n && vEpoch[n] > 0)
/* the controller may elect n or add it to the ISR: live (registered) and not fenced */
#define ELIGIBLE(n)   (alive[n] && !fenced[n])
#define ELIGIBLE_SET  (ELIGIBLE(0) * 1 + ELIGIBLE(1) * 2 + ELIGIBLE(2) * 4)
/* the maximal ISR: committed ISR plus replicas being added */
#ifdef EAGER_SHRINK
#define MAXIMAL(n)    (pend[n] != 0 -> PEND_NEW(n) : vIsr[n])
#else
#ifdef NO_MAXIMAL_ISR
#define MAXIMAL(n)    (vIsr[n])
#else
#define MAXIMAL(n)    (pend[n] != 0 -> (vIsr[n] | PEND_NEW(n)) : vIsr[n])
#endif
#endif

/* ee = the largest epoch <= want in n's log (0 if none), eo = that epoch's end offset */
inline endOffsetForEpoch(n, want) {
    ee = 0; eo = 0;
    do
    :: eo < leo[n] && EPOCH_OF(log[n].at[eo]) <= want -> ee = EPOCH_OF(log[n].at[eo]); eo++
    :: else -> break
    od
}

/* the leader's epoch start offset: entries of older epochs (all it had when it took over) */
inline epochStart(n) {
    es = 0;
    do
    :: es < leo[n] && EPOCH_OF(log[n].at[es]) < vEpoch[n] -> es++
    :: else -> break
    od
}

/* HW = min LEO over the maximal ISR (the leader's own LEO for itself), never down */
inline advanceHW(n) {
    y = leo[n];
    ms = MAXIMAL(n);
    q = 0;
    do
    :: q < N ->
        if :: q != n && (ms & BIT(q)) && FLEO(n, q) < y -> y = FLEO(n, q) :: else fi;
        q++
    :: else -> break
    od;
    if :: y > hw[n] -> hw[n] = y :: else fi;
    if :: hw[n] > gHW -> gHW = hw[n] :: else fi
}

inline truncate(n, to) {
    q = to;
    do
    :: q < leo[n] -> log[n].at[q] = 0; q++
    :: else -> break
    od;
    if :: to < leo[n] -> leo[n] = to :: else fi;
    if :: hw[n] > leo[n] -> hw[n] = leo[n] :: else fi
}

/* ---- steps ---------------------------------------------------------------------------- */

/* replica n applies the controller's current partition state (metadata propagation) */
inline clearLeaderState(n) {
    q = 0;
    do :: q < N -> fl[n].seen[q] = 0; q++ :: else -> break od;
    pend[n] = 0;
    aside[n] = 0
}

inline applyMetadata(n) {
    if
    :: vEpoch[n] != cEpoch && cLeader == n -> clearLeaderState(n)     /* leader of a new epoch */
    :: else
    fi;
    if
    :: vLeader[n] == n && (vEpoch[n] != cEpoch || cLeader != n) -> pend[n] = 0   /* it no longer leads */
    :: vLeader[n] == n && vIsr[n] != cIsr -> pend[n] = 0    /* a newer partition epoch: stale */
    :: else
    fi;
    vLeader[n] = cLeader; vEpoch[n] = cEpoch; vIsr[n] = cIsr;
    if :: LEADS(n) -> advanceHW(n) :: else -> clearLeaderState(n) fi
}

/* producer: a record to the leader n (acks=all) */
inline produce(n) {
    log[n].at[leo[n]] = 4 * vEpoch[n] + nextId;
    reqOff = leo[n] + 1; reqEpoch = vEpoch[n]; reqLeader = n;
    leo[n]++;
    nextId++;
    advanceHW(n)
}

/* the leader acknowledges the record in flight */
inline acknowledge() {
    ackOff[nextId - 1] = reqOff;
    reqOff = 0; reqEpoch = 0; reqLeader = 0
}

/* follower f fetches from the leader in its view; `answered`: the response arrives (else lost) */
inline fetch(f, answered) {
    j = vLeader[f];
    if
    :: LEADS(j) && vEpoch[j] == vEpoch[f] ->
        x = leo[f]; k = LAST_EPOCH(f);
        ok = 1;
        if
        :: x > 0 ->
            endOffsetForEpoch(j, k);
            if
            :: ee != k || x > eo ->
                /* diverging: the follower truncates to where both logs agree */
                ok = 0;
                if :: eo > x -> eo = x :: else fi;
                if
                :: answered ->
                    y = eo; de = ee;
                    endOffsetForEpoch(f, de);
                    if :: eo > y -> eo = y :: else fi;
#ifndef UNCLEAN
                    assert(eo >= hw[f]);        /* never below the HW (unclean elections may) */
#endif
                    truncate(f, eo)
                :: else
                fi
            :: else
            fi
        :: else
        fi;
        if
        :: ok ->
            fl[j].seen[f] = 8 + x;                 /* fresh, LEO x */
            advanceHW(j);
            if
            :: answered ->
                if
                :: x < leo[j] -> log[f].at[x] = log[j].at[x]; leo[f]++
                :: else
                fi;
                y = hw[j];
                if :: y > leo[f] -> y = leo[f] :: else fi;
                if :: y > hw[f] -> hw[f] = y :: else fi
            :: else
            fi
        :: else
        fi
    :: else        /* no leader in this epoch there: FENCED/UNKNOWN_LEADER_EPOCH, or no answer */
    fi
}

/* the controller's checks of an AlterPartition from l: l leads, in that leader epoch
 * (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH); and the ISR it started from is the current
 * one (the partition epoch, INVALID_UPDATE_VERSION) */
#ifdef NO_LEADER_EPOCH_CHECK
#define SENDER_OK(l) (1)
#else
#define SENDER_OK(l) (cLeader == l && cEpoch == vEpoch[l])
#endif

/* the controller handles l's AlterPartition in flight; the answer reaches l */
inline alterPartition(l) {
    ms = PEND_NEW(l);
    ok = ((ms & ~cIsr & ~ELIGIBLE_SET) == 0);       /* adds only live, unfenced ones */
    if
    :: SENDER_OK(l) && cIsr == PEND_BASE(l) && ok ->
        cIsr = ms;
        vIsr[l] = ms
    :: else        /* refused: stale leader epoch or ISR, or an ineligible replica added */
    fi;
#ifdef ZOMBIE_EAGER_SHRINK
    /* known-bad: a leader cut off from the controller (fenced: its session expired) takes
     * the missing or refused answer as a timeout and applies its own shrink */
    if :: fenced[l] && (ms & ~vIsr[l]) == 0 -> vIsr[l] = ms :: else fi;
#endif
    pend[l] = 0;
    advanceHW(l)
}

/* replica n crashes and keeps its log up to `keep` (at least the committed prefix); the
 * controller fences it at once */
inline crash(n, keep) {
    truncate(n, keep);
    alive[n] = 0;
    fenced[n] = 0;                      /* a dead replica is fenced as such until it restarts */
    clearLeaderState(n);
#ifndef NO_BROKER_EPOCH_CHECK
    /* KIP-903: an AlterPartition names the broker epochs of the replicas it adds, and the
     * controller refuses one from an ended incarnation: so a proposal adding n, or one a
     * leader would base on what it saw of n before the crash, has no effect */
    r = 0;
    do
    :: r < N ->
        fl[r].seen[n] = fl[r].seen[n] & 7;
        if :: pend[r] != 0 && (PEND_NEW(r) & ~PEND_BASE(r) & BIT(n)) -> pend[r] = 0 :: else fi;
        r++
    :: else -> break
    od;
#endif
    vLeader[n] = NONE; vEpoch[n] = 0; vIsr[n] = 0;
    if :: reqLeader == n && reqOff != 0 -> reqOff = 0; reqEpoch = 0; reqLeader = 0 :: else fi;
    if :: SIZE(cIsr) > 1 -> cIsr = cIsr & ~BIT(n) :: else fi;
    if :: cLeader == n -> cLeader = NONE :: else fi
}

/* the controller fences live replica n whose broker session expired (it was cut off from the
 * controller): exactly as for a crash, n leaves the ISR unless it is the last member and, if
 * it led, the partition has no leader until the controller elects one. But n runs on, with
 * its log, its leader state and its view: a zombie, until it applies newer metadata. */
inline fence(n) {
    fenced[n] = 1;
    nFenced++;
    if :: SIZE(cIsr) > 1 -> cIsr = cIsr & ~BIT(n) :: else fi;
    if :: cLeader == n -> cLeader = NONE :: else fi
}

/* Runnel's step-aside rule: leader n stops appending and acknowledging; the produce request
 * it holds fails (NOT_LEADER_OR_FOLLOWER) */
inline stepAside(n) {
    aside[n] = 1;
    if :: reqLeader == n && reqOff != 0 -> reqOff = 0; reqEpoch = 0; reqLeader = 0 :: else fi
}

inline restart(n) {
    alive[n] = 1
}

/* the controller elects c while the partition has no leader */
inline elect(c) {
    cLeader = c;
    cEpoch++;
    if :: !(cIsr & BIT(c)) -> cIsr = BIT(c) :: else fi          /* unclean: c alone is in sync */
}

/* ---- the property, in every state ------------------------------------------------------ */

#define ONE_PER_EPOCH(a, b) (!(LEADS(a) && LEADS(b) && vEpoch[a] == vEpoch[b]))
#define NOT_AHEAD(n) (!LEADS(n) || vEpoch[n] < cEpoch || (vEpoch[n] == cEpoch && (cLeader == n || cLeader == NONE)))

inline checkInvariants() {
    /* Zombies: a replica the controller fenced while it ran on acts as the leader of its old
     * epoch until it applies newer metadata, beside the new leader; so two live replicas (with
     * MAXFENCE > 1, three) may act as leader at once, and neither "fenced" nor "stepped aside"
     * tells the zombie apart (it may be unfenced before it learns, and stepping aside takes
     * time). What holds: at most one leader per leader epoch, and no replica acts as leader of
     * an epoch newer than the controller's, or of the current epoch unless the controller
     * names it (or, after fencing it, no one yet). The data properties below are unchanged. */
    assert(ONE_PER_EPOCH(0, 1) && ONE_PER_EPOCH(0, 2) && ONE_PER_EPOCH(1, 2));
    assert(NOT_AHEAD(0) && NOT_AHEAD(1) && NOT_AHEAD(2));
#if MAXFENCE == 0
    /* without zombies: at most one live replica acts as the leader (the controller moves
     * leadership only when the leader crashed, and a crash wipes the metadata it applied) */
    assert(LEADS(0) + LEADS(1) + LEADS(2) <= 1);
#endif
    if
    :: cLeader != NONE ->
        /* no acknowledged record is lost: the leader has it, at its offset */
        i = 1;
        do
        :: i <= MAXREC ->
            if
            :: ackOff[i] != 0 ->
                assert(leo[cLeader] >= ackOff[i] && ID_OF(log[cLeader].at[ackOff[i] - 1]) == i)
            :: else
            fi;
            i++
        :: else -> break
        od;
#ifndef UNCLEAN
        /* what a consumer may read (below a replica's HW) is the leader's log too; an unclean
         * election gives this up by design, and the -DUNCLEAN run is about acknowledged records */
        i = 0;
        do
        :: i < N ->
            j = 0;
            do
            :: j < hw[i] -> assert(leo[cLeader] > j && log[cLeader].at[j] == log[i].at[j]); j++
            :: else -> break
            od;
            i++
        :: else -> break
        od
#endif
    :: else
    fi
}

/* ---- symmetry: the three replicas are interchangeable ----------------------------------
 * The steps treat every replica alike and so does the property (the initial state, where 0
 * leads, is just one state), so a state and the same state with two replicas renamed are
 * equivalent. After every step the replicas are sorted by their own state, and every replica
 * id and ISR bit renamed to match, so the search keeps one state of each class (ties leave
 * some duplicates). A counterexample trail shows replicas renamed as they are sorted. */

#define RENAME(v) if :: v == sa -> v = sb :: v == sb -> v = sa :: else fi
#define SWAPB(arr) tb = arr[sa]; arr[sa] = arr[sb]; arr[sb] = tb
#define SWAPBITS(m) if :: ((m >> sa) & 1) != ((m >> sb) & 1) -> m = m ^ (BIT(sa) | BIT(sb)) :: else fi
#define NODEKEY(n) (alive[n] + 2 * leo[n] + 8 * hw[n] \
    + 32 * (log[n].at[0] + 16 * log[n].at[1] + 256 * LOGAT2(n)) + 131072 * vEpoch[n] \
    + 524288 * (vLeader[n] == n) + 1048576 * (FLEO(0, n) + FLEO(1, n) + FLEO(2, n)) \
    + 8388608 * (cLeader == n) + 16777216 * ((cIsr >> n) & 1) + 33554432 * fenced[n] \
    + 67108864 * aside[n] + 134217728 * (pend[n] != 0))
#if MAXLOG > 2
#define LOGAT2(n) log[n].at[2]
#else
#define LOGAT2(n) 0
#endif

inline swapReplicas(a, b) {
    sa = a; sb = b;
    SWAPB(alive); SWAPB(leo); SWAPB(hw); SWAPB(vLeader); SWAPB(vEpoch); SWAPB(vIsr);
    SWAPB(fenced); SWAPB(pend); SWAPB(aside);
    q = 0;
    do
    :: q < MAXLOG -> tb = log[sa].at[q]; log[sa].at[q] = log[sb].at[q]; log[sb].at[q] = tb; q++
    :: else -> break
    od;
    q = 0;
    do
    :: q < N -> tb = fl[sa].seen[q]; fl[sa].seen[q] = fl[sb].seen[q]; fl[sb].seen[q] = tb; q++
    :: else -> break
    od;
    RENAME(cLeader);
    SWAPBITS(cIsr);
    q = 0;
    do
    :: q < N ->
        RENAME(vLeader[q]); SWAPBITS(vIsr[q]);
        tb = fl[q].seen[sa]; fl[q].seen[sa] = fl[q].seen[sb]; fl[q].seen[sb] = tb;
        if
        :: pend[q] != 0 ->
            pn = PEND_NEW(q); pb = PEND_BASE(q); SWAPBITS(pn); SWAPBITS(pb); pend[q] = 64 + 8 * pb + pn
        :: else
        fi;
        q++
    :: else -> break
    od;
    if :: reqOff != 0 -> RENAME(reqLeader) :: else fi
}

inline canonical() {
#ifndef NOSYMMETRY
    ka = NODEKEY(0); kb = NODEKEY(1);
    if :: ka > kb -> swapReplicas(0, 1) :: else fi;
    ka = NODEKEY(1); kb = NODEKEY(2);
    if :: ka > kb -> swapReplicas(1, 2) :: else fi;
    ka = NODEKEY(0); kb = NODEKEY(1);
    if :: ka > kb -> swapReplicas(0, 1) :: else fi;
#endif
    skip
}

#define STEP(body) d_step { body }

/* A crash keeps the committed prefix: offsets below the partition HW (ghost gHW). With
 * UNFLUSHED_LOSS it keeps only what is below the replica's own HW, which lags on followers and
 * on a new leader (Kafka's default of not fsyncing before acknowledging). */
#ifdef UNFLUSHED_LOSS
#define KEEP_MIN(n) (hw[n])
#elif MAXFENCE > 0
/* with zombies, the fault model as the simulation's: not every ISR member loses its page
 * cache, so the controller's last ISR member keeps its whole log when it crashes */
#define KEEP_MIN(n) (cIsr == BIT(n) -> leo[n] : gHW)
#else
#define KEEP_MIN(n) (gHW)
#endif
#if MAXLOG > 2
#define KEEP2(n) \
    :: alive[n] && KEEP_MIN(n) <= 2 && leo[n] > 2 -> STEP(printf("crash %d, keeping 2 entries\n", n); crash(n, 2))
#else
#define KEEP2(n)
#endif

#ifndef NO_BROKER_EPOCH_CHECK
#define FRESH(l, f) (fl[l].seen[f] >> 3)
#else
#define FRESH(l, f) (1)
#endif

/* the leader proposes adding f once f reached the HW and this leader's epoch start offset */
inline proposeAdd(n, f) {
    epochStart(n);
    if
    :: FLEO(n, f) >= hw[n] && FLEO(n, f) >= es ->
        printf("leader %d proposes ISR %d\n", n, vIsr[n] | BIT(f));
        PROPOSE(n, vIsr[n] | BIT(f))
    :: else
    fi
}

#define FOLLOWS(n) (alive[n] && vLeader[n] != n && vLeader[n] != NONE && vEpoch[n] > 0)
#define STALE(n)   (vEpoch[n] != cEpoch || vIsr[n] != cIsr || vLeader[n] != cLeader)

/* the steps of replica n; a and b are the other two */
#define REPLICA(n, a, b) \
    :: !alive[n] -> STEP(printf("restart %d\n", n); restart(n)) \
    :: alive[n] && STALE(n) -> \
        STEP(printf("%d applies metadata: leader %d, epoch %d, ISR %d\n", n, cLeader, cEpoch, cIsr); \
             applyMetadata(n)) \
    :: FOLLOWS(n) -> STEP(printf("%d fetches from %d at offset %d\n", n, vLeader[n], leo[n]); fetch(n, 1)) \
    :: FOLLOWS(n) -> \
        STEP(printf("%d fetches from %d at offset %d, answer lost\n", n, vLeader[n], leo[n]); fetch(n, 0)) \
    :: LEADS(n) && !aside[n] && reqOff == 0 && nextId <= MAXREC && leo[n] < MAXLOG && SIZE(vIsr[n]) >= MIN_ISR -> \
        STEP(printf("leader %d appends record %d at offset %d\n", n, nextId, leo[n]); produce(n)) \
    :: LEADS(n) && !aside[n] && reqOff != 0 && reqLeader == n && reqEpoch == vEpoch[n] && hw[n] >= reqOff \
            && SIZE(MAXIMAL(n)) >= MIN_ISR -> \
        STEP(printf("leader %d acknowledges record %d (offset %d, HW %d, ISR %d)\n", \
                    n, nextId - 1, reqOff - 1, hw[n], MAXIMAL(n)); \
             acknowledge()) \
    :: LEADS(n) && pend[n] == 0 && (vIsr[n] & BIT(a)) && FLEO(n, a) < leo[n] -> \
        STEP(printf("leader %d proposes ISR %d\n", n, vIsr[n] & ~BIT(a)); PROPOSE(n, vIsr[n] & ~BIT(a))) \
    :: LEADS(n) && pend[n] == 0 && (vIsr[n] & BIT(b)) && FLEO(n, b) < leo[n] -> \
        STEP(printf("leader %d proposes ISR %d\n", n, vIsr[n] & ~BIT(b)); PROPOSE(n, vIsr[n] & ~BIT(b))) \
    :: LEADS(n) && pend[n] == 0 && !(vIsr[n] & BIT(a)) && FRESH(n, a) -> STEP(proposeAdd(n, a)) \
    :: LEADS(n) && pend[n] == 0 && !(vIsr[n] & BIT(b)) && FRESH(n, b) -> STEP(proposeAdd(n, b)) \
    :: LEADS(n) && pend[n] != 0 -> \
        STEP(printf("controller handles AlterPartition %d (from %d) from %d (epoch %d); ISR is %d\n", \
                    PEND_NEW(n), PEND_BASE(n), n, vEpoch[n], cIsr); \
             alterPartition(n)) \
    FENCE(n, a, b) \
    :: alive[n] && fenced[n] -> STEP(printf("controller unfences %d\n", n); fenced[n] = 0; aside[n] = 0) \
    STEP_ASIDE(n) \
    :: alive[n] -> STEP(printf("crash %d\n", n); crash(n, leo[n])) \
    :: alive[n] && KEEP_MIN(n) == 0 && leo[n] > 0 -> STEP(printf("crash %d, keeping 0 entries\n", n); crash(n, 0)) \
    :: alive[n] && KEEP_MIN(n) <= 1 && leo[n] > 1 -> STEP(printf("crash %d, keeping 1 entry\n", n); crash(n, 1)) \
    KEEP2(n) \
    :: cLeader == NONE && ELIGIBLE(n) && cEpoch < MAXEPOCH && ((cIsr & BIT(n)) || UNCLEAN_OK) -> \
        STEP(printf("controller elects %d, epoch %d\n", n, cEpoch + 1); elect(n))

#ifndef NO_STEP_ASIDE
#define STEP_ASIDE(n) \
    :: LEADS(n) && !aside[n] && ASIDE_OK(n) -> STEP(printf("leader %d steps aside\n", n); stepAside(n)) \
    :: aside[n] -> STEP(printf("leader %d resumes\n", n); aside[n] = 0)
#else
#define STEP_ASIDE(n)
#endif
/* The controller fences live leader n (a zombie from then on) and, as fenceBrokers does in
 * the same batch of records, elects a live, unfenced ISR member c if there is one */
#define FENCING(n)      (ELIGIBLE(n) && LEADS(n) && nFenced < MAXFENCE)
#define ELECTABLE(n, c) (cLeader == n && ELIGIBLE(c) && (cIsr & BIT(c)) && cEpoch < MAXEPOCH)
#define FENCE(n, a, b) \
    :: FENCING(n) && ELECTABLE(n, a) -> \
        STEP(printf("controller fences live replica %d (session expired) and elects %d, epoch %d\n", \
                    n, a, cEpoch + 1); fence(n); elect(a)) \
    :: FENCING(n) && ELECTABLE(n, b) -> \
        STEP(printf("controller fences live replica %d (session expired) and elects %d, epoch %d\n", \
                    n, b, cEpoch + 1); fence(n); elect(b)) \
    :: FENCING(n) && !ELECTABLE(n, a) && !ELECTABLE(n, b) -> \
        STEP(printf("controller fences live replica %d (session expired)\n", n); fence(n))

#ifdef UNCLEAN
/* unclean.leader.election.enable=true: any live replica once no ISR member is alive */
#define UNCLEAN_OK (!((cIsr & 1) && ELIGIBLE(0)) && !((cIsr & 2) && ELIGIBLE(1)) && !((cIsr & 4) && ELIGIBLE(2)))
#else
#define UNCLEAN_OK 0
#endif

init {
    d_step {
        i = 0;
        do
        :: i < N -> alive[i] = 1; vLeader[i] = 0; vEpoch[i] = 1; vIsr[i] = ALL; i++
        :: else -> break
        od;
        i = 0
    }
end:
    do
    :: atomic {
        if
        REPLICA(0, 1, 2)
        REPLICA(1, 0, 2)
        REPLICA(2, 0, 1)
        :: reqOff != 0 -> STEP(printf("the produce request fails\n"); reqOff = 0; reqEpoch = 0; reqLeader = 0)
        fi;
        d_step { canonical() }
    }
    od
}

active proctype invariants() {
end:
    do
    :: d_step { checkInvariants(); skip }
    od
}
