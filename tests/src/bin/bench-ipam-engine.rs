//! Benchmark of the pure address engine (pdc-core, no cluster): 1,000,000 addresses
//! in one department subnet pair of a /16 (IPv4) and a /48 (IPv6): dual-stack pairs
//! until the /16 is full, IPv6-only after that. Then the worst case for memory: every
//! second address freed (maximum fragmentation), and allocation into the holes.
//!
//!     cargo run --release --bin bench-ipam-engine [-- --count 1000000]

use std::time::Instant;

use pdc_core::ipam::{Family, HostPool, Prefix, Want};
use pdc_tests::bench::{Args, write_result};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() -> std::process::ExitCode {
    let a = Args::parse(1_000_000, "bench/results/ipam-engine.json");
    let (Ok(v4), Ok(v6)) = (Prefix::parse("10.15.0.0/16"), Prefix::parse("2001:db8:1500::/48")) else {
        return std::process::ExitCode::FAILURE;
    };
    let Ok(mut pool) = HostPool::new(Some(v4), Some(v6), 3) else { return std::process::ExitCode::FAILURE };
    let rss0 = rss_kib();
    let start = Instant::now();
    let mut addresses = 0usize;
    let mut hosts = Vec::new();
    while addresses < a.count {
        let (want, n) = match pool.next_free(Want::DualStack) {
            Ok(_) if addresses + 2 <= a.count => (Want::DualStack, 2),
            _ => (Want::V6Only, 1),
        };
        match pool.allocate(want) {
            Ok(h) => hosts.push((h, want)),
            Err(e) => {
                eprintln!("stopped at {addresses}: {e}");
                break;
            }
        }
        addresses += n;
    }
    let fill = start.elapsed();
    let (v4_used, v4_total) = pool.usage(Family::V4);
    let (v6_used, v6_total) = pool.usage(Family::V6);
    let rss_full = rss_kib();
    let intervals_full = pool.intervals();
    // Free every second allocation: the most intervals a pool can have.
    let t = Instant::now();
    let mut freed = 0usize;
    for (h, want) in hosts.iter().step_by(2) {
        pool.release(*h, want.families());
        freed += want.families().len();
    }
    let free_time = t.elapsed();
    let intervals_fragmented = pool.intervals();
    let rss_fragmented = rss_kib();
    // Allocate into the holes again.
    let t = Instant::now();
    let mut refilled = 0usize;
    while refilled < freed {
        match pool.allocate(Want::V6Only) {
            Ok(_) => refilled += 1,
            Err(_) => break,
        }
    }
    let refill = t.elapsed();
    let rate = addresses as f64 / fill.as_secs_f64();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| {addresses} addresses allocated (IPv4 {v4_used}/{v4_total} of the /16; IPv6 {v6_used} of the /48's {v6_total} pairing-rule hosts) | {:.3} s ({rate:.0} addresses/s) |", fill.as_secs_f64());
    println!("| intervals held when full | {intervals_full} |");
    println!("| memory when full (RSS growth, includes the test's own list of hosts) | {} KiB |", rss_full.saturating_sub(rss0));
    println!("| every second allocation freed ({freed} addresses) | {:.3} s, {intervals_fragmented} intervals, RSS +{} KiB |", free_time.as_secs_f64(), rss_fragmented.saturating_sub(rss0));
    println!("| {refilled} allocations into the holes | {:.3} s ({:.0}/s) |", refill.as_secs_f64(), refilled as f64 / refill.as_secs_f64());
    let r = write_result(
        &a.out,
        &serde_json::json!({
            "addresses": addresses, "fill_seconds": fill.as_secs_f64(), "addresses_per_second": rate,
            "intervals_full": intervals_full, "rss_growth_kib_full": rss_full.saturating_sub(rss0),
            "intervals_fragmented": intervals_fragmented, "rss_growth_kib_fragmented": rss_fragmented.saturating_sub(rss0),
            "refill_seconds": refill.as_secs_f64(), "refilled": refilled,
        }),
    );
    if r.is_err() { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS }
}
