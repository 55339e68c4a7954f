//! PostgreSQL's CPU time, for benchmarks: the sum of user and system time of every
//! `postgres` process, read from `/proc`. A benchmark bound by the database's CPU shows a
//! change in it far more steadily than in its latencies. Nothing else may use the server
//! meanwhile.

use std::collections::HashMap;
use std::time::Duration;

/// Every `postgres` process's CPU time at one moment.
#[derive(Debug, Clone)]
pub struct PostgresCpu(HashMap<u32, Duration>);

impl PostgresCpu {
    pub fn now() -> Self {
        let ticks_per_second = clock_ticks_per_second();
        let mut cpu = HashMap::new();
        let Ok(entries) = std::fs::read_dir("/proc") else { return Self(cpu) };
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // "pid (comm) state ppid …": utime and stime are the 12th and 13th fields after
            // the comm's closing parenthesis.
            let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
            if !head.contains("(postgres") {
                continue;
            }
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |n: usize| fields.get(n).and_then(|field| field.parse::<u64>().ok()).unwrap_or(0);
            let total = ticks(11) + ticks(12);
            cpu.insert(pid, Duration::from_secs_f64(total as f64 / ticks_per_second));
        }
        Self(cpu)
    }

    /// CPU spent since this snapshot by the processes alive now (one started since counts
    /// from zero; one that ended since is not counted: keep connections open meanwhile).
    pub fn spent_since(&self) -> Duration {
        Self::now().0.iter().map(|(pid, now)| now.saturating_sub(self.0.get(pid).copied().unwrap_or_default())).sum()
    }
}

/// The kernel's clock ticks per second, asked once: every snapshot needs it, and a process
/// spawned between two snapshots is work in the middle of what they measure.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(ask_clock_ticks_per_second)
}

fn ask_clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}
