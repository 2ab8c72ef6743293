//! Process metrics and their Prometheus text rendering (`GET /metrics`).
//!
//! A fixed set of atomic counters and gauges plus two hdrhistogram
//! latency histograms, rendered by hand in the text exposition format:
//! the `metrics` facade and its exporter would add a registry, a recorder
//! and (by default) a push gateway for a dozen numbers we know up front.
//!
//! Depends on: hdrhistogram.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;

#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default, Debug)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A latency histogram in microseconds (1 µs – 1 h, 3 significant digits).
pub struct Latency(Mutex<Histogram<u64>>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Mutex::new(
            Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
        ))
    }
}

impl Latency {
    pub fn record_us(&self, us: u64) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = h.record(us.clamp(1, 3_600_000_000));
    }
    fn render(&self, out: &mut String, name: &str, help: &str) {
        let h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
        for q in [0.5, 0.9, 0.99, 0.999] {
            let _ = writeln!(
                out,
                "{name}{{quantile=\"{q}\"}} {:.6}",
                h.value_at_quantile(q) as f64 / 1e6
            );
        }
        let _ = writeln!(out, "{name}_count {}", h.len());
        let _ = writeln!(out, "{name}_sum {:.6}", h.mean() * h.len() as f64 / 1e6);
    }
}

/// Everything the daemon counts.
#[derive(Default)]
pub struct Metrics {
    pub outcome_fine: Counter,
    pub outcome_needs_contact: Counter,
    pub outcome_no_response: Counter,
    pub outcome_missed: Counter,
    pub attempts: Counter,
    pub retries_scheduled: Counter,
    pub calls_admitted: Counter,
    pub active_calls: Gauge,
    pub checks_planned: Counter,
    pub sip_retransmissions: Counter,
    pub malformed_sip: Counter,
    pub rtp_sent: Counter,
    pub rtp_received: Counter,
    pub rtp_malformed: Counter,
    pub dtmf_rfc4733: Counter,
    pub dtmf_inband: Counter,
    pub dtmf_info: Counter,
    pub recovered_inflight: Counter,
    pub scheduler_lag: Latency,
    pub storage_write: Latency,
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(4096);
        let mut c = |name: &str, help: &str, labels: &[(&str, u64)]| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for (l, v) in labels {
                if l.is_empty() {
                    let _ = writeln!(o, "{name} {v}");
                } else {
                    let _ = writeln!(o, "{name}{{{l}}} {v}");
                }
            }
        };
        c(
            "genki_checks_total",
            "Checks that reached a final outcome, by outcome.",
            &[
                ("outcome=\"fine\"", self.outcome_fine.get()),
                (
                    "outcome=\"needs_contact\"",
                    self.outcome_needs_contact.get(),
                ),
                ("outcome=\"no_response\"", self.outcome_no_response.get()),
                ("outcome=\"missed\"", self.outcome_missed.get()),
            ],
        );
        c(
            "genki_attempts_total",
            "Calls placed.",
            &[("", self.attempts.get())],
        );
        c(
            "genki_retries_total",
            "Retries scheduled.",
            &[("", self.retries_scheduled.get())],
        );
        c(
            "genki_calls_admitted_total",
            "Calls admitted by the dialer (rate over time = admitted CPS).",
            &[("", self.calls_admitted.get())],
        );
        c(
            "genki_checks_planned_total",
            "Checks created by the planner.",
            &[("", self.checks_planned.get())],
        );
        c(
            "genki_recovered_inflight_total",
            "Checks found in flight at start-up and re-queued.",
            &[("", self.recovered_inflight.get())],
        );
        c(
            "genki_sip_retransmissions_total",
            "SIP retransmissions sent.",
            &[("", self.sip_retransmissions.get())],
        );
        c(
            "genki_sip_malformed_total",
            "Malformed SIP datagrams dropped.",
            &[("", self.malformed_sip.get())],
        );
        c(
            "genki_rtp_packets_total",
            "RTP packets, by direction.",
            &[
                ("direction=\"sent\"", self.rtp_sent.get()),
                ("direction=\"received\"", self.rtp_received.get()),
            ],
        );
        c(
            "genki_rtp_malformed_total",
            "Malformed RTP datagrams dropped.",
            &[("", self.rtp_malformed.get())],
        );
        c(
            "genki_dtmf_total",
            "Digits received, by transport.",
            &[
                ("transport=\"rfc4733\"", self.dtmf_rfc4733.get()),
                ("transport=\"inband\"", self.dtmf_inband.get()),
                ("transport=\"info\"", self.dtmf_info.get()),
            ],
        );
        let _ = writeln!(o, "# HELP genki_active_calls Calls in progress.\n# TYPE genki_active_calls gauge\ngenki_active_calls {}", self.active_calls.get());
        self.scheduler_lag.render(
            &mut o,
            "genki_scheduler_lag_seconds",
            "How late checks start against their due time.",
        );
        self.storage_write.render(
            &mut o,
            "genki_storage_write_seconds",
            "Synced storage write latency.",
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.outcome_fine.inc();
        m.active_calls.add(3);
        m.storage_write.record_us(1500);
        let t = m.render();
        assert!(t.contains("genki_checks_total{outcome=\"fine\"} 1"), "{t}");
        assert!(t.contains("genki_active_calls 3"));
        assert!(t.contains("genki_storage_write_seconds_count 1"));
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(!name.is_empty());
            value.parse::<f64>().unwrap();
        }
    }
}
