/*
 * kraft.pml: the KRaft metadata quorum as RunnelRaft implements it
 * (Sources/RunnelRaft/RaftNode.swift, RaftLogView.swift).
 *
 * Three voters, epochs 1..MAXE, logs of at most ML entries, crash/restart of any node at any time,
 * message loss, and late delivery of any message. A restart keeps what is durable: the quorum
 * state (epoch, voted-for, leader) and the log up to its persisted end; it loses unsynced appends,
 * the role and the high watermark.
 *
 * Network. Vote, its response and BeginQuorumEpoch travel in one bag of at most NET messages,
 * delivered in any order or lost. Fetch is request/response over the follower's connection to
 * the leader, which is ordered (TCP; NIORaftRuntime answers a peer's requests oldest first): each
 * follower has one fetch exchange in flight (the request, then the answer), which may be lost or
 * may arrive arbitrarily late (after elections, crashes, other exchanges of other nodes).
 * -DREORDER lets two exchanges of one follower be in flight and arrive in any order, as
 * RunnelSim's network (duplication, reordering) allows. -DFETCH_GUARD adds the check the core
 * needs then: a diverging-epoch answer is used only if the log has not changed since the fetch.
 *
 * Checked after every step (assertions):
 *   - at most one leader per epoch (and BeginQuorumEpoch never meets a second leader);
 *   - a follower never truncates below its high watermark (the core's precondition);
 *   - committed entries never change: every node's log below its high watermark agrees with one
 *     committed log (log matching below the high watermark);
 *   - committed entries never disappear: each is durably held by a majority;
 *   - leader completeness: a leader of epoch e holds every entry committed in an epoch <= e.
 *
 * An entry is its epoch (one leader per epoch writes each offset once, so (offset, epoch) names an
 * entry); a log is an array of epochs. README.md lists the abstractions.
 */

#ifndef MAXE
#define MAXE 3          /* highest epoch an election may reach */
#endif
#ifndef ML
#define ML 3            /* longest log */
#endif
#ifndef NET
#define NET 2           /* election messages in flight at once (more are lost) */
#endif
#ifdef REORDER
#define FX 2            /* fetch exchanges in flight per follower */
#else
#define FX 1
#endif

#define N 3             /* voters 0, 1, 2; a majority is 2 */
#define NONE 3          /* no node */

/* Roles. Prospective, resigned and unattached are one role here: none of them leads, stands or
   follows, and a pre-vote changes no state; a node may stand at any time (see README). */
#define UNATT 0
#define FOLL  1
#define CAND  2
#define LEAD  3

/* Messages: type, to, from, epoch, a, b, c, d */
#define VREQ  1   /* Vote: a = candidate's last epoch, b = its log end */
#define VRESP 2   /* Vote granted (b = the voter's leader) */
#define BEGIN 3   /* BeginQuorumEpoch */
#define FETCH 4   /* Fetch: a = fetch offset, b = last fetched epoch (0: empty log) */
#define FDATA 5   /* answer with records: a = HW, b = read from, c = leader's log end, d = entries */
#define FDIV  6   /* answer with a diverging epoch: b = offset, c = epoch (a, d: the fetch's a, b) */
#define FERR  7   /* answer with an error: b = the responder's leader */

#define LG(i,k)   lg[(i)*ML+(k)]
#define PROG(i,j) prog[(i)*N+(j)]

/* durable: the quorum state and the log up to plen */
byte ep[N];                 /* epoch */
byte vote[N] = NONE;        /* voted for, in ep */
byte ldr[N] = NONE;         /* leader known in ep */
byte lg[N*ML];              /* entry epochs; 0 past the log end */
byte plen[N];               /* persisted end */
/* volatile */
byte leo[N];                /* log end offset */
byte role[N];
byte hw[N];                 /* high watermark (0: none) */
byte estart[N];             /* leader: offset of its leader-change record */
byte prog[N*N];             /* leader: each voter's last fetch offset */

/* ghosts */
byte leaderOf[MAXE+1] = NONE;
byte clog[ML];              /* the committed log */
byte cep[ML];               /* the epoch in which each committed entry was first committed */
byte clen;

chan net = [NET] of { byte, byte, byte, byte, byte, byte, byte, byte };
chan fx[N] = [FX] of { byte, byte, byte, byte, byte, byte, byte, byte };   /* follower i's fetches */

hidden byte mt, mto, mfr, mep, ma, mb, mc, md;
hidden byte q[8*NET];
hidden byte tx, ty, tz, te, toff, tk, tc, tmoved, tr;

/* ---------------------------------------------------------------------------------------------- */
/* helpers (all run inside one d_step) */

inline send(ch, t, to, fr, e, a, b, c, d) {
  if
  :: nfull(ch) -> ch !! t, to, fr, e, a, b, c, d
  :: full(ch) -> skip                  /* no room: lost */
  fi
}

/* Refusals (a vote not granted, a fetch answered with an error) only carry the responder's epoch
   and leader, which BeginQuorumEpoch and Vote carry too; they are not sent unless -DREFUSALS,
   which keeps the state space small. */
inline refuse(ch, t, to, fr, e, a, b, c, d) {
#ifdef REFUSALS
  send(ch, t, to, fr, e, a, b, c, d)
#else
  skip
#endif
}

inline lastEpoch(i, r) {
  if
  :: leo[i] == 0 -> r = 0
  :: else -> r = LG(i, leo[i] - 1)
  fi
}

/* RaftLogView.endOffset(forEpoch:): the largest epoch <= e in log i (fe; 0 if none) and where it
   ends (fo). Epochs never go down in a log, so it ends where the first larger epoch starts. */
inline endFor(i, e, fe, fo) {
  fe = 0; fo = 0; tk = 0;
  do
  :: tk < leo[i] && LG(i, tk) <= e -> fe = LG(i, tk); tk++; fo = tk
  :: else -> break
  od
}

inline zeroFrom(i, from) {
  tk = from;
  do
  :: tk < ML -> LG(i, tk) = 0; tk++
  :: else -> break
  od
}

inline clearRole(i) {
  estart[i] = 0;
  PROG(i,0) = 0; PROG(i,1) = 0; PROG(i,2) = 0
}

inline setEpoch(i, e) {
  if
  :: e > ep[i] -> ep[i] = e; vote[i] = NONE; ldr[i] = NONE
  :: else -> skip
  fi
}

inline becomeUnattached(i, e) {
  setEpoch(i, e); clearRole(i); role[i] = UNATT; ldr[i] = NONE
}

inline becomeFollower(i, e, l) {
  setEpoch(i, e); clearRole(i); role[i] = FOLL; ldr[i] = l
}

/* maybeAdvanceLeaderHighWatermark: the offset a majority holds (the median of the leader's
   persisted end and the voters' fetch offsets), and only past the epoch's leader-change record */
inline advanceHW(i) {
  tx = plen[i];
  ty = PROG(i, (i+1)%N);
  tz = PROG(i, (i+2)%N);
  if :: tx > ty -> tc = tx; tx = ty; ty = tc :: else -> skip fi;   /* tx <= ty */
  if :: tz < tx -> tz = tx :: else -> skip fi;
  if :: tz > ty -> tz = ty :: else -> skip fi;                     /* tz: the median */
  if
  :: tz > estart[i] && tz > hw[i] -> hw[i] = tz
  :: else -> skip
  fi
}

inline startElection(i) {
  ep[i] = ep[i] + 1; vote[i] = i; ldr[i] = NONE;       /* durable before the requests leave */
  clearRole(i); role[i] = CAND;
  lastEpoch(i, te);
  send(net, VREQ, (i+1)%N, i, ep[i], te, leo[i], 0, 0);
  send(net, VREQ, (i+2)%N, i, ep[i], te, leo[i], 0, 0)
}

inline becomeLeader(i) {
  assert(leaderOf[ep[i]] == NONE || leaderOf[ep[i]] == i);   /* at most one leader per epoch */
  leaderOf[ep[i]] = i;
  clearRole(i); role[i] = LEAD; ldr[i] = i;
  estart[i] = leo[i];
  LG(i, leo[i]) = ep[i]; leo[i]++;                             /* the leader-change record */
  send(net, BEGIN, (i+1)%N, i, ep[i], 0, 0, 0, 0);
  send(net, BEGIN, (i+2)%N, i, ep[i], 0, 0, 0, 0);
  advanceHW(i)
}

/* handleEpochInResponse: a response from a later epoch, or naming the leader of ours */
inline epochInResponse(i, e, l) {
  tmoved = 0;
  if
  :: e > ep[i] ->
     if
     :: l != NONE && l != i -> becomeFollower(i, e, l)
     :: else -> becomeUnattached(i, e)
     fi;
     tmoved = 1
  :: e == ep[i] && l != NONE && l != i && ldr[i] == NONE && role[i] != CAND && role[i] != LEAD ->
     becomeFollower(i, e, l); tmoved = 1
  :: else -> skip
  fi
}

inline truncate(i, t) {
  if
  :: t < leo[i] ->
     assert(t >= hw[i]);       /* "truncation below the high watermark would lose committed records" */
     leo[i] = t;
     if :: plen[i] > t -> plen[i] = t :: else -> skip fi;
     zeroFrom(i, t)
  :: else -> skip
  fi
}

/* ---------------------------------------------------------------------------------------------- */
/* message handlers: the message is in mt, mto, mfr, mep, ma, mb, mc, md */

inline onVote() {                                   /* handleVote (not a pre-vote) */
  if
  :: mep < ep[mto] -> refuse(net, VRESP, mfr, mto, ep[mto], 0, ldr[mto], 0, 0)
  :: else ->
     if :: mep > ep[mto] -> becomeUnattached(mto, mep) :: else -> skip fi;
     lastEpoch(mto, te);
     if
     :: ldr[mto] == NONE && (vote[mto] == NONE || vote[mto] == mfr) && role[mto] != LEAD && role[mto] != CAND &&
        (ma > te || (ma == te && mb >= leo[mto])) ->            /* the candidate's log is as up to date */
        vote[mto] = mfr;                                         /* durable before the answer leaves */
        send(net, VRESP, mfr, mto, ep[mto], 1, ldr[mto], 0, 0)
     :: else ->
        refuse(net, VRESP, mfr, mto, ep[mto], 0, ldr[mto], 0, 0)
     fi
  fi
}

inline onVoteResponse() {
  epochInResponse(mto, mep, mb);
  if
  :: tmoved == 0 && role[mto] == CAND && mep == ep[mto] && ma == 1 && leo[mto] < ML ->
     becomeLeader(mto)                              /* itself and one more: a majority of 3 */
  :: else -> skip
  fi
}

inline onBeginEpoch() {
  if
  :: mep < ep[mto] -> skip                          /* answered FENCED_LEADER_EPOCH */
  :: mep > ep[mto] || ldr[mto] == NONE ->
     if :: mfr != mto -> becomeFollower(mto, mep, mfr) :: else -> skip fi
  :: else ->
     assert(ldr[mto] == mfr)                        /* "two leaders in epoch" */
  fi
}

inline onFetch() {                                  /* handleFetch on mto, from follower mfr */
  if
  :: role[mto] != LEAD -> refuse(fx[mfr], FERR, mfr, mto, ep[mto], 0, ldr[mto], 0, 0)
  :: role[mto] == LEAD && mep != ep[mto] -> refuse(fx[mfr], FERR, mfr, mto, ep[mto], 0, mto, 0, 0)
  :: else ->
     tr = 0;
     if
     :: ma > 0 ->
        endFor(mto, mb, te, toff);
        if
        :: te == 0 -> tr = 1; toff = 0              /* no common epoch: the whole log diverges */
        :: te != 0 && (te != mb || ma > toff) -> tr = 1;
           if :: ma < toff -> toff = ma :: else -> skip fi
        :: else -> skip
        fi
     :: else -> skip
     fi;
     if
#ifdef FETCH_GUARD
     :: tr == 1 -> send(fx[mfr], FDIV, mfr, mto, ep[mto], ma, toff, te, mb)
#else
     :: tr == 1 -> send(fx[mfr], FDIV, mfr, mto, ep[mto], 0, toff, te, 0)
#endif
     :: else ->
        PROG(mto, mfr) = ma;
        advanceHW(mto);
        /* the records from the fetch offset to the leader's log end, two bits each */
        tc = 0; tk = ML;
        do
        :: tk > ma -> tk--; tc = tc * 4 + LG(mto, tk)
        :: else -> break
        od;
        tk = 0;
        do
        :: tk < ma -> tk++; tc = tc * 4
        :: else -> break
        od;
        send(fx[mfr], FDATA, mfr, mto, ep[mto], hw[mto], ma, leo[mto], tc)
     fi
  fi
}

inline onFetchResponse() {                          /* handleFetchResponse on mto, from mfr */
  if
  :: role[mto] == FOLL && mfr != ldr[mto] && mep <= ep[mto] -> skip   /* a late answer from a node we left */
  :: else ->
     if :: mt == FERR -> tr = mb :: else -> tr = mfr fi;
     epochInResponse(mto, mep, tr);
     lastEpoch(mto, te);
     if
     :: tmoved == 1 || mt == FERR -> skip
     :: tmoved == 0 && mt != FERR && (mep != ep[mto] || tr != ldr[mto]) -> skip
#ifdef FETCH_GUARD
     :: tmoved == 0 && mt == FDIV && mep == ep[mto] && tr == ldr[mto] && (ma != leo[mto] || md != te) ->
        skip                                        /* answers a fetch from a log we no longer have */
     :: tmoved == 0 && mt == FDIV && mep == ep[mto] && tr == ldr[mto] && ma == leo[mto] && md == te ->
#else
     :: tmoved == 0 && mt == FDIV && mep == ep[mto] && tr == ldr[mto] ->
#endif
        endFor(mto, mc, te, toff);
        if :: mb < toff -> toff = mb :: else -> skip fi;
        truncate(mto, toff)
     :: tmoved == 0 && mt == FDATA && mep == ep[mto] && tr == ldr[mto] ->
        if
        :: mb <= leo[mto] ->
           do
           :: leo[mto] < mc ->
              lastEpoch(mto, te);
              tk = (md >> (2 * leo[mto])) & 3;
              if
              :: tk >= te && tk <= ep[mto] -> LG(mto, leo[mto]) = tk; leo[mto]++
              :: else -> break
              fi
           :: else -> break
           od
        :: else -> skip                             /* starts past our end: nothing to append */
        fi;
        plen[mto] = leo[mto];                       /* a follower's append and its fsync are one step */
        tx = ma;
        if :: tx > leo[mto] -> tx = leo[mto] :: else -> skip fi;
        if :: tx > hw[mto] -> hw[mto] = tx :: else -> skip fi
     fi
  fi
}

inline deliver() {
  if
  :: mt == VREQ  -> onVote()
  :: mt == VRESP -> onVoteResponse()
  :: mt == BEGIN -> onBeginEpoch()
  :: mt == FETCH -> onFetch()
  :: else        -> onFetchResponse()
  fi
}

/* takes the (k+1)-th message of a sorted channel: any message, so any order */
inline take(ch, k) {
  tz = 0;
  do
  :: tz < k -> ch ? q[8*tz], q[8*tz+1], q[8*tz+2], q[8*tz+3], q[8*tz+4], q[8*tz+5], q[8*tz+6], q[8*tz+7]; tz++
  :: else -> break
  od;
  ch ? mt, mto, mfr, mep, ma, mb, mc, md;
  do
  :: tz > 0 -> tz--; ch !! q[8*tz], q[8*tz+1], q[8*tz+2], q[8*tz+3], q[8*tz+4], q[8*tz+5], q[8*tz+6], q[8*tz+7]
  :: else -> break
  od
}

/* ---------------------------------------------------------------------------------------------- */
/* the properties, checked after every step */

inline check() {
  tx = 0;
  do
  :: tx < N ->
     assert(hw[tx] <= leo[tx] && plen[tx] <= leo[tx]);
     /* below its HW every log agrees with the committed log; a larger HW commits more */
     ty = 0;
     do
     :: ty < hw[tx] ->
        if
        :: ty < clen -> assert(LG(tx, ty) == clog[ty])   /* committed entries never change */
        :: else -> clog[ty] = LG(tx, ty); cep[ty] = ep[tx]; clen = ty + 1
        fi;
        ty++
     :: else -> break
     od;
     tx++
  :: else -> break
  od;
  ty = 0;
  do
  :: ty < clen ->
     tc = 0; tx = 0;
     do
     :: tx < N ->
        if :: plen[tx] > ty && LG(tx, ty) == clog[ty] -> tc++ :: else -> skip fi;
        /* leader completeness */
        if :: role[tx] == LEAD && cep[ty] <= ep[tx] -> assert(leo[tx] > ty && LG(tx, ty) == clog[ty]) :: else -> skip fi;
        tx++
     :: else -> break
     od;
     assert(tc >= 2);                               /* committed entries are durable on a majority */
     ty++
  :: else -> break
  od
}

/* ---------------------------------------------------------------------------------------------- */
/* a node's own steps */

inline persist(i) {                                 /* an fsync completes */
  plen[i] < leo[i] ->
  plen[i] = leo[i];
  if :: role[i] == LEAD -> advanceHW(i) :: else -> skip fi
}

inline propose(i) {                                 /* the active controller writes a record */
  role[i] == LEAD && leo[i] < ML ->
  LG(i, leo[i]) = ep[i]; leo[i]++
}

inline sendFetch(i) {                               /* maybeSendFetch: only what is durable */
  role[i] == FOLL && plen[i] == leo[i] && nfull(fx[i]) ->
  lastEpoch(i, te);
  send(fx[i], FETCH, ldr[i], i, ep[i], leo[i], te, 0, 0)
}

inline stand(i) {                                   /* election timeout and a won pre-vote */
  role[i] != LEAD && ep[i] < MAXE && (i == 0 || ep[0] > 0) ->   /* symmetry: node 0 stands first */
  startElection(i)
}

inline giveUp(i) {                                  /* fetch timeout, lost pre-vote or election, resignation */
  (role[i] != UNATT || ldr[i] != NONE) ->
  clearRole(i); role[i] = UNATT; ldr[i] = NONE
}

inline crash(i) {                                   /* crash, then restart from what is durable */
  (leo[i] != plen[i] || role[i] != UNATT || hw[i] != 0 || ldr[i] != NONE) ->
  leo[i] = plen[i]; zeroFrom(i, plen[i]);
  hw[i] = 0; clearRole(i);
  if
  :: ldr[i] != NONE && ldr[i] != i -> role[i] = FOLL
  :: else -> role[i] = UNATT; ldr[i] = NONE
  fi
}

/* ---------------------------------------------------------------------------------------------- */
/* what a replayed trail (spin -t kraft.pml) prints after each step: role (Unattached, Follower,
   Candidate, Leader), epoch, voted for, leader, [entry epochs], persisted end, HW; the verifier
   prints nothing */

inline dump() {
  tx = 0;
  do
  :: tx < N ->
     printf("  n%d ", tx);
     if
     :: role[tx] == UNATT -> printf("U")
     :: role[tx] == FOLL -> printf("F")
     :: role[tx] == CAND -> printf("C")
     :: role[tx] == LEAD -> printf("L")
     fi;
     printf(" e%d v%d l%d [", ep[tx], vote[tx], ldr[tx]);
     ty = 0;
     do :: ty < leo[tx] -> printf("%d", LG(tx, ty)); ty++ :: else -> break od;
     printf("] p%d hw%d", plen[tx], hw[tx]);
     tx++
  :: else -> break
  od;
  printf("  committed %d\n", clen)
}

inline showMessage() {
  printf("%d->%d ", mfr, mto);
  if
  :: mt == VREQ -> printf("Vote e%d last epoch %d end %d\n", mep, ma, mb)
  :: mt == VRESP -> printf("Vote granted e%d\n", mep)
  :: mt == BEGIN -> printf("BeginQuorumEpoch e%d\n", mep)
  :: mt == FETCH -> printf("Fetch e%d offset %d last epoch %d\n", mep, ma, mb)
  :: mt == FDATA -> printf("FetchResponse e%d records [%d, %d) HW %d\n", mep, mb, mc, ma)
  :: mt == FDIV -> printf("FetchResponse e%d diverging epoch %d at %d (fetch at %d)\n", mep, mc, mb, ma)
  :: mt == FERR -> printf("FetchResponse e%d error, leader %d\n", mep, mb)
  fi
}

#define NODE_STEPS(i) \
  :: d_step { persist(i);   printf("n%d fsync\n", i);    dump(); check(); skip } \
  :: d_step { propose(i);   printf("n%d propose\n", i);  dump(); check(); skip } \
  :: d_step { sendFetch(i); printf("n%d fetch\n", i);    dump(); check(); skip } \
  :: d_step { stand(i);     printf("n%d stands\n", i);   dump(); check(); skip } \
  :: d_step { giveUp(i);    printf("n%d gives up\n", i); dump(); check(); skip } \
  :: d_step { crash(i);     printf("n%d restarts\n", i); dump(); check(); skip }

#define MSG_STEPS(ch, k) \
  :: d_step { len(ch) > k -> take(ch, k); printf("deliver "); showMessage(); deliver(); dump(); check(); skip } \
  :: d_step { len(ch) > k -> take(ch, k); printf("lose "); showMessage(); skip }

active proctype quorum() {
end:              /* out of epochs or log room with nothing left to do: a valid end */
  do
  NODE_STEPS(0)
  NODE_STEPS(1)
  NODE_STEPS(2)
  MSG_STEPS(net, 0)
#if NET > 1
  MSG_STEPS(net, 1)
#endif
#if NET > 2
  MSG_STEPS(net, 2)
#endif
  MSG_STEPS(fx[0], 0)
  MSG_STEPS(fx[1], 0)
  MSG_STEPS(fx[2], 0)
#if FX > 1
  MSG_STEPS(fx[0], 1)
  MSG_STEPS(fx[1], 1)
  MSG_STEPS(fx[2], 1)
#endif
  od
}
