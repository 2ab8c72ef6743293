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
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
}

/// A latency histogram in microseconds (1 µs – 1 h by default, 3 significant digits).
pub struct Latency(Mutex<Histogram<u64>>, u64);

impl Default for Latency {
    fn default() -> Self {
        Latency::up_to_us(3_600_000_000)
    }
}

impl Latency {
    /// A histogram from 1 µs up to `max_us`.
    pub fn up_to_us(max_us: u64) -> Latency {
        Latency(
            Mutex::new(Histogram::new_with_bounds(1, max_us, 3).expect("valid bounds")),
            max_us,
        )
    }
    /// Record fixed-width buckets (`counts[i]` values of about `(i + 1) * width_us`).
    pub fn record_buckets(&self, counts: &[u64], width_us: u64) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (i, c) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            let _ = h.record_n(((i as u64 + 1) * width_us).clamp(1, self.1), *c);
        }
    }

    pub fn record_us(&self, us: u64) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = h.record(us.clamp(1, self.1));
    }
    /// The value at quantile `q` (0–1), in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(q)
        }
    }
    /// The largest value recorded, in microseconds.
    pub fn max_us(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).max()
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

/// The `reason` labels of `genki_media_failures_total`: the end reasons of
/// the media runtime's failures, in the order of its `MediaFailure::ALL`
/// (a test there holds the two together; metrics sit below telephony and
/// do not import it).
pub const MEDIA_FAILURES: [&str; 4] = [
    "media_setup_failed",
    "no_media",
    "media_stopped",
    "max_call_length",
];

/// Everything the daemon counts.
pub struct Metrics {
    pub outcome_fine: Counter,
    pub outcome_needs_contact: Counter,
    pub outcome_no_response: Counter,
    pub outcome_missed: Counter,
    pub outcome_spoke: Counter,
    pub outcome_not_attempted: Counter,
    pub attempts: Counter,
    pub retries_scheduled: Counter,
    pub calls_admitted: Counter,
    pub active_calls: Gauge,
    pub checks_planned: Counter,
    pub sip_retransmissions: Counter,
    pub malformed_sip: Counter,
    /// SIP messages with a live call's Call-ID refused as not from its peer.
    pub spoofed_sip: Counter,
    pub rtp_sent: Counter,
    pub rtp_received: Counter,
    pub rtp_malformed: Counter,
    /// RTP datagrams from addresses no call expects (dropped).
    pub rtp_unknown_source: Counter,
    /// RTP datagrams on a call's own port from a source the call does not
    /// accept (strangers, or a peer its latching rule refuses; dropped).
    pub rtp_foreign: Counter,
    /// Calls whose media latched to another source than their SDP named.
    pub rtp_relatched: Counter,
    /// Calls ended by genki for a media fault, indexed as [`MEDIA_FAILURES`]
    /// (the media runtime's failure kinds, in its order).
    pub media_failures: [Counter; MEDIA_FAILURES.len()],
    pub dtmf_rfc4733: Counter,
    pub dtmf_inband: Counter,
    pub dtmf_info: Counter,
    pub recovered_inflight: Counter,
    /// Claims of other (dead or paused) nodes whose lease ran out, taken over.
    pub leases_taken_over: Counter,
    /// This node's late writes refused because another node took its
    /// check over meanwhile (it was paused past its lease).
    pub fenced_writes: Counter,
    pub scheduler_lag: Latency,
    pub storage_write: Latency,
    /// How late each RTP packet left against its 20 ms schedule.
    pub rtp_send_lateness: Latency,
    pub alerts_open: Gauge,
    pub alerts_opened: Counter,
    pub alerts_resolved: Counter,
    pub alert_escalations: Counter,
    /// Case opened → a watcher took it (up to 30 days).
    pub time_to_ack: Latency,
    /// Notification results by channel (phone, email, webhook) and result
    /// (delivered, failed, given_up).
    pub notifications: [[Counter; 3]; 3],
    /// The trunk's circuit: 0 closed, 1 probing, 2 open.
    pub trunk_circuit: Gauge,
    /// Times the circuit opened from closed (outages).
    pub trunk_circuit_opened: Counter,
    /// 1 while the trunk's registration holds, 0 while it does not; -1
    /// when genki does not register.
    pub trunk_registered: Gauge,
    pub trunk_registration_failures: Counter,
    /// Calls that went on to the trunk's next DNS target (RFC 3263 §4.3).
    pub trunk_failovers: Counter,
    /// Calls to genki's own number (call-ins), answered.
    pub inbound_calls: Counter,
    /// Trunk targets whose last OPTIONS went unanswered.
    pub trunk_targets_down: Gauge,
    /// Attempts the carrier failed that did not count against the person.
    pub attempts_held: Counter,
    /// API connections closed at once because the cap was reached.
    pub api_connections_refused: Counter,
    /// API requests answered 429.
    pub api_rate_limited: Counter,
    /// SIP requests from strangers dropped unanswered (over the rate for
    /// strangers, or not on `[sip] allow`).
    pub sip_strangers_dropped: Counter,
}

const CHANNELS: [&str; 3] = ["phone", "email", "webhook"];
const RESULTS: [&str; 3] = ["delivered", "failed", "given_up"];

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            outcome_fine: Counter::default(),
            outcome_needs_contact: Counter::default(),
            outcome_no_response: Counter::default(),
            outcome_missed: Counter::default(),
            outcome_spoke: Counter::default(),
            outcome_not_attempted: Counter::default(),
            attempts: Counter::default(),
            retries_scheduled: Counter::default(),
            calls_admitted: Counter::default(),
            active_calls: Gauge::default(),
            checks_planned: Counter::default(),
            sip_retransmissions: Counter::default(),
            malformed_sip: Counter::default(),
            spoofed_sip: Counter::default(),
            rtp_sent: Counter::default(),
            rtp_received: Counter::default(),
            rtp_malformed: Counter::default(),
            rtp_unknown_source: Counter::default(),
            rtp_foreign: Counter::default(),
            rtp_relatched: Counter::default(),
            media_failures: Default::default(),
            dtmf_rfc4733: Counter::default(),
            dtmf_inband: Counter::default(),
            dtmf_info: Counter::default(),
            recovered_inflight: Counter::default(),
            leases_taken_over: Counter::default(),
            fenced_writes: Counter::default(),
            scheduler_lag: Latency::default(),
            storage_write: Latency::default(),
            rtp_send_lateness: Latency::default(),
            alerts_open: Gauge::default(),
            alerts_opened: Counter::default(),
            alerts_resolved: Counter::default(),
            alert_escalations: Counter::default(),
            time_to_ack: Latency::up_to_us(30 * 86_400 * 1_000_000),
            notifications: Default::default(),
            trunk_circuit: Gauge::default(),
            trunk_circuit_opened: Counter::default(),
            trunk_registered: {
                let g = Gauge::default();
                g.set(-1);
                g
            },
            trunk_registration_failures: Counter::default(),
            trunk_failovers: Counter::default(),
            inbound_calls: Counter::default(),
            trunk_targets_down: Gauge::default(),
            attempts_held: Counter::default(),
            api_connections_refused: Counter::default(),
            api_rate_limited: Counter::default(),
            sip_strangers_dropped: Counter::default(),
        }
    }
}

impl Metrics {
    /// Count a notification result on a channel.
    pub fn notification(&self, channel: genki_store::Channel, result: &str) {
        let c = CHANNELS.iter().position(|c| *c == channel.as_str());
        let r = RESULTS.iter().position(|r| *r == result);
        if let (Some(c), Some(r)) = (c, r) {
            self.notifications[c][r].inc();
        }
    }

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
                ("outcome=\"spoke\"", self.outcome_spoke.get()),
                (
                    "outcome=\"not_attempted\"",
                    self.outcome_not_attempted.get(),
                ),
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
            "genki_leases_taken_over_total",
            "Claims whose lease ran out with no call holding them (a dead or paused node's), re-queued.",
            &[("", self.leases_taken_over.get())],
        );
        c(
            "genki_fenced_writes_total",
            "Late writes of this node refused: another node had taken the check over while this one was paused.",
            &[("", self.fenced_writes.get())],
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
            "genki_sip_spoofed_total",
            "SIP messages carrying a live call's Call-ID refused as not from the call's peer (another source, or another branch).",
            &[("", self.spoofed_sip.get())],
        );
        c(
            "genki_sip_strangers_dropped_total",
            "SIP datagrams for no call dropped unanswered (not on [sip] allow, or over the strangers' rate).",
            &[("", self.sip_strangers_dropped.get())],
        );
        c(
            "genki_api_connections_refused_total",
            "API connections closed at once at the connection cap.",
            &[("", self.api_connections_refused.get())],
        );
        c(
            "genki_api_rate_limited_total",
            "API requests answered 429 (a caller over its rate).",
            &[("", self.api_rate_limited.get())],
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
            "genki_rtp_unknown_source_total",
            "RTP datagrams from addresses no call expects (dropped).",
            &[("", self.rtp_unknown_source.get())],
        );
        c(
            "genki_rtp_foreign_total",
            "RTP datagrams on a call's own port from a source the call does not accept (dropped).",
            &[("", self.rtp_foreign.get())],
        );
        c(
            "genki_rtp_relatched_total",
            "Calls whose media latched to another source than their SDP named.",
            &[("", self.rtp_relatched.get())],
        );
        let labels: Vec<(String, u64)> = MEDIA_FAILURES
            .iter()
            .zip(&self.media_failures)
            .map(|(f, c)| (format!("reason=\"{f}\""), c.get()))
            .collect();
        let refs: Vec<(&str, u64)> = labels.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        c(
            "genki_media_failures_total",
            "Calls genki ended for a media fault (retried as failed, never the person's silence).",
            &refs,
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
        c(
            "genki_alerts_opened_total",
            "Alert cases opened.",
            &[("", self.alerts_opened.get())],
        );
        c(
            "genki_alerts_resolved_total",
            "Alert cases closed (by a watcher or by a fine answer).",
            &[("", self.alerts_resolved.get())],
        );
        c(
            "genki_alert_escalations_total",
            "Times a case climbed to its next tier.",
            &[("", self.alert_escalations.get())],
        );
        let labels: Vec<(String, u64)> = CHANNELS
            .iter()
            .enumerate()
            .flat_map(|(ci, ch)| {
                RESULTS
                    .iter()
                    .enumerate()
                    .map(move |(ri, r)| (format!("channel=\"{ch}\",result=\"{r}\""), (ci, ri)))
            })
            .map(|(l, (ci, ri))| (l, self.notifications[ci][ri].get()))
            .collect();
        let refs: Vec<(&str, u64)> = labels.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        c(
            "genki_notifications_total",
            "Notification deliveries by channel and result.",
            &refs,
        );
        c(
            "genki_trunk_circuit_opened_total",
            "Times the trunk's circuit opened: the carrier failed most recent calls, dialling stopped (an outage).",
            &[("", self.trunk_circuit_opened.get())],
        );
        c(
            "genki_trunk_registration_failures_total",
            "REGISTERs to the trunk refused or unanswered (each is retried with back-off).",
            &[("", self.trunk_registration_failures.get())],
        );
        c(
            "genki_trunk_failovers_total",
            "Calls whose INVITE went on to the trunk's next target (no answer, unreachable, or 503 before ringing).",
            &[("", self.trunk_failovers.get())],
        );
        c(
            "genki_inbound_calls_total",
            "Calls to genki's own number (people calling back), answered with the check-in menu or, for unknown numbers, a message.",
            &[("", self.inbound_calls.get())],
        );
        c(
            "genki_attempts_held_total",
            "Attempts the carrier failed that were held: retried without counting against the person.",
            &[("", self.attempts_held.get())],
        );
        let _ = writeln!(o, "# HELP genki_trunk_circuit The trunk's circuit: 0 closed (dialling), 1 probing, 2 open (carrier failing, checks held).\n# TYPE genki_trunk_circuit gauge\ngenki_trunk_circuit {}", self.trunk_circuit.get());
        let _ = writeln!(o, "# HELP genki_trunk_targets_down Trunk targets whose last OPTIONS keep-alive went unanswered (calls try them last).\n# TYPE genki_trunk_targets_down gauge\ngenki_trunk_targets_down {}", self.trunk_targets_down.get());
        let _ = writeln!(o, "# HELP genki_trunk_registered The trunk's registration: 1 bound (calls go out), 0 not bound (nothing dialled through the trunk), -1 genki does not register.\n# TYPE genki_trunk_registered gauge\ngenki_trunk_registered {}", self.trunk_registered.get());
        let _ = writeln!(o, "# HELP genki_alerts_open Alert cases open or acknowledged, not yet resolved.\n# TYPE genki_alerts_open gauge\ngenki_alerts_open {}", self.alerts_open.get());
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
        self.rtp_send_lateness.render(
            &mut o,
            "genki_rtp_send_lateness_seconds",
            "How late RTP packets left against the 20 ms schedule (recorded at each call's end).",
        );
        self.time_to_ack.render(
            &mut o,
            "genki_alert_time_to_ack_seconds",
            "From a case opening to a watcher taking it.",
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
