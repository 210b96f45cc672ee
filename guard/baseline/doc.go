// Package baseline owns Vigil's behavior detection: one learned profile per
// workload revision container (profile.Key), its on-disk store, and the
// scoring that turns events outside a profile into deduplicated alerts.
//
// # Profiles
//
// A profile starts from the manifest (profile.Expected, recorded by the
// admission webhook): executables and commands, listening ports, declared
// egress, writable paths and the privilege envelope. Learning then adds what
// the running containers do:
//
//   - executables (paths), the names each was exec'd under (proc.exec_path's
//     and argv[0]'s last component: /bin/busybox as sh and cat; category
//     exec_name, "cat@/bin/busybox") and parent→child exec edges;
//   - file reads and writes as generalized patterns in a path trie: pids,
//     hex hashes, uuids, dates and numeric or random suffixes collapse into
//     tokens ({n}, {hex}, {uuid}, {date}, {id}), and a directory with more
//     than 24 distinct names collapses into a wildcard (*);
//   - outbound peers (address:port; eight peers of one /24 and port become
//     that subnet; CIDRs and DNS names from the manifest, matched through
//     NoteDNS) and listening ports;
//   - privilege operations (setuid, capset, mount, ptrace, ...);
//   - per-minute rates of fork, exec, connect and open, per container
//     instance, as an EWMA mean and variance plus the busiest minute;
//   - events per hour of day.
//
// Replicas of a revision share one profile, so the first pods of a rollout
// (the canaries) teach it for the rest. A new revision inherits its
// predecessor's profile (the release window's PrevRevision, else the newest
// revision of the workload) and learns only the difference.
//
// States: learning → ready → locked. A first revision is ready after
// MinLearn (30m) once StableAfter (10m) passed without a new behavior, or
// after MaxLearn (24h) regardless; an inherited revision after 5m and 5m.
// Lock makes a ready profile's executables, with their names, an allow-list
// for the enforcer (LockTargets, per cgroup); in audit mode an exec outside a
// locked profile yields a "would have blocked" alert (Action block, Taken
// false). A locked profile never folds an exec or a name in by itself (not
// even an informational one in a release window): only Accept changes it.
//
// # Scoring
//
// Every behavior outside a ready profile opens a deviation, scored
//
//		score = clamp(novelty × release × hour × persistence, 0, 1)
//
//	  - novelty: the base weight of the behavior's category (Weights): a new
//	    exec 0.30 (a known file under a new name too), an exec of a memfd or
//	    upper-layer file 0.60, a new exec edge
//	    0.15, a file read 0.15 (credentials, secrets, other processes' memory
//	    0.50), a write 0.20 (system paths 0.55), a new egress peer 0.30, a new
//	    listening port 0.35, a privilege op 0.35 (ptrace, module load, mount,
//	    setns, unshare, memfd, packet socket, socket on stdio 0.55), a rate
//	    anomaly 0.25. Ordinary new behaviors (an exec, an egress peer, a file
//	    read) are weak evidence and stay at Notice alone at a normal hour;
//	    credential reads, dropped executables and dangerous privilege
//	    operations start at Warning.
//	  - release: 0.25 while the workload's release window is open, 0.50 while
//	    a revision that inherited its predecessor's profile is younger than
//	    RevisionGrace (48h), else 1. A rollout explains change; alert floods
//	    after releases are what users of other tools complain about most. A
//	    first revision has no predecessor to differ from: its learning window
//	    absorbed deploy-time novelty, so once ready it is scored in full.
//	  - hour: 1.40 when the current hour of day saw less than half the events
//	    of the workload's busiest hour (once every hour of the day has been
//	    watched), else 1.
//	    Relative to the peak because probes keep every hour somewhat busy.
//	  - persistence: 1 + min(0.60, 0.15·log2(minutes)) + 0.40·min(1,
//	    span/10m), where minutes counts the distinct minutes in which the
//	    behavior was seen. One sighting is 1; recurring over ten minutes
//	    nearly doubles the score. The logarithm keeps a long recurrence from
//	    saturating it at once; counting minutes rather than events keeps one
//	    sweep over many files of one pattern (a checkpoint unlinking
//	    relation files) at one occurrence. Alerts carry the raw count.
//
// Rate anomalies: a finished minute whose count exceeds max(floor,
// mean + 6·sd, 2·busiest learned minute) is anomalous (only once the
// distribution has 10 minutes), where the floor is 60 for fork and exec and
// 600 for connect and open (those follow request load, process creation
// does not); its deviation's count is the number of
// anomalous minutes, so a sustained burst gains persistence. Anomalous
// minutes are not learned, so an attacker cannot train the rate up.
//
// Combinations: a sustained fork or exec burst (ComboMinBurst=3 consecutive
// anomalous minutes) together with a new egress peer or a new privilege
// operation within ComboWindow (15m) becomes one combination deviation:
//
//	combo = clamp(1.5 × (1 − (1 − s_partner)(1 − s_burst)), 0, 1)
//
// Noisy-OR treats the two as independent evidence; the 1.5 boost says the
// pair is an intrusion pattern (a foothold calling out while it runs tools),
// not two accidents. This is how the brief's 03:00 case becomes CRITICAL
// while each of its signals alone stays at Notice to Error.
//
// Priority: score ≥ 0.85 Critical, ≥ 0.65 Error, ≥ 0.45 Warning, ≥ 0.25
// Notice, else Informational.
//
// # Alerts
//
// One alert per (revision, behavior) deviation, with Source "baseline",
// the first event as evidence, the factors in Fields, and the deploy context
// of the revision's release window. Repeats update Count, FirstSeen and
// LastSeen (see Deviations) and alert again only when the priority rises.
// An informational deviation that a release explains (release factor < 1) is
// folded into the profile and reported as learned: that is the brief's
// day-after-release diagnostic. Accept folds a reviewed behavior in.
// While an inherited revision learns, informational deviations are learned
// silently and the rest alert. An exec of a memfd or an upper-layer file is
// never learned silently. A deviation that stops recurring is forgotten after
// DeviationTTL (24h); open deviations are bounded by MaxDeviations, and
// anything dropped is counted in Stats. A rate finding's evidence is the
// event that pushed its minute over the threshold.
//
// # Storage
//
// Store keeps profiles in bbolt, one record per key in a compact binary
// encoding (encode.go) with a CRC; each write is one transaction, so a
// kill -9 leaves every profile at its old or its new version. The detector
// flushes changed profiles every FlushEvery (30s), on Accept and on Close,
// and deletes all but the newest KeepRevisions (3) revisions of a workload
// container that have no running containers.
package baseline
