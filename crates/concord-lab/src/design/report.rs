//! The verdicts and the report: every requirement met or missed, the measured number beside the
//! target; the text `concord design` prints; `index.html`, `report.json`, plots (SVG and PNG) and
//! the scenario file of every simulation.

use super::plan::{self, fmt_availability, Design, KindDesign, Protocol};
use super::requirements::{Consistency, Requirements};
use super::validate::{self, Fault, Run, SERVED_TO_SURVIVE};
use super::{Check, DesignReport, Status};
use crate::plot::{self, CdfChart, LineStyle, Marker, StyledSeries, XyChart};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const SECONDS_PER_YEAR: f64 = 365.25 * 86_400.0;

fn run_of<'a>(runs: &'a [Run], kind: &str, fault: &Fault) -> Option<&'a Run> {
    runs.iter().find(|r| r.kind == kind && r.fault == *fault)
}

fn ms(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1} ms")
    } else {
        "–".into()
    }
}

/// Judge every requirement.
pub fn judge(req: &Requirements, design: &Design, runs: &[Run], validated: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    let status = |ok: bool| if ok { Status::Met } else { Status::Missed };
    // Capacity (arithmetic only: the simulator has no CPU model).
    let cap_ok = design.nodes >= design.nodes_needed;
    checks.push(Check {
        requirement: "capacity: nodes for the load, with room to lose the failure domain".into(),
        target: format!("≥ {} nodes", design.nodes_needed),
        estimate: format!("{} nodes", design.nodes),
        measured: "– (arithmetic; the simulator models no CPU)".into(),
        status: status(cap_ok),
        why: if cap_ok {
            String::new()
        } else {
            format!(
                "{} nodes carry less than the replica operations need once a {} is lost",
                design.nodes,
                req.availability.survive.name()
            )
        },
        fix: if cap_ok { String::new() } else { format!("run at least {} nodes", design.nodes_needed) },
    });
    for (k, kd) in req.kinds.iter().zip(&design.kinds) {
        let base = run_of(runs, &kd.name, &Fault::None);
        // Latency: the simulator's clients stand next to the node they talk to; for Raft the
        // hop to the leader's region is added from the designer's arithmetic.
        // The simulator's clients stand next to the node they talk to. What is missing there is
        // the hop from a client's region to that node: to the nearest replica (reads; Dynamo
        // writes – a Raft follower's own trip to the leader *is* simulated), to the leader (Raft
        // writes, which are redirected to it). Added from the arithmetic.
        let local = plan::JITTER * req.network.local_rtt_ms;
        let near_hop = (kd.near_hop_p99_ms - local).max(0.0);
        let write_hop = match kd.protocol {
            Protocol::Raft { .. } => (kd.client_hop_p99_ms - local).max(0.0),
            Protocol::Dynamo { .. } => near_hop,
        };
        for (what, target, estimate, measured, extra_hop) in [
            ("read", kd.read_target_ms, kd.read_p99_ms, base.map(|b| b.read_p99_ms), near_hop),
            ("write", kd.write_target_ms, kd.write_p99_ms, base.map(|b| b.write_p99_ms), write_hop),
        ] {
            let total = measured.map(|m| m + extra_hop);
            let judged = total.filter(|t| t.is_finite()).unwrap_or(estimate);
            let ok = judged <= target;
            let measured_text = match total {
                Some(t) if extra_hop > 0.0 => {
                    format!(
                        "{} = {} simulated + {} client hop from a region without that node (arithmetic)",
                        ms(t),
                        ms(t - extra_hop),
                        ms(extra_hop)
                    )
                }
                Some(t) => ms(t),
                None => "–".into(),
            };
            checks.push(Check {
                requirement: format!("{}: {what} p99", kd.name),
                target: format!("≤ {target} ms"),
                estimate: ms(estimate),
                measured: measured_text,
                status: status(ok),
                why: if ok {
                    String::new()
                } else {
                    format!("{what}s take {} against {target} ms", ms(judged))
                },
                fix: if ok {
                    String::new()
                } else {
                    plan::latency_fix(req, k, kd.protocol, &kd.placement, what == "read", what == "write")
                },
            });
        }
        // Failures: measured served fraction once failover had time.
        for s in &kd.survival {
            let fault = match s.failure.as_str() {
                "node" => Fault::Node,
                "zone" => Fault::Zone,
                "region" => Fault::Region,
                _ => Fault::Partition,
            };
            let run = run_of(runs, &kd.name, &fault);
            let measured = run.map(|r| r.served_after_failover);
            let survived = measured.map_or(s.survives, |m| m >= SERVED_TO_SURVIVE);
            let st = if !s.required { Status::Info } else { status(survived) };
            let measured_text = match run {
                Some(r) => format!(
                    "{:.1} % served after failover ({}; back {})",
                    100.0 * r.served_after_failover,
                    r.target,
                    r.recovery_ms.map_or("never".into(), |t| format!("after {t:.0} ms"))
                ),
                None => "–".into(),
            };
            checks.push(Check {
                requirement: format!(
                    "{}: survive losing a {}{}",
                    kd.name,
                    if s.failure == "partition" { "region's links (partition)" } else { &s.failure },
                    if s.required { "" } else { " (not required)" }
                ),
                target: format!("≥ {:.0} % of requests served", 100.0 * SERVED_TO_SURVIVE),
                estimate: format!(
                    "{} ({}: {} of {} replicas lost)",
                    if s.survives { "survives" } else { "no quorum" },
                    s.worst,
                    s.replicas_lost,
                    kd.replicas()
                ),
                measured: measured_text,
                status: st,
                why: if survived {
                    String::new()
                } else {
                    format!(
                        "{} takes {} of the {} replicas; {} must stay reachable",
                        s.worst,
                        s.replicas_lost,
                        kd.replicas(),
                        match kd.protocol {
                            Protocol::Raft { .. } => format!("a majority ({})", kd.replicas() / 2 + 1),
                            Protocol::Dynamo { r, w } => format!("max(R, W) = {}", r.max(w)),
                        }
                    )
                },
                fix: if survived {
                    String::new()
                } else {
                    format!(
                        "spread the replicas so that no {} holds more than a minority (at least 3 {}s), or add replicas",
                        s.failure.replace("partition", "region"),
                        s.failure.replace("partition", "region")
                    )
                },
            });
        }
        // Availability: the arithmetic, with the failover time measured where there is one.
        let node_run = run_of(runs, &kd.name, &Fault::Node);
        let (avail, how) = match (kd.protocol, node_run.and_then(|r| r.recovery_ms)) {
            (Protocol::Raft { .. }, Some(rec)) => (
                kd.p_quorum - req.failures.node_failures_per_year * rec / 1e3 / SECONDS_PER_YEAR,
                format!("P(quorum) with the measured failover of {rec:.0} ms"),
            ),
            _ => (kd.availability, "arithmetic".to_string()),
        };
        let ok = avail >= req.availability.target;
        checks.push(Check {
            requirement: format!("{}: availability", kd.name),
            target: fmt_availability(req.availability.target),
            estimate: fmt_availability(kd.availability),
            measured: format!("{} ({how})", fmt_availability(avail)),
            status: status(ok),
            why: if ok {
                String::new()
            } else {
                format!(
                    "P(at least {} of {} replicas reachable) is too low with the given failure rates",
                    match kd.protocol {
                        Protocol::Raft { .. } => kd.replicas() / 2 + 1,
                        Protocol::Dynamo { r, w } => r.max(w) as usize,
                    },
                    kd.replicas()
                )
            },
            fix: if ok {
                String::new()
            } else {
                "more replicas across more independent zones/regions (5 replicas survive two failures), or lower the quorum the requests need".into()
            },
        });
        // Durability (arithmetic).
        checks.push(Check {
            requirement: format!("{}: durability", kd.name),
            target: format!(
                "≥ {} copies; acknowledged writes outlive losing {} region(s)",
                req.durability.copies, req.durability.regions_lost
            ),
            estimate: format!(
                "{} copies; a write is acknowledged by {}",
                kd.replicas(),
                match kd.protocol {
                    Protocol::Raft { .. } => format!("a majority ({})", kd.replicas() / 2 + 1),
                    Protocol::Dynamo { w, .. } => format!("W = {w}"),
                }
            ),
            measured: "– (arithmetic)".into(),
            status: status(kd.durable),
            why: if kd.durable {
                String::new()
            } else {
                "the replicas that acknowledge a write can all sit in the region(s) that may be lost".into()
            },
            fix: if kd.durable {
                String::new()
            } else {
                "acknowledge only after a copy reached another region (a larger W, or a majority spread over regions)".into()
            },
        });
        // Consistency, by the checkers.
        let kind_runs: Vec<&Run> = runs.iter().filter(|r| r.kind == kd.name).collect();
        let consistency = match k.consistency {
            Consistency::Linearizable => {
                let bad: Vec<String> = kind_runs
                    .iter()
                    .filter(|r| r.linearizable != "linearizable")
                    .map(|r| format!("{}: {}", r.fault.name(), r.linearizable))
                    .collect();
                let measured = if kind_runs.is_empty() {
                    "–".into()
                } else if bad.is_empty() {
                    format!("all {} runs linearizable (concord-check)", kind_runs.len())
                } else {
                    bad.join("; ")
                };
                (bad.is_empty(), "Raft: linearizable by construction".to_string(), measured, "a bug in the protocol or the checker's time ran out: replay the scenario file with `concord sim`".to_string())
            }
            Consistency::ReadYourWrites => {
                let v: usize = kind_runs.iter().filter_map(|r| r.ryw_violations).sum();
                let measured = if kind_runs.is_empty() {
                    "–".into()
                } else {
                    format!(
                        "{v} read-your-writes violations in {} runs (concord-check guarantees)",
                        kind_runs.len()
                    )
                };
                let strict = match kd.protocol {
                    Protocol::Dynamo { r, w } => (r + w) as usize > kd.replicas(),
                    Protocol::Raft { .. } => true,
                };
                let estimate = if strict {
                    "R + W > N: every read quorum meets the session's write quorum".to_string()
                } else {
                    "R + W ≤ N: a read may miss the session's own write".to_string()
                };
                (v == 0 && strict, estimate, measured, "make R + W > N".into())
            }
            Consistency::Eventual => {
                let (n, ok) = base.and_then(|b| b.reads_past_bound).unwrap_or((0, 0));
                let frac = if n == 0 { f64::NAN } else { ok as f64 / n as f64 };
                let measured = if base.is_none() {
                    "–".into()
                } else if n == 0 {
                    "no read came that long after a write".into()
                } else {
                    format!(
                        "{ok} of {n} reads ≥ {} ms after the write consistent ({:.4}){}",
                        k.staleness_ms.unwrap_or(0.0),
                        frac,
                        if n < 3000 { "; < 3000 reads cannot resolve 99.9 %" } else { "" }
                    )
                };
                let model_ok = kd.pbs_p_at_bound.unwrap_or(0.0) >= k.staleness_p;
                let ok = if n == 0 { model_ok } else { frac >= k.staleness_p && model_ok };
                (
                    ok,
                    format!(
                        "PBS P(consistent at {} ms) = {:.5}",
                        k.staleness_ms.unwrap_or(0.0),
                        kd.pbs_p_at_bound.unwrap_or(f64::NAN)
                    ),
                    measured,
                    "raise R or W (R + W > N makes every read see the latest acknowledged write)".into(),
                )
            }
        };
        let target = match k.consistency {
            Consistency::Eventual => format!(
                "P(read misses a write ≥ {} ms old) ≤ {:.3}",
                k.staleness_ms.unwrap_or(0.0),
                1.0 - k.staleness_p
            ),
            c => c.name().to_string(),
        };
        checks.push(Check {
            requirement: format!("{}: consistency", kd.name),
            target,
            estimate: consistency.1,
            measured: consistency.2,
            status: status(consistency.0),
            why: if consistency.0 {
                String::new()
            } else {
                "the checker found reads the requirement forbids".into()
            },
            fix: if consistency.0 { String::new() } else { consistency.3 },
        });
    }
    if !validated {
        for c in &mut checks {
            if c.measured == "–" {
                c.measured = "– (--no-validate)".into();
            }
        }
    }
    checks
}

impl DesignReport {
    /// The text `concord design` prints.
    pub fn summary(&self) -> String {
        let req = &self.requirements;
        let d = &self.design;
        let mut out = String::new();
        let _ = writeln!(out, "concord design: {}", req.name);
        if !req.description.is_empty() {
            let _ = writeln!(out, "  {}", req.description);
        }
        let _ = writeln!(out, "\n== The design ==");
        for dec in &d.decisions {
            write_decision(&mut out, dec, "");
        }
        for k in &d.kinds {
            let _ = writeln!(out, "\n-- {} ({}) --", k.name, k.consistency.name());
            for dec in &k.decisions {
                write_decision(&mut out, dec, "");
            }
        }
        let _ = writeln!(
            out,
            "\nSummary: {} nodes, {} cache nodes; {}",
            d.nodes,
            d.cache_nodes,
            d.kinds
                .iter()
                .map(|k| format!(
                    "{}: {} × {} shards ({})",
                    k.name,
                    match k.protocol {
                        Protocol::Raft { .. } => "Raft".to_string(),
                        Protocol::Dynamo { r, w } => format!("Dynamo N={} R={r} W={w}", k.replicas()),
                    },
                    k.shards,
                    plan::describe_placement(req, &k.placement)
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        if self.validated {
            let _ = writeln!(
                out,
                "\n== Validation in the simulator (one replica group per kind, {} req/s, {} keys, {} s, seed {}) ==",
                self.sim.rate_per_s, self.sim.keys, self.sim.duration_s, self.seed
            );
            let _ = writeln!(
                out,
                "  {:<14} {:<10} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9}  checker",
                "kind",
                "fault",
                "ops",
                "read p50",
                "read p99",
                "write p50",
                "write p99",
                "served",
                "back (ms)",
            );
            for r in &self.runs {
                let _ = writeln!(
                    out,
                    "  {:<14} {:<10} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8} {:>9}  {}",
                    r.kind,
                    r.fault.name(),
                    r.ops,
                    r.read_p50_ms,
                    r.read_p99_ms,
                    r.write_p50_ms,
                    r.write_p99_ms,
                    if r.fault == Fault::None {
                        "–".into()
                    } else {
                        format!("{:.1}%", 100.0 * r.served_after_failover)
                    },
                    r.recovery_ms.map_or("–".into(), |t| format!("{t:.0}")),
                    checker_note(r)
                );
            }
        }
        let _ = writeln!(out, "\n== Requirements ==");
        for c in &self.checks {
            let _ = writeln!(out, "  [{}] {}", c.status.word(), c.requirement);
            let _ = writeln!(
                out,
                "        target {} · estimate {} · measured {}",
                c.target, c.estimate, c.measured
            );
            if c.status == Status::Missed {
                let _ = writeln!(out, "        why: {}", c.why);
                let _ = writeln!(out, "        fix: {}", c.fix);
            }
        }
        let missed = self.missed().count();
        let _ = writeln!(
            out,
            "\n{}",
            if missed == 0 {
                format!("Every requirement met ({} checked).", self.checks.len())
            } else {
                format!("{missed} of {} requirements MISSED.", self.checks.len())
            }
        );
        out
    }
}

fn checker_note(r: &Run) -> String {
    let mut parts = Vec::new();
    if r.linearizable != "–" {
        parts.push(r.linearizable.clone());
    }
    if let Some(v) = r.ryw_violations {
        parts.push(format!("{v} RYW violations"));
    }
    if let Some((n, ok)) = r.reads_past_bound {
        parts.push(format!("{ok}/{n} past the bound consistent"));
    }
    if !r.violations.is_empty() {
        parts.push(format!("{} invariant violations", r.violations.len()));
    }
    parts.join(", ")
}

fn write_decision(out: &mut String, dec: &plan::Decision, indent: &str) {
    let _ = writeln!(out, "{indent}* {}: {}", dec.topic, dec.choice);
    for line in &dec.arithmetic {
        let _ = writeln!(out, "{indent}    {line}");
    }
    for (alt, why) in &dec.rejected {
        let _ = writeln!(out, "{indent}    rejected {alt}: {why}");
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Write `report.json`, the plots, the scenario files and `index.html` into `dir`.
pub fn write_report(report: &DesignReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let json = dir.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)?)?;
    written.push(json);
    let mut images: Vec<(String, String)> = Vec::new(); // (file, caption)
    for k in &report.design.kinds {
        let slug = slug(&k.name);
        if let Some(base) = run_of(&report.runs, &k.name, &Fault::None) {
            let reads: Vec<f64> = base.samples.iter().filter(|s| !s.2).map(|s| s.1).collect();
            let writes: Vec<f64> = base.samples.iter().filter(|s| s.2).map(|s| s.1).collect();
            let all: Vec<f64> = base.samples.iter().map(|s| s.1).collect();
            if !all.is_empty() {
                let lo = all.iter().copied().fold(f64::MAX, f64::min).max(0.01);
                let hi = all.iter().copied().fold(0.0, f64::max).max(k.read_target_ms).max(k.write_target_ms);
                let title = format!(
                    "{}: latency without faults (targets: read {} ms, write {} ms)",
                    k.name, k.read_target_ms, k.write_target_ms
                );
                let stem = dir.join(format!("latency-{slug}"));
                let mut curves = Vec::new();
                if !reads.is_empty() {
                    curves.push(plot::Curve { label: "reads".into(), values: reads });
                }
                if !writes.is_empty() {
                    curves.push(plot::Curve { label: "writes".into(), values: writes });
                }
                plot::cdf(
                    &stem,
                    &CdfChart {
                        title: &title,
                        x_label: "latency (ms, simulated)",
                        log_x: true,
                        x_range: (lo * 0.8, hi * 1.3),
                    },
                    &curves,
                )?;
                push_plot(&mut written, &stem);
                images.push((format!("latency-{slug}.svg"), format!("{}: how long reads and writes took in the no-fault run (CDF). The objectives are {} ms (read) and {} ms (write) at p99.", k.name, k.read_target_ms, k.write_target_ms)));
            }
        }
        // Served fraction over time, one line per fault.
        let mut series = Vec::new();
        let mut x_max: f64 = 1.0;
        for (i, r) in report.runs.iter().filter(|r| r.kind == k.name && r.fault != Fault::None).enumerate() {
            let pts = served_timeline(r);
            x_max = x_max.max(pts.last().map_or(0.0, |p| p.0));
            series.push(StyledSeries {
                label: format!("{} ({})", r.fault.name(), r.target),
                points: pts,
                style: LineStyle::Solid,
                color: i,
            });
        }
        if !series.is_empty() {
            let stem = dir.join(format!("served-{slug}"));
            let title = format!("{}: requests served per 250 ms around the fault", k.name);
            plot::xy_marked(
                &stem,
                &XyChart {
                    title: &title,
                    x_label: "seconds since the fault",
                    y_label: "fraction served",
                    log_x: false,
                    x_range: (-1.0, x_max),
                    y_range: (0.0, 1.05),
                },
                false,
                &series,
                &[],
            )?;
            push_plot(&mut written, &stem);
            images.push((format!("served-{slug}.svg"), format!("{}: which failures the design rides through. Each line is one run; the fault happens at 0. A line that comes back to 1 survived (after a failover); one that stays at 0 did not.", k.name)));
        }
        if let Some(c) = &k.cache {
            let stem = dir.join(format!("cache-{slug}"));
            let title = format!(
                "{}: LRU hit ratio vs cache size (Che, Zipf s = {})",
                k.name, report.requirements.load.zipf_s
            );
            let pts: Vec<(f64, f64)> = c.curve.iter().map(|(f, h)| (100.0 * f, *h)).collect();
            plot::xy_marked(
                &stem,
                &XyChart {
                    title: &title,
                    x_label: "cache size (% of the keys)",
                    y_label: "hit ratio",
                    log_x: true,
                    x_range: (0.08, 25.0),
                    y_range: (0.0, 1.0),
                },
                false,
                &[StyledSeries {
                    label: "Che's approximation (LRU)".into(),
                    points: pts,
                    style: LineStyle::Solid,
                    color: 0,
                }],
                &[Marker { x: 100.0 * c.fraction, y: c.hit_ratio, color: 3, legend: "chosen".into() }],
            )?;
            push_plot(&mut written, &stem);
            images.push((
                format!("cache-{slug}.svg"),
                format!("{}: why the cache has the size it has – the knee of the hit-ratio curve.", k.name),
            ));
        }
    }
    for c in &report.pbs {
        let slug = slug(&c.kind);
        let stem = dir.join(format!("pbs-{slug}"));
        let title =
            format!("{}: P(consistent read) vs time since the write (bound {} ms)", c.kind, c.bound_ms);
        let x_max = c.model.last().map_or(1.0, |p| p.0);
        let mut markers: Vec<Marker> = c
            .sim
            .iter()
            .map(|&(t, p, _)| Marker { x: t, y: p, color: 1, legend: "simulator (no-fault run)".into() })
            .collect();
        markers.push(Marker { x: c.bound_ms, y: 1.0, color: 3, legend: "staleness bound".into() });
        let y_lo = c
            .model
            .iter()
            .map(|p| p.1)
            .fold(1.0, f64::min)
            .min(c.sim.iter().map(|p| p.1).fold(1.0, f64::min));
        plot::xy_marked(
            &stem,
            &XyChart {
                title: &title,
                x_label: "ms since the write was acknowledged",
                y_label: "P(consistent)",
                log_x: false,
                x_range: (0.0, x_max),
                y_range: ((y_lo - 0.05).max(0.0), 1.01),
            },
            false,
            &[StyledSeries {
                label: "PBS model (WARS)".into(),
                points: c.model.clone(),
                style: LineStyle::Solid,
                color: 0,
            }],
            &markers,
        )?;
        push_plot(&mut written, &stem);
        images.push((
            format!("pbs-{slug}.svg"),
            format!("{}: the staleness estimate (PBS) and what the simulator's reads saw.", c.kind),
        ));
    }
    for r in &report.runs {
        let path = dir.join(format!("scenario-{}-{}.toml", slug(&r.kind), slug(r.fault.name())));
        std::fs::write(&path, &r.scenario_toml)?;
        written.push(path);
    }
    let html = dir.join("index.html");
    std::fs::write(&html, html_report(report, &images))?;
    written.push(html);
    Ok(written)
}

fn push_plot(written: &mut Vec<PathBuf>, stem: &Path) {
    written.push(stem.with_extension("svg"));
    written.push(stem.with_extension("png"));
}

fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// Fraction of requests served, by invocation time in 250 ms buckets, around the fault.
fn served_timeline(r: &Run) -> Vec<(f64, f64)> {
    const BUCKET_S: f64 = 0.25;
    let mut buckets: std::collections::BTreeMap<i64, (usize, usize)> = std::collections::BTreeMap::new();
    for &(t, ok) in &r.outcomes {
        let b = ((t - r.fault_at_s) / BUCKET_S).floor() as i64;
        if b < -4 {
            continue;
        }
        let e = buckets.entry(b).or_default();
        e.0 += 1;
        e.1 += usize::from(ok);
    }
    buckets.iter().map(|(&b, &(n, ok))| ((b as f64 + 0.5) * BUCKET_S, ok as f64 / n as f64)).collect()
}

fn html_report(report: &DesignReport, images: &[(String, String)]) -> String {
    let req = &report.requirements;
    let mut body = String::new();
    let _ = writeln!(body, "<h1>concord design: {}</h1>", esc(&req.name));
    if !req.description.is_empty() {
        let _ = writeln!(body, "<p>{}</p>", esc(&req.description));
    }
    let missed = report.missed().count();
    let _ = writeln!(
        body,
        "<p class=\"{}\"><b>{}</b></p>",
        if missed == 0 { "ok" } else { "bad" },
        if missed == 0 {
            format!("Every requirement met ({} checked).", report.checks.len())
        } else {
            format!("{missed} of {} requirements missed.", report.checks.len())
        }
    );
    let _ = writeln!(body, "<h2>Requirements: target, estimate, measurement</h2><table><tr><th></th><th>requirement</th><th>target</th><th>estimate</th><th>measured</th><th>why / fix</th></tr>");
    for c in &report.checks {
        let class = match c.status {
            Status::Met => "ok",
            Status::Missed => "bad",
            Status::Info => "info",
        };
        let _ = writeln!(
            body,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.status.word(),
            esc(&c.requirement),
            esc(&c.target),
            esc(&c.estimate),
            esc(&c.measured),
            if c.status == Status::Missed {
                format!("{}<br><i>fix:</i> {}", esc(&c.why), esc(&c.fix))
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(body, "</table>");
    let _ = writeln!(body, "<h2>The design, choice by choice</h2>");
    let mut decisions = |title: &str, list: &[plan::Decision]| {
        let _ = writeln!(body, "<h3>{}</h3>", esc(title));
        for d in list {
            let _ = writeln!(body, "<div class=\"dec\"><b>{}</b>: {}<ul>", esc(&d.topic), esc(&d.choice));
            for l in &d.arithmetic {
                let _ = writeln!(body, "<li><code>{}</code></li>", esc(l));
            }
            for (alt, why) in &d.rejected {
                let _ = writeln!(body, "<li class=\"rej\">rejected <b>{}</b>: {}</li>", esc(alt), esc(why));
            }
            let _ = writeln!(body, "</ul></div>");
        }
    };
    decisions("The cluster", &report.design.decisions);
    for k in &report.design.kinds {
        decisions(&format!("{} ({})", k.name, k.consistency.name()), &k.decisions);
    }
    if report.validated {
        let _ = writeln!(
            body,
            "<h2>Validation in the simulator</h2><p>One replica group per kind (every shard is alike), each replica a simulated node in its region and zone, links delayed by the RTT matrix (±10 %). {} requests/s on {} keys, {} s after the first election, seed {}. Every fault at a quarter of the run, never healed; \"served after failover\" counts the requests sent once the clients' timeout, Raft's election and 200 ms have passed. The simulator's clients stand next to the node they talk to: the hop from a client's region to that node (the nearest replica; the leader for Raft writes, which are redirected to it) is added to the measured p99 from the arithmetic. A Raft follower's own round trip to the leader for a read index is simulated. The simulator elects its own Raft leader (it cannot pin the preferred one). Throughput is not simulated (no CPU model). Replay any run with <code>concord sim scenario-KIND-FAULT.toml --seed {}</code>.</p>",
            report.sim.rate_per_s, report.sim.keys, report.sim.duration_s, report.seed, report.seed
        );
        let _ = writeln!(body, "<table><tr><th>kind</th><th>fault</th><th>hit</th><th>ops</th><th>read p50/p99</th><th>write p50/p99</th><th>served after failover</th><th>back after</th><th>checkers</th><th>scenario</th></tr>");
        for r in &report.runs {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} / {:.1} ms</td><td>{:.1} / {:.1} ms</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"scenario-{}-{}.toml\">toml</a></td></tr>",
                esc(&r.kind),
                r.fault.name(),
                esc(&r.target),
                r.ops,
                r.read_p50_ms,
                r.read_p99_ms,
                r.write_p50_ms,
                r.write_p99_ms,
                if r.fault == Fault::None { "–".into() } else { format!("{:.1} %", 100.0 * r.served_after_failover) },
                r.recovery_ms.map_or("–".into(), |t| format!("{t:.0} ms")),
                esc(&checker_note(r)),
                slug(&r.kind),
                slug(r.fault.name())
            );
        }
        let _ = writeln!(body, "</table>");
    }
    for (file, caption) in images {
        let _ = writeln!(
            body,
            "<figure><img src=\"{file}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
            esc(caption),
            esc(caption)
        );
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>concord design: {}</title><style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; line-height: 1.4 }}
table {{ border-collapse: collapse; margin: 1em 0 }} td, th {{ border: 1px solid #ccc; padding: 3px 6px; font-size: 90% }}
tr.ok td:first-child, p.ok {{ color: #1a7f37 }} tr.bad td:first-child, p.bad {{ color: #c62828; font-weight: bold }}
tr.info td:first-child {{ color: #666 }} li.rej {{ color: #666 }} code {{ font-size: 88% }}
img {{ max-width: 100% }} figcaption {{ font-size: 90%; color: #444 }}
</style></head><body>\n{body}</body></html>\n",
        esc(&req.name)
    )
}

/// The validation faults, for callers that want to describe them.
pub fn fault_names(req: &Requirements, kind: &KindDesign) -> Vec<&'static str> {
    validate::faults(req, kind).iter().map(|f| f.name()).collect()
}
