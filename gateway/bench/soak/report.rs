//! What the soak prints, and whether the run passed.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use crate::load::{Front, Load};
use crate::measure::Occurrences;
use crate::stack::{Life, Replica};
use crate::timeline::{NO_DISRUPTION, Timeline};
use crate::upstream::Ledger;
use crate::{RSS_GROWTH_BOUND_MIB, WARM_UP_MS};

/// The longest an open stream may wait for its next event (one comes every
/// 250 ms): longer means a proxy buffers it.
const LONGEST_EVENT_GAP_MS: u64 = 5_000;

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// One line on how the run goes.
pub fn progress(load: &Load, ledger: &Ledger, now_ms: u64) -> String {
    let seen = &load.seen;
    let sent: u64 = seen.sent.iter().map(|n| n.load(Ordering::Relaxed)).sum();
    let failures: u64 = seen
        .failures
        .lock()
        .unwrap()
        .values()
        .map(Occurrences::count)
        .sum();
    format!(
        "{:>5.1} s: {sent} requests sent, {} served by the upstream, {failures} 5xx or unanswered, \
         {} wrong identities, {} tokens at the upstream; load average {}",
        now_ms as f64 / 1000.0,
        ledger.served.load(Ordering::Relaxed),
        ledger.wrong_identities.load(Ordering::Relaxed),
        ledger.tokens_seen.load(Ordering::Relaxed),
        load_average()
    )
}

/// Everything the report reads.
pub struct Run<'a> {
    pub binary: &'a str,
    pub users: usize,
    pub clients: usize,
    pub streams: usize,
    pub attack_names: &'a [&'static str],
    pub timeline: &'a Timeline,
    pub load: &'a Load,
    pub ledger: &'a Ledger,
    pub replicas: &'a [Replica],
    pub issuer_fetches: usize,
    pub load_averages: &'a [(u64, String)],
    pub elapsed_ms: u64,
    pub nginx_errors: &'a str,
    pub interrupted: bool,
}

fn secs(ms: u64) -> String {
    format!("{:.1}", ms as f64 / 1000.0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Prints the report; returns whether the run passed.
pub fn print(run: &Run<'_>) -> bool {
    let seen = &run.load.seen;
    let ledger = run.ledger;
    let mut failed = Vec::new();
    let count = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);

    println!(
        "meingpt-gateway soak: 2 replicas of {} behind nginx ({}), {} users, {} clients, {} SSE streams, {} s",
        run.binary,
        nginx_version(),
        run.users,
        run.clients,
        run.streams,
        secs(run.elapsed_ms)
    );
    println!("load average (1, 5, 15 min) over the run:");
    for (at, load) in run.load_averages {
        println!("  {:>6} s  {load}", secs(*at));
    }

    println!("\ntimeline:");
    for (at, note) in run.timeline.notes() {
        println!("  {:>6} s  {note}", secs(at));
    }

    let sent: Vec<u64> = seen.sent.iter().map(count).collect();
    let total: u64 = sent.iter().sum();
    println!(
        "\nrequests sent: {total} ({:.0}/s): {} proxy mode, {} forward auth",
        total as f64 * 1000.0 / run.elapsed_ms as f64,
        sent[Front::Proxy as usize],
        sent[Front::ForwardAuth as usize]
    );
    println!(
        "  served, checked at the client: {} as the user sent, {} on a public route without identity",
        count(&seen.served_as_user),
        count(&seen.served_anonymous)
    );
    println!(
        "  served by the upstream (over its restarts): {} ({} as a user, {} anonymous, {} of them streams)",
        count(&ledger.served),
        count(&ledger.as_user),
        count(&ledger.anonymous),
        count(&ledger.streams)
    );
    println!(
        "  attacks answered as they must be (refused, or served as the token's identity or none), by front and status:"
    );
    let mut attacks = seen.token_attacks.lock().unwrap().clone();
    attacks.extend(seen.header_attacks.lock().unwrap().iter());
    for name in run.attack_names {
        let answers: Vec<_> = attacks
            .iter()
            .filter(|((attack, _, _), _)| attack == name)
            .map(|((_, front, status), n)| format!("{} {status} × {n}", front.name()))
            .collect();
        let total: u64 = attacks
            .iter()
            .filter(|((attack, _, _), _)| attack == name)
            .map(|(_, n)| n)
            .sum();
        println!("    {total:>7}  {name}: {}", answers.join(", "));
    }
    for generation in 1..3 {
        println!(
            "  valid tokens of key {generation} refused before every replica had it (allowed): {}",
            seen.tolerated[generation]
        );
    }

    let wrong_identities = count(&ledger.wrong_identities);
    let tokens_seen = count(&ledger.tokens_seen);
    let wrong_verdicts = count(&seen.wrong_verdicts);
    let wrong_answers = count(&seen.wrong_answers);
    println!("\nwrong identities at the upstream: {wrong_identities}");
    println!("tokens seen by the upstream: {tokens_seen}");
    println!("wrong verdicts at the client: {wrong_verdicts}");
    println!("answers (or events) for another request or user: {wrong_answers}");
    for finding in ledger.findings() {
        println!("  upstream: {finding}");
    }
    for example in seen.examples.lock().unwrap().iter() {
        println!("  client: {example}");
    }
    if wrong_identities > 0 {
        failed.push(format!(
            "{wrong_identities} wrong identities at the upstream"
        ));
    }
    if tokens_seen > 0 {
        failed.push(format!(
            "{tokens_seen} requests with a token at the upstream"
        ));
    }
    if wrong_verdicts > 0 {
        failed.push(format!("{wrong_verdicts} wrong verdicts"));
    }
    if wrong_answers > 0 {
        failed.push(format!(
            "{wrong_answers} answers for another request or user"
        ));
    }
    if count(&seen.served_as_user) == 0 {
        failed.push("nothing was served".to_owned());
    }

    println!("\n5xx answers and requests without an answer, by cause:");
    println!(
        "  {:<20} {:<13} {:>6} {:<10} when",
        "cause", "front", "status", "from"
    );
    let failures = seen.failures.lock().unwrap();
    if failures.is_empty() {
        println!("  none");
    }
    for ((cause, front, status, by), when) in failures.iter() {
        let status = if *status == 0 {
            "-".to_owned()
        } else {
            status.to_string()
        };
        println!(
            "  {cause:<20} {:<13} {status:>6} {by:<10} {when}",
            front.name()
        );
        if *cause == NO_DISRUPTION {
            failed.push(format!(
                "{} failures ({status}, {by}) outside any disruption",
                when.count()
            ));
        }
    }

    let breaks = seen.stream_breaks.lock().unwrap();
    let gap = count(&seen.longest_event_gap_ms);
    println!(
        "\nSSE streams: {} opened for {} held open, {} events, longest wait for an event on an open stream {} s",
        count(&seen.streams_opened),
        run.streams,
        count(&seen.stream_events),
        secs(gap)
    );
    for ((cause, front), n) in breaks.iter() {
        println!("  broken by {cause} ({}): {n}", front.name());
        if *cause == NO_DISRUPTION {
            failed.push(format!("{n} streams broke outside any disruption"));
        }
    }
    if gap > LONGEST_EVENT_GAP_MS {
        failed.push(format!(
            "an open stream waited {} s for an event",
            secs(gap)
        ));
    }

    println!(
        "\nJWKS fetches: {} at the issuer; per replica (requests, answered with keys: when and status):",
        run.issuer_fetches
    );
    for replica in run.replicas {
        let fetches = replica.relay.fetches();
        let served = fetches.iter().filter(|(_, status)| *status == 200).count();
        let each: Vec<_> = fetches
            .iter()
            .map(|(at, status)| format!("{} s: {status}", secs(*at)))
            .collect();
        println!(
            "  replica {}: {}, {served} ({})",
            replica.name,
            fetches.len(),
            each.join(", ")
        );
    }

    println!("\nper replica life, from its /metrics just before it ended:");
    for replica in run.replicas {
        for (i, life) in replica.lives.iter().enumerate() {
            println!(
                "  replica {} life {} ({}–{} s):",
                replica.name,
                i + 1,
                secs(life.started_ms),
                secs(life.ended_ms.unwrap_or(run.elapsed_ms))
            );
            for (name, value) in &life.counters {
                println!("    {value:>8}  {name}");
            }
        }
    }

    println!("\nnginx error log, by message and peer:");
    let errors = nginx_errors(run.nginx_errors, run.replicas);
    if errors.is_empty() {
        println!("  nothing");
    }
    for ((message, peer), n) in errors {
        println!("  {n:>7}  {message} ({peer})");
    }

    println!("\nRSS (MiB) of each replica over time:");
    print!("  {:>6}", "s");
    for replica in run.replicas {
        print!("  {:>10}", format!("replica {}", replica.name));
    }
    println!();
    let mut at = 0;
    while at <= run.elapsed_ms + 1_000 {
        print!("  {:>6}", at / 1000);
        for replica in run.replicas {
            match rss_near(replica, at) {
                Some(kib) => print!("  {:>10.1}", mib(kib)),
                None => print!("  {:>10}", "-"),
            }
        }
        println!();
        at += 10_000;
    }
    println!(
        "RSS growth after each life's first {} s (bound: {RSS_GROWTH_BOUND_MIB} MiB):",
        WARM_UP_MS / 1000
    );
    for replica in run.replicas {
        for (i, life) in replica.lives.iter().enumerate() {
            let name = format!("replica {} life {}", replica.name, i + 1);
            match growth(life) {
                Some((from, to, peak)) => {
                    let grew = mib(peak) - mib(from);
                    println!(
                        "  {name}: {:.1} MiB after warm-up, {:.1} at the end, peak {:.1}: {grew:+.1} MiB",
                        mib(from),
                        mib(to),
                        mib(peak)
                    );
                    if grew > RSS_GROWTH_BOUND_MIB {
                        failed.push(format!("{name}'s RSS grew by {grew:.1} MiB"));
                    }
                }
                None => println!(
                    "  {name}: too short to judge ({} s)",
                    secs(life.rss.last().map_or(0, |s| s.0) - life.started_ms)
                ),
            }
        }
    }

    if run.interrupted {
        failed.push("interrupted".to_owned());
    }
    if failed.is_empty() {
        println!("\nPASS");
    } else {
        println!("\nFAIL: {}", failed.join("; "));
    }
    failed.is_empty()
}

/// The sample of `replica`'s RSS nearest to `at` (within 2 s).
fn rss_near(replica: &Replica, at: u64) -> Option<u64> {
    replica
        .lives
        .iter()
        .flat_map(|life| &life.rss)
        .filter(|(t, _)| t.abs_diff(at) <= 2_000)
        .min_by_key(|(t, _)| t.abs_diff(at))
        .map(|(_, kib)| *kib)
}

/// A life's RSS after its warm-up, at its end and its peak since; `None`
/// when it lasted less than two warm-ups.
fn growth(life: &Life) -> Option<(u64, u64, u64)> {
    let after = life.started_ms + WARM_UP_MS;
    let (last, end) = *life.rss.last()?;
    if last < after + WARM_UP_MS {
        return None;
    }
    let mut samples = life.rss.iter().filter(|(t, _)| *t >= after);
    let (_, from) = *samples.next()?;
    let peak = samples.map(|(_, kib)| *kib).max().unwrap_or(from).max(from);
    Some((from, end, peak))
}

fn nginx_version() -> String {
    crate::common::find_program("nginx")
        .and_then(|nginx| std::process::Command::new(nginx).arg("-v").output().ok())
        .map(|output| {
            String::from_utf8_lossy(&output.stderr)
                .trim()
                .trim_start_matches("nginx version: ")
                .to_owned()
        })
        .unwrap_or_default()
}

/// nginx's error-log lines counted by message (`connect() failed (111:
/// Connection refused) while connecting to upstream`) and by the peer
/// named in them (a replica, the upstream).
fn nginx_errors(log: &str, replicas: &[Replica]) -> BTreeMap<(String, String), u64> {
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        if !(line.contains("[error]") || line.contains("[warn]")) {
            continue;
        }
        // `… [error] 123#123: *45 MESSAGE, client: …, upstream: "http://ADDR/…"`
        let Some(rest) = line.split_once(": *").map(|(_, rest)| rest) else {
            continue;
        };
        let message = rest
            .split_once(' ')
            .map_or(rest, |(_, message)| message)
            .split(", client:")
            .next()
            .unwrap_or_default()
            .to_owned();
        let peer = line
            .split_once("upstream: \"http://")
            .and_then(|(_, rest)| rest.split('/').next())
            .map(|addr| {
                replicas
                    .iter()
                    .find(|replica| replica.addr.to_string() == addr)
                    .map_or("the upstream".to_owned(), |replica| {
                        format!("replica {}", replica.name)
                    })
            })
            .unwrap_or_else(|| "-".to_owned());
        *counts.entry((message, peer)).or_default() += 1;
    }
    counts
}
