//! Disk faults on a stopped node: what a crash or a power loss can do to a correct fsync
//! discipline, and one thing it cannot (damage to synced data), each followed by what the node
//! must do about it.
//!
//! A node's write-ahead log (crates/concord-wal) acknowledges nothing before its `fdatasync`
//! returned, and after every sync it rewrites `wal/WATERMARK` with how many bytes of the current
//! segment were synced. So after a SIGKILL the bytes of the last segment **above the watermark**
//! were never acknowledged by anyone: a power loss at that moment may keep all, some or none of
//! them, and may cut a record in half. Below the watermark (and in every sealed segment) the
//! bytes were promised to the leader; losing them is not something Raft survives – a node that
//! forgets entries it acknowledged can undo a committed write – so damage there must be
//! *detected*, and the node rebuilt, never silently served from.
//!
//! * `disk-lose-unsynced`: SIGKILL, then cut the last segment to a random length between its
//!   synced length and its end (a power loss; a cut inside a record is a torn tail too), start it
//!   again when the fault ends. Raft must stay safe: the history's checkers judge.
//! * `disk-torn-tail`: SIGKILL, then append a prefix of a record after the last one (a write the
//!   crash tore), start it when the fault ends: the node must cut the torn tail, say so in its log
//!   ("truncating the torn tail of the WAL"), and serve.
//! * `disk-corrupt`: SIGKILL, then flip one byte inside a record that lies wholly below the
//!   watermark, and start it: it must refuse to start, naming the segment and the record's byte
//!   offset. When the fault ends the operator's repair runs: the node is removed from the Raft
//!   group, its data directory wiped, and it is started fresh and added back as a learner, then a
//!   voter (what `concord member rebuild` does; the peers accept its new incarnation because its
//!   id is no longer a voter).
//!
//! The byte surgery is planned here by pure functions over the files' bytes ([`plan`], using
//! concord-wal's own format functions) and carried out by the cluster's backend: on the host for
//! local processes; for containers, read with `docker cp` (which works on a stopped container)
//! and written by a throw-away container of the same image sharing the node's volume
//! (`--volumes-from`, busybox `dd` / `truncate`), as the uid the volume belongs to.

use super::admin::Admin;
use super::cluster::Cluster;
use super::report::CheckResult;
use anyhow::Context;
use concord_core::StorageOp;
use concord_wal::format::{self, RecordRead, SyncedSegment, SEGMENT_HEADER_BYTES};
use concord_wal::layout;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Which disk fault (the three `disk-*` nemeses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFault {
    LoseUnsynced,
    TornTail,
    Corrupt,
}

/// A node's WAL as read from its data directory: the watermark file and every segment, by number.
#[derive(Clone, Debug, Default)]
pub struct WalFiles {
    pub watermark: Option<Vec<u8>>,
    pub segments: BTreeMap<u64, Vec<u8>>,
}

impl WalFiles {
    /// Collect the WAL from `(name, bytes)` pairs of the `wal/` directory (other names ignored).
    pub fn from_files(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> WalFiles {
        let mut wal = WalFiles::default();
        for (name, bytes) in files {
            if name == layout::WATERMARK_FILE {
                wal.watermark = Some(bytes);
            } else if let Some(seq) = layout::parse_segment_name(&name) {
                wal.segments.insert(seq, bytes);
            }
        }
        wal
    }
}

/// One change to one file of `wal/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Cut the file to `len` bytes.
    Truncate { file: String, len: u64 },
    /// Overwrite (or extend) the file with `bytes` from `offset`.
    WriteAt { file: String, offset: u64, bytes: Vec<u8> },
}

/// What a fault will do, before it is done, and what the node must then show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Surgery {
    /// `None`: nothing to change (no unsynced bytes to lose).
    pub edit: Option<Edit>,
    /// In words, for the timeline: the file, the synced length, the bytes changed or dropped.
    pub what: String,
    pub expect: Expect,
}

/// What the node must do when it starts on the changed files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Start and serve; nothing in particular to see.
    Recover,
    /// Start, cutting a torn tail at `offset` of `file` (logged).
    TornTail { file: String, offset: u64 },
    /// Refuse to start with an error naming `file` and `offset`.
    Refuse { file: String, offset: u64 },
}

/// `n byte` or `n bytes`.
fn bytes(n: u64) -> String {
    format!("{n} byte{}", if n == 1 { "" } else { "s" })
}

/// The line concord-wal logs when it cuts a torn tail.
pub const TORN_TAIL_LOG: &str = "truncating the torn tail of the WAL";

fn segment_file(seq: u64) -> String {
    layout::segment_path(std::path::Path::new(layout::WAL_SUBDIR), seq).display().to_string()
}

/// The whole valid records of a segment, as `(offset, length)`, from the header on; where they
/// stop (the end of the file, or the first record that does not read).
fn records(bytes: &[u8]) -> (Vec<(u64, u64)>, u64) {
    let mut out = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES.min(bytes.len() as u64);
    while at < bytes.len() as u64 {
        match format::read_record(bytes, at) {
            RecordRead::Valid { bytes: n, .. } => {
                out.push((at, n));
                at += n;
            }
            RecordRead::Incomplete { .. } | RecordRead::Bad { .. } => break,
        }
    }
    (out, at)
}

/// The watermark's entries by segment. A WAL without a readable one cannot tell synced bytes
/// from unsynced ones, and neither can a nemesis: refused.
fn marks(wal: &WalFiles) -> anyhow::Result<BTreeMap<u64, SyncedSegment>> {
    let bytes = wal.watermark.as_ref().ok_or_else(|| {
        anyhow::anyhow!("no wal/{} file: which bytes were synced cannot be told", layout::WATERMARK_FILE)
    })?;
    let marks = format::decode_watermark(bytes).map_err(|e| {
        anyhow::anyhow!(
            "wal/{} unreadable ({e}): which bytes were synced cannot be told",
            layout::WATERMARK_FILE
        )
    })?;
    Ok(marks.into_iter().map(|m| (m.seq, m)).collect())
}

/// How many bytes of segment `seq` were synced, as far as recovery can tell: the watermark's
/// length. Without an entry, none: the last segment was then created by a roll and not synced
/// since (its header included), and an older one is a left-over that a checkpoint covers –
/// recovery deletes it unread, so damage there is no damage to the log.
fn synced_len(marks: &BTreeMap<u64, SyncedSegment>, seq: u64) -> u64 {
    marks.get(&seq).map_or(0, |m| m.synced_len)
}

/// Plan `fault` on `wal`, the random choices drawn from `pick`.
pub fn plan(fault: DiskFault, wal: &WalFiles, pick: u64) -> anyhow::Result<Surgery> {
    let mut rng = ChaCha8Rng::seed_from_u64(pick);
    let marks = marks(wal)?;
    let (&last, last_bytes) =
        wal.segments.iter().next_back().ok_or_else(|| anyhow::anyhow!("no WAL segment in wal/"))?;
    let file = segment_file(last);
    let len = last_bytes.len() as u64;
    match fault {
        DiskFault::LoseUnsynced => {
            let synced = synced_len(&marks, last);
            if synced > len {
                anyhow::bail!("{file} is {len} bytes but {synced} were synced: already damaged");
            }
            let cut = rng.gen_range(synced..=len);
            let dropped = len - cut;
            // Recovery cuts a torn tail where its first incomplete record starts.
            let whole_until = records(&last_bytes[..cut as usize]).1;
            let torn_at = if cut < SEGMENT_HEADER_BYTES { 0 } else { whole_until };
            if dropped == 0 {
                return Ok(Surgery {
                    edit: None,
                    what: format!(
                        "{file}: {len} bytes, all {synced} synced: nothing unsynced at the kill, 0 bytes dropped"
                    ),
                    expect: Expect::Recover,
                });
            }
            let (how, expect) = if cut >= SEGMENT_HEADER_BYTES && whole_until == cut {
                ("at a record boundary".to_string(), Expect::Recover)
            } else {
                (
                    format!("inside the record at byte {torn_at} (a torn tail)"),
                    Expect::TornTail { file: file.clone(), offset: torn_at },
                )
            };
            Ok(Surgery {
                edit: Some(Edit::Truncate { file: file.clone(), len: cut }),
                what: format!(
                    "{file}: {} of unsynced data dropped – cut from {len} to {cut} bytes ({synced} synced), {how}",
                    bytes(dropped)
                ),
                expect,
            })
        }
        DiskFault::TornTail => {
            // A prefix of a real record, never all of it: exactly what a write torn by the crash
            // leaves behind.
            let value: Vec<u8> = (0..rng.gen_range(16..200)).map(|_| rng.gen()).collect();
            let mut record = Vec::new();
            format::encode_record(&[StorageOp::Put { key: "chaos/torn".into(), value }], &mut record);
            let keep = rng.gen_range(1..record.len());
            record.truncate(keep);
            let (_, valid_end) = records(last_bytes);
            Ok(Surgery {
                edit: Some(Edit::WriteAt { file: file.clone(), offset: len, bytes: record }),
                what: format!("{file}: {} of a torn record appended at byte {len}", bytes(keep as u64)),
                expect: Expect::TornTail { file, offset: valid_end },
            })
        }
        DiskFault::Corrupt => {
            // Every record that lies wholly below its segment's synced length.
            let mut synced_records = Vec::new();
            for (&seq, bytes) in &wal.segments {
                let synced = synced_len(&marks, seq);
                let (recs, _) = records(bytes);
                synced_records.extend(recs.into_iter().filter(|&(at, n)| at + n <= synced).map(|r| (seq, r)));
            }
            if synced_records.is_empty() {
                anyhow::bail!("no synced record in the WAL to damage");
            }
            let (seq, (at, n)) = synced_records[rng.gen_range(0..synced_records.len())];
            let byte = at + rng.gen_range(0..n);
            let old = wal.segments[&seq][byte as usize];
            let new = old ^ rng.gen_range(1..=255u8);
            let file = segment_file(seq);
            Ok(Surgery {
                edit: Some(Edit::WriteAt { file: file.clone(), offset: byte, bytes: vec![new] }),
                what: format!(
                    "{file}: byte {byte} flipped ({old:#04x} -> {new:#04x}) inside the synced record at byte {at} ({n} bytes)"
                ),
                expect: Expect::Refuse { file, offset: at },
            })
        }
    }
}

/// `edit` applied to a file's bytes (what the backends do to the real file).
pub fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    match edit {
        Edit::Truncate { len, .. } => bytes.truncate(*len as usize),
        Edit::WriteAt { offset, bytes: new, .. } => {
            let end = *offset as usize + new.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[*offset as usize..end].copy_from_slice(new);
        }
    }
}

/// Whether the node's log since its start (`log`) shows what `expect` asks for; the line that
/// does, or what is missing.
pub fn judge(expect: &Expect, log: &str) -> Result<String, String> {
    let line_with = |needles: &[&str]| {
        log.lines().find(|l| needles.iter().all(|n| l.contains(n))).map(|l| l.trim().to_string())
    };
    match expect {
        Expect::Recover => Ok("started".into()),
        Expect::TornTail { file, offset } => line_with(&[TORN_TAIL_LOG, file, &format!("offset={offset}")])
            .ok_or_else(|| {
                format!("no `{TORN_TAIL_LOG}` line for {file} at offset {offset} in the node's log")
            }),
        Expect::Refuse { file, offset } => {
            line_with(&["corrupt WAL data in", file, &format!("at byte offset {offset}:")]).ok_or_else(|| {
                format!("no `corrupt WAL data in …{file} at byte offset {offset}` refusal in the node's log")
            })
        }
    }
}

/// How long a node may take to refuse a corrupt log, or to log a cut torn tail, after its start.
const START_WITHIN: Duration = Duration::from_secs(20);

/// The disk faults of a run: what each one planned and what the victim showed.
#[derive(Default)]
pub struct DiskFaults {
    /// By node (faults do not overlap): the fault and what the node must show.
    open: BTreeMap<usize, (DiskFault, Expect)>,
    /// Expectations the nodes did not meet (a torn tail not reported, corruption served from).
    pub failures: Vec<String>,
    /// How many disk faults were injected and judged.
    pub judged: usize,
}

impl DiskFaults {
    /// Kill `node`, damage its log as `fault` says (`pick` decides where). A corrupt log: start the
    /// node and see it refuse. What was done, and what the node showed (`observed`).
    pub fn inject(
        &mut self,
        cluster: &mut Cluster,
        fault: DiskFault,
        node: usize,
        pick: u64,
        observed: &mut Vec<String>,
    ) -> anyhow::Result<String> {
        cluster.kill(node)?;
        let wal = cluster.read_wal(node).with_context(|| format!("reading node {}'s WAL", node + 1))?;
        let surgery = plan(fault, &wal, pick).with_context(|| format!("node {}", node + 1))?;
        if let Some(edit) = &surgery.edit {
            cluster.edit_wal(node, edit).with_context(|| format!("changing node {}'s WAL", node + 1))?;
        }
        let what = format!("node {} killed; {}", node + 1, surgery.what);
        if fault == DiskFault::Corrupt {
            let before = cluster.log(node).len();
            cluster.restart(node)?;
            let exited = cluster.wait_exit(node, START_WITHIN)?;
            let log = cluster.log(node);
            let new = log.get(before..).unwrap_or(&log);
            self.judged += 1;
            match (exited, judge(&surgery.expect, new)) {
                (Some(how), Ok(line)) => observed.push(format!("refused to start ({how}): {line}")),
                (None, _) => {
                    let _ = cluster.kill(node);
                    self.fail(
                        observed,
                        format!("node {} STARTED on a corrupt log ({})", node + 1, surgery.what),
                    )
                }
                (Some(how), Err(missing)) => {
                    self.fail(observed, format!("node {} exited ({how}) but {missing}", node + 1))
                }
            }
        }
        self.open.insert(node, (fault, surgery.expect));
        Ok(what)
    }

    fn fail(&mut self, observed: &mut Vec<String>, failure: String) {
        observed.push(format!("FAILED: {failure}"));
        self.failures.push(failure);
    }

    /// End the disk fault of `node`: start the node (and see it cut a torn tail), or
    /// rebuild a node that refused its corrupt log – removed from the Raft group, its data
    /// directory wiped, started fresh, added back as a learner and promoted.
    pub fn end(
        &mut self,
        cluster: &mut Cluster,
        node: usize,
        admin: &mut Admin,
        runtime: &tokio::runtime::Runtime,
        observed: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let Some((fault, expect)) = self.open.remove(&node) else { return Ok(()) };
        if fault == DiskFault::Corrupt {
            let nodes = cluster.http();
            runtime.block_on(admin.remove(&nodes, node))?;
            cluster.wipe(node)?;
            cluster.restart(node)?;
            runtime.block_on(admin.add_back(&nodes, node))?;
            observed.push(format!(
                "rebuilt: node {} removed from the Raft group, its data directory wiped, started fresh, added back as a learner and promoted",
                node + 1
            ));
            return Ok(());
        }
        let before = cluster.log(node).len();
        cluster.restart(node)?;
        if let Expect::TornTail { .. } = expect {
            self.judged += 1;
            let deadline = Instant::now() + START_WITHIN;
            loop {
                let log = cluster.log(node);
                match judge(&expect, log.get(before..).unwrap_or(&log)) {
                    Ok(line) => {
                        observed.push(format!("torn tail cut: {line}"));
                        break;
                    }
                    Err(missing) if Instant::now() >= deadline => {
                        self.fail(observed, format!("node {}: {missing}", node + 1));
                        break;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        }
        Ok(())
    }

    /// The verdict on the nodes' behaviour, beside the history's checkers.
    pub fn check(&self) -> CheckResult {
        CheckResult {
            checker: "disk faults (a torn tail is cut and reported, a corrupt log is refused)",
            valid: Some(self.failures.is_empty()),
            summary: if self.failures.is_empty() {
                format!("{} disk faults, each met as it must be (timeline.json: `observed`)", self.judged)
            } else {
                format!(
                    "{} of {} disk faults were not met as they must be: {}",
                    self.failures.len(),
                    self.judged,
                    self.failures.join("; ")
                )
            },
            failing_key: None,
            failing_ops: vec![],
            details: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAL of `sealed` full segments and a last one with `records` records, of which the first
    /// `synced` were synced.
    fn wal(sealed: u64, records: usize, synced: usize) -> WalFiles {
        let segment = |seq: u64, n: usize| -> (Vec<u8>, Vec<u64>) {
            let mut bytes = format::segment_header(seq).to_vec();
            let mut ends = vec![bytes.len() as u64];
            for i in 0..n {
                let op =
                    StorageOp::Put { key: format!("raft/log/{seq}-{i}"), value: vec![i as u8; 10 + i * 7] };
                format::encode_record(&[op], &mut bytes);
                ends.push(bytes.len() as u64);
            }
            (bytes, ends)
        };
        let mut files = WalFiles::default();
        let mut marks = Vec::new();
        for seq in 1..=sealed {
            let (bytes, _) = segment(seq, 5);
            marks.push(SyncedSegment { seq, synced_len: bytes.len() as u64, sealed: true });
            files.segments.insert(seq, bytes);
        }
        let (bytes, ends) = segment(sealed + 1, records);
        marks.push(SyncedSegment { seq: sealed + 1, synced_len: ends[synced], sealed: false });
        files.segments.insert(sealed + 1, bytes);
        files.watermark = Some(format::encode_watermark(&marks));
        files
    }

    /// The segment number of a `wal/<seq>.log` path.
    fn seq_of(file: &str) -> u64 {
        layout::parse_segment_name(file.strip_prefix("wal/").unwrap()).unwrap()
    }

    fn applied(wal: &WalFiles, s: &Surgery) -> WalFiles {
        let mut out = wal.clone();
        if let Some(edit) = &s.edit {
            let file = match edit {
                Edit::Truncate { file, .. } | Edit::WriteAt { file, .. } => file,
            };
            let seq = seq_of(file);
            apply(out.segments.get_mut(&seq).unwrap(), edit);
        }
        out
    }

    /// The synced prefix of every segment, as the watermark says.
    fn synced_prefixes(wal: &WalFiles) -> Vec<Vec<u8>> {
        let marks = marks(wal).unwrap();
        wal.segments.iter().map(|(seq, b)| b[..marks[seq].synced_len as usize].to_vec()).collect()
    }

    #[test]
    fn losing_unsynced_bytes_never_touches_a_synced_one() {
        let mut dropped_some = false;
        for pick in 0..300 {
            let w = wal(pick % 3, 8, (pick % 9) as usize);
            let s = plan(DiskFault::LoseUnsynced, &w, pick).unwrap();
            let after = applied(&w, &s);
            assert_eq!(synced_prefixes(&after), synced_prefixes(&w), "pick {pick}: {s:?}");
            let last = *w.segments.keys().last().unwrap();
            assert!(after.segments[&last].len() <= w.segments[&last].len());
            match &s.edit {
                Some(Edit::Truncate { len, .. }) => {
                    dropped_some = true;
                    assert!(s.what.contains(&format!(
                        "{} of unsynced data dropped",
                        bytes(w.segments[&last].len() as u64 - len)
                    )));
                }
                None => assert!(s.what.contains("0 bytes dropped"), "{}", s.what),
                other => panic!("{other:?}"),
            }
            // A cut inside a record is announced as a torn tail where that record starts.
            let cut = &after.segments[&last];
            match s.expect {
                Expect::TornTail { offset, .. } => {
                    assert_eq!(records(cut).1, offset);
                    assert!(matches!(format::read_record(cut, offset), RecordRead::Incomplete { .. }));
                }
                Expect::Recover => assert_eq!(records(cut).1, cut.len() as u64, "whole records"),
                Expect::Refuse { .. } => panic!("{s:?}"),
            }
        }
        assert!(dropped_some);
        // Everything synced: nothing to lose.
        let full = wal(1, 4, 4);
        let s = plan(DiskFault::LoseUnsynced, &full, 9).unwrap();
        assert_eq!((s.edit, s.expect), (None, Expect::Recover));
    }

    #[test]
    fn a_torn_tail_is_a_partial_record_after_the_last_one() {
        for pick in 0..100 {
            let w = wal(1, 6, 3);
            let s = plan(DiskFault::TornTail, &w, pick).unwrap();
            let after = applied(&w, &s);
            assert_eq!(synced_prefixes(&after), synced_prefixes(&w));
            let last = after.segments.values().last().unwrap();
            let old_len = w.segments.values().last().unwrap().len() as u64;
            assert!(last.len() as u64 > old_len);
            assert_eq!(records(last).1, old_len, "every old record still reads");
            assert!(matches!(format::read_record(last, old_len), RecordRead::Incomplete { .. }));
            assert_eq!(s.expect, Expect::TornTail { file: segment_file(2), offset: old_len });
        }
    }

    #[test]
    fn corruption_lands_inside_a_synced_record_and_names_its_offset() {
        for pick in 0..200 {
            let w = wal(pick % 2, 6, 1 + (pick % 5) as usize);
            let s = plan(DiskFault::Corrupt, &w, pick).unwrap();
            let Expect::Refuse { file, offset } = &s.expect else { panic!("{s:?}") };
            let seq = seq_of(file);
            let marks = marks(&w).unwrap();
            let Some(Edit::WriteAt { offset: byte, bytes, .. }) = &s.edit else { panic!("{s:?}") };
            assert_eq!(bytes.len(), 1);
            assert!(*byte >= *offset && *byte < marks[&seq].synced_len, "{s:?}");
            let after = applied(&w, &s);
            assert!(!matches!(format::read_record(&after.segments[&seq], *offset), RecordRead::Valid { .. }));
        }
        assert!(plan(DiskFault::Corrupt, &wal(0, 3, 0), 1)
            .unwrap_err()
            .to_string()
            .contains("no synced record"));
    }

    #[test]
    fn a_left_over_segment_without_a_watermark_entry_is_never_the_one_corrupted() {
        let mut w = wal(0, 4, 4);
        // Segment 1 is live (in the watermark); an older left-over 0 is not.
        w.segments.insert(0, w.segments[&1].clone());
        for pick in 0..50 {
            let s = plan(DiskFault::Corrupt, &w, pick).unwrap();
            assert!(matches!(&s.expect, Expect::Refuse { file, .. } if seq_of(file) == 1), "{s:?}");
        }
    }

    #[test]
    fn without_a_watermark_nothing_is_cut() {
        let mut w = wal(0, 3, 1);
        w.watermark = None;
        assert!(plan(DiskFault::LoseUnsynced, &w, 1).unwrap_err().to_string().contains("cannot be told"));
        w.watermark = Some(b"CNCDMARKgarbage".to_vec());
        assert!(plan(DiskFault::Corrupt, &w, 1).unwrap_err().to_string().contains("unreadable"));
    }

    #[test]
    fn the_log_is_judged_by_the_line_recovery_writes() {
        let torn = Expect::TornTail { file: "wal/00000000000000000002.log".into(), offset: 812 };
        let line = "WARN concord_wal::recovery: truncating the torn tail of the WAL (writes that were never synced) segment=/data/wal/00000000000000000002.log offset=812 bytes_dropped=40";
        assert!(judge(&torn, line).is_ok());
        assert!(judge(&torn, &line.replace("offset=812", "offset=813")).is_err());
        let refuse = Expect::Refuse { file: "wal/00000000000000000001.log".into(), offset: 24 };
        let err = "Error: corrupt WAL data in /data/wal/00000000000000000001.log at byte offset 24: checksum mismatch";
        assert!(judge(&refuse, err).is_ok());
        assert!(judge(&refuse, "started").is_err());
    }
}
