//! The `siblings` workload for `--mode eventual`, its checks, and the PBS comparison.
//!
//! The eventual mode is Dynamo-style: not linearizable by design (concurrent writes become
//! siblings, a read may miss the latest write), so the register checker does not apply. What the
//! mode promises, this workload tests ([`concord_check::siblings`]):
//!
//! * every client operation is a **read** (`GET /v1/kv/{key}?r=R`: the sibling set and its causal
//!   context, header `x-concord-context`) or a **read then write**: the read, then `PUT` of a value
//!   unique in the run (the op's number) with the read's context – the write supersedes exactly
//!   what the read returned and is a sibling of everything else. A write is *acknowledged* on 200,
//!   *never sent* when no connection opened or the node refused it as bad input (400), and
//!   *unknown* otherwise (a 503 or 500 may come after some replica stored it: Dynamo does not
//!   roll back a write that missed its W);
//! * after the faults heal, [`converge`] reads every key through every node with `r = N` (every
//!   replica answers) until two rounds in a row agree, for up to 60 s;
//! * **no acknowledged write lost** and **convergence**: [`concord_check::siblings::check`];
//! * **t-visibility**: [`concord_check::siblings::t_visibility`] on the run's reads, binned, next
//!   to the WARS model's prediction for the same N/R/W ([`prediction`]).
//!
//! The keys are windowed as the register workload's are (`--keys` at a time, `--ops-per-key` each),
//! so sibling sets stay small.

use super::workload::Recorder;
use concord_check::siblings::{self, NodeSets, SiblingRead, SiblingWrite, WriteOutcome};
use concord_core::history::{EventType, Op, Value};
use concord_lab::eventual::pbs::wilson;
use concord_lab::eventual::wars::{LatencyModel, Mixture, Quorum, Thresholds};
use concord_server::client::{http, http_with_headers, path_segment, HttpAnswer};
use plotters::coord::Shift;
use plotters::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The workload's shape.
#[derive(Clone, Copy, Debug)]
pub struct Siblings {
    pub keys: u64,
    pub ops_per_key: u64,
    pub timeout: Duration,
    /// Replies a read waits for.
    pub r: usize,
    /// Acknowledgements a write waits for.
    pub w: usize,
}

/// The writes and reads, beside the history (which gets them too, for `history.jsonl`).
#[derive(Default)]
pub struct Record {
    pub writes: Mutex<Vec<SiblingWrite>>,
    pub reads: Mutex<Vec<SiblingRead>>,
}

/// A read's answer: the sibling set and the context to write with.
#[derive(Debug, PartialEq)]
pub struct ReadAnswer {
    pub values: BTreeSet<i64>,
    pub context: String,
}

/// How a read's answer reads: 200 one value, 300 siblings, 404 none (the context in the header in
/// every case); anything else is no answer.
pub fn read_answer(answer: &HttpAnswer) -> Option<ReadAnswer> {
    let context = answer.header("x-concord-context").unwrap_or("").to_string();
    let values = match answer.status {
        200 => BTreeSet::from([answer.text().trim().parse::<i64>().ok()?]),
        300 => {
            let json = answer.json().ok()?;
            let mut set = BTreeSet::new();
            for s in json["siblings"].as_array()? {
                set.insert(s.as_str()?.trim().parse::<i64>().ok()?);
            }
            set
        }
        404 => BTreeSet::new(),
        _ => return None,
    };
    Some(ReadAnswer { values, context })
}

/// How a write's answer reads (see the module docs).
pub fn write_outcome(answer: &Result<HttpAnswer, String>) -> WriteOutcome {
    match answer {
        Ok(a) if a.status == 200 => WriteOutcome::Acknowledged,
        Ok(a) if a.status == 400 => WriteOutcome::NotSent,
        Err(e) if e.starts_with("connect ") => WriteOutcome::NotSent,
        _ => WriteOutcome::Unknown,
    }
}

async fn read(addr: SocketAddr, key: &str, r: usize, timeout: Duration) -> Option<ReadAnswer> {
    let answer = http(addr, "GET", &format!("/v1/kv/{}?r={r}", path_segment(key)), b"", timeout).await;
    answer.ok().as_ref().and_then(read_answer)
}

fn nanos(rec: &Recorder) -> u64 {
    rec.start.elapsed().as_nanos() as u64
}

/// One recorded read: into the history and (if it succeeded) the record.
async fn recorded_read(
    addr: SocketAddr,
    key: &str,
    r: usize,
    timeout: Duration,
    process: u64,
    rec: &Recorder,
    record: &Record,
) -> Option<ReadAnswer> {
    let op = Op::read(key.to_string());
    rec.record(process, EventType::Invoke, op.clone());
    let invoke_ns = nanos(rec);
    let answer = read(addr, key, r, timeout).await;
    match &answer {
        Some(a) => {
            let value = Value::List(a.values.iter().map(|&v| Value::Int(v)).collect());
            rec.record(process, EventType::Ok, Op { value, ..op });
            record.reads.lock().unwrap().push(SiblingRead {
                key: key.to_string(),
                values: a.values.clone(),
                invoke_ns,
                complete_ns: nanos(rec),
            });
        }
        None => rec.record(process, EventType::Fail, op),
    }
    answer
}

/// One client: reads, and reads followed by writes, through its node (another after a failure).
pub async fn client(
    c: usize,
    nodes: Vec<SocketAddr>,
    workload: Siblings,
    seed: u64,
    rec: Arc<Recorder>,
    record: Arc<Record>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(c as u64));
    let mut process = rec.process();
    let mut node = c % nodes.len();
    let window = workload.keys * workload.ops_per_key;
    while !stop.load(Ordering::SeqCst) {
        let n = rec.next_op();
        let key = format!("s{}", (n / window.max(1)) * workload.keys + rng.gen::<u64>() % workload.keys);
        let addr = nodes[node];
        let Some(seen) =
            recorded_read(addr, &key, workload.r, workload.timeout, process, &rec, &record).await
        else {
            node = (node + 1) % nodes.len();
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if rng.gen_bool(0.5) {
            continue;
        }
        let value = n as i64; // unique in the run: the op's number
        let op = Op::write(key.clone(), value);
        rec.record(process, EventType::Invoke, op.clone());
        let invoke_ns = nanos(&rec);
        let path = format!("/v1/kv/{}?w={}", path_segment(&key), workload.w);
        let headers = [("x-concord-context", seen.context.as_str())];
        let answer =
            http_with_headers(addr, "PUT", &path, &headers, value.to_string().as_bytes(), workload.timeout)
                .await;
        let outcome = write_outcome(&answer);
        record.writes.lock().unwrap().push(SiblingWrite {
            key,
            value,
            outcome,
            supersedes: seen.values.into_iter().collect(),
            invoke_ns,
            complete_ns: nanos(&rec),
        });
        match outcome {
            WriteOutcome::Acknowledged => rec.record(process, EventType::Ok, op),
            WriteOutcome::NotSent => {
                rec.record(process, EventType::Fail, op);
                node = (node + 1) % nodes.len();
            }
            WriteOutcome::Unknown => {
                rec.record(process, EventType::Info, op);
                process = rec.process();
                node = (node + 1) % nodes.len();
            }
        }
    }
}

/// After healing: every key through every node with `r = n` (every replica answers), round after
/// round, until two rounds in a row agree across nodes and with each other, or `within` passes.
/// Returns the last round (a node's missing answers: keys it never read, reported as `missing`).
pub async fn converge(
    nodes: &[SocketAddr],
    keys: &[String],
    n: usize,
    within: Duration,
) -> (Vec<NodeSets>, Vec<String>, u32) {
    let deadline = Instant::now() + within;
    let mut previous: Option<Vec<NodeSets>> = None;
    let mut rounds = 0;
    loop {
        rounds += 1;
        let mut round = Vec::new();
        let mut missing = Vec::new();
        for (i, &addr) in nodes.iter().enumerate() {
            let mut sets = NodeSets::new();
            for key in keys {
                match read(addr, key, n, Duration::from_secs(5)).await {
                    Some(a) => {
                        if !a.values.is_empty() {
                            sets.insert(key.clone(), a.values);
                        }
                    }
                    None => missing.push(format!("node {}: {key}", i + 1)),
                }
            }
            round.push(sets);
        }
        let agree = missing.is_empty() && round.iter().all(|s| *s == round[0]);
        if (agree && previous.as_ref() == Some(&round)) || Instant::now() >= deadline {
            return (round, missing, rounds);
        }
        previous = agree.then_some(round);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// N, R and W as a node reports them (`GET /v1/cluster`).
pub async fn quorum(nodes: &[SocketAddr]) -> anyhow::Result<Quorum> {
    for &addr in nodes {
        if let Ok(a) = http(addr, "GET", "/v1/cluster", b"", Duration::from_secs(3)).await {
            if let Ok(v) = a.json() {
                let get = |f: &str| v[f].as_u64().map(|x| x as usize);
                if let (Some(n), Some(r), Some(w)) = (get("n"), get("r"), get("w")) {
                    return Ok(Quorum::new(n, r, w));
                }
            }
        }
    }
    anyhow::bail!("no node told its N/R/W (GET /v1/cluster)")
}

/// One bin of the measured curve beside the model.
#[derive(Clone, Debug, Serialize)]
pub struct VisibilityBin {
    pub from_ms: f64,
    pub to_ms: f64,
    pub reads: usize,
    pub fresh: usize,
    pub p: f64,
    pub p_low: f64,
    pub p_high: f64,
    /// The model's P(consistent) averaged over this bin's reads, each at its own t.
    pub model_p: f64,
}

/// The PBS comparison of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Staleness {
    pub quorum: Quorum,
    /// Reads measured (after a non-overlapping acknowledged write of their key).
    pub reads: usize,
    pub fresh: usize,
    /// The median latency of the run's acknowledged writes (ms), which the model is fitted to.
    pub write_median_ms: f64,
    /// The fitted model: W = A = R = S exponential with this mean (ms).
    pub model_mean_ms: f64,
    pub bins: Vec<VisibilityBin>,
}

/// The lab's WARS prediction for this quorum, with a latency model fitted to the run: one
/// exponential for W, A, R and S (the paper's EXP 1:1 shape), its mean chosen so that the model's
/// median commit time (the W-th fastest W + A) equals the median latency of the run's acknowledged
/// writes. One parameter, from the client's view only – a crude fit, said so in the report.
pub fn prediction(quorum: Quorum, write_median_ms: f64, seed: u64) -> (f64, Thresholds) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let unit = Mixture::exponential(1.0);
    let mut commits: Vec<f64> = (0..20_000)
        .map(|_| {
            let mut wa: Vec<f64> =
                (0..quorum.n).map(|_| unit.sample(&mut rng) + unit.sample(&mut rng)).collect();
            wa.sort_by(f64::total_cmp);
            wa[quorum.w.clamp(1, quorum.n) - 1]
        })
        .collect();
    commits.sort_by(f64::total_cmp);
    let unit_median = commits[commits.len() / 2];
    let mean = (write_median_ms / unit_median).max(1e-3);
    let model = LatencyModel {
        name: "fitted",
        what: "exponential W = A = R = S fitted to the run's median write latency",
        w: Mixture::exponential(mean),
        ars: Mixture::exponential(mean),
        remote_extra_ms: 0.0,
    };
    (mean, Thresholds::run(&model, quorum, 200_000, &mut rng))
}

/// Measure t-visibility on the run and bin it (20 bins up to four median write latencies, at least
/// 20 ms) beside the fitted model.
pub fn staleness(record: &Record, quorum: Quorum, seed: u64) -> Staleness {
    let writes = record.writes.lock().unwrap();
    let reads = record.reads.lock().unwrap();
    let mut lat: Vec<f64> = writes
        .iter()
        .filter(|w| w.outcome == WriteOutcome::Acknowledged)
        .map(|w| (w.complete_ns - w.invoke_ns) as f64 / 1e6)
        .collect();
    lat.sort_by(f64::total_cmp);
    let write_median_ms = lat.get(lat.len() / 2).copied().unwrap_or(1.0);
    let (model_mean_ms, th) = prediction(quorum, write_median_ms, seed);
    let points = siblings::t_visibility(&writes, &reads);
    let horizon = (4.0f64 * write_median_ms).max(20.0);
    let width = horizon / 20.0;
    let mut sums = vec![(0usize, 0usize, 0.0f64); 20];
    for &(t, fresh) in &points {
        if let Some(b) = sums.get_mut((t / width) as usize) {
            b.0 += 1;
            b.1 += usize::from(fresh);
            b.2 += th.p_consistent(t);
        }
    }
    let bins = sums
        .iter()
        .enumerate()
        .map(|(i, &(n, k, sp))| {
            let (p_low, p_high) = wilson(k, n);
            let nf = n.max(1) as f64;
            VisibilityBin {
                from_ms: i as f64 * width,
                to_ms: (i + 1) as f64 * width,
                reads: n,
                fresh: k,
                p: if n == 0 { f64::NAN } else { k as f64 / nf },
                p_low,
                p_high,
                model_p: if n == 0 { f64::NAN } else { sp / nf },
            }
        })
        .collect();
    Staleness {
        quorum,
        reads: points.len(),
        fresh: points.iter().filter(|p| p.1).count(),
        write_median_ms,
        model_mean_ms,
        bins,
    }
}

/// The measured curve (points with 95 % intervals, bins of at least 5 reads) and the model's,
/// as `<stem>.svg` and `.png`.
pub fn plot(stem: &Path, s: &Staleness) -> anyhow::Result<()> {
    let size = (900, 500);
    draw(SVGBackend::new(&stem.with_extension("svg"), size).into_drawing_area(), s)?;
    draw(BitMapBackend::new(&stem.with_extension("png"), size).into_drawing_area(), s)?;
    Ok(())
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, s: &Staleness) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("plotting: {e}");
    root.fill(&WHITE).map_err(err)?;
    let x1 = s.bins.last().map(|b| b.to_ms).unwrap_or(20.0);
    let y0 = s.bins.iter().filter(|b| b.reads >= 5).map(|b| b.p_low).fold(0.9, f64::min).max(0.0) - 0.02;
    let mut ctx = ChartBuilder::on(&root)
        .caption(
            format!(
                "t-visibility, {}: measured ({} reads) vs WARS, exponential mean {:.2} ms",
                s.quorum.label(),
                s.reads,
                s.model_mean_ms
            ),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..x1, y0.max(0.0)..1.005)
        .map_err(err)?;
    ctx.configure_mesh()
        .x_desc("ms since the write's acknowledgement")
        .y_desc("P(read returns it)")
        .draw()
        .map_err(err)?;
    let model_color = RGBColor(31, 119, 180);
    let real_color = RGBColor(214, 39, 40);
    let drawn: Vec<_> = s.bins.iter().filter(|b| b.reads >= 5).collect();
    ctx.draw_series(LineSeries::new(
        drawn.iter().map(|b| ((b.from_ms + b.to_ms) / 2.0, b.model_p)),
        model_color.stroke_width(2),
    ))
    .map_err(err)?
    .label("WARS model (fitted)")
    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], model_color.stroke_width(2)));
    ctx.draw_series(drawn.iter().map(|b| {
        let x = (b.from_ms + b.to_ms) / 2.0;
        PathElement::new(vec![(x, b.p_low), (x, b.p_high)], real_color.stroke_width(1))
    }))
    .map_err(err)?;
    ctx.draw_series(
        drawn.iter().map(|b| Circle::new(((b.from_ms + b.to_ms) / 2.0, b.p), 4, real_color.filled())),
    )
    .map_err(err)?
    .label("measured (95 % interval)")
    .legend(move |(x, y)| Circle::new((x + 10, y), 4, real_color.filled()));
    ctx.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK).draw().map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, context: &str, body: &str) -> HttpAnswer {
        HttpAnswer {
            status,
            headers: vec![("x-concord-context".into(), context.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn answers_read_as_sibling_sets_and_outcomes() {
        let one = read_answer(&answer(200, "1:2", "17")).unwrap();
        assert_eq!((one.values, one.context.as_str()), (BTreeSet::from([17]), "1:2"));
        let many = read_answer(&answer(300, "1:2,3:1", r#"{"siblings": ["4", "9"], "context": "1:2,3:1"}"#));
        assert_eq!(many.unwrap().values, BTreeSet::from([4, 9]));
        assert_eq!(read_answer(&answer(404, "", "{}")).unwrap().values, BTreeSet::new());
        assert_eq!(read_answer(&answer(503, "", "{}")), None);
        assert_eq!(write_outcome(&Ok(answer(200, "", ""))), WriteOutcome::Acknowledged);
        assert_eq!(write_outcome(&Ok(answer(503, "", ""))), WriteOutcome::Unknown);
        assert_eq!(write_outcome(&Err("connect 127.0.0.1:1: refused".into())), WriteOutcome::NotSent);
        assert_eq!(write_outcome(&Err("PUT /v1/kv/a on x: timed out".into())), WriteOutcome::Unknown);
    }

    #[test]
    fn the_fitted_model_predicts_certainty_for_strict_quorums_and_less_for_partial_ones() {
        let (mean, strict) = prediction(Quorum::new(3, 2, 2), 4.0, 1);
        assert!(mean > 0.5 && mean < 4.0, "{mean}");
        assert_eq!(strict.p_consistent(0.0), 1.0, "R + W > N: every read meets the write quorum");
        let (_, partial) = prediction(Quorum::new(3, 1, 1), 4.0, 1);
        let (p0, p_late) = (partial.p_consistent(0.0), partial.p_consistent(50.0));
        assert!(p0 < 0.95 && p_late > 0.999, "{p0} {p_late}");
    }
}
