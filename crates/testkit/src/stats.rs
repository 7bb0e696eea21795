//! Summaries of measured durations for the benches: count, median, p90, max and min, in
//! seconds, and a table row of them.

use std::time::Duration;

/// Durations summed up, in seconds.
pub struct Stats {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
    /// Every value, smallest first.
    pub sorted: Vec<f64>,
}

/// The summary of durations, in seconds.
pub fn stats(v: impl IntoIterator<Item = Duration>) -> Stats {
    let mut s: Vec<f64> = v.into_iter().map(|d| d.as_secs_f64()).collect();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return Stats {
            n,
            min: f64::NAN,
            median: f64::NAN,
            p90: f64::NAN,
            max: f64::NAN,
            sorted: s,
        };
    }
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    let p90 = s[((n as f64 * 0.9).ceil() as usize).clamp(1, n) - 1];
    Stats {
        n,
        min: s[0],
        median,
        p90,
        max: s[n - 1],
        sorted: s,
    }
}

/// One table row: `what`, then n, median, p90, max and min.
pub fn row(what: &str, s: &Stats) {
    println!(
        "  {what:<44} {:>4} {:>8.3} s {:>8.3} s {:>8.3} s {:>8.3} s",
        s.n, s.median, s.p90, s.max, s.min
    );
}
