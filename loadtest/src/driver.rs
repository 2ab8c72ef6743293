//! `genki-loadtest run`: the load driver. Against a running `genki serve`
//! it enrols N subscribers through the admin API, gives each a simulated
//! phone with a seeded behaviour (press 1 / 2 / nothing / a wrong key then
//! 1 / a slow key, DTMF by RFC 4733, in-band or SIP INFO, busy, no answer,
//! hang up mid-prompt, answer delays drawn from a range), makes every check
//! due at once (or spread over a window), runs the round, and then checks
//! genki's stored outcomes against the phones' ground truth: every
//! mismatch, missing or duplicate outcome is reported and fails the run.
//! The report (a table, or `--json`) gives hdrhistogram percentiles of the
//! run as both sides saw it, and genki's CPU time and peak RSS (from
//! /proc when `--genki-pid` is given).
//!
//! An outside peer: talks to genki over SIP/RTP (the phones, run in this
//! process) and HTTP only.
//!
//! Depends on: [`crate::phones`], reqwest, hdrhistogram, rand, tokio.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::phones::{self, Behaviour, CallRecord, DtmfMode, MediaShape, Mix, PhoneConfig, Profile};

/// Load driver settings.
#[derive(Debug, Clone, clap::Args)]
pub struct RunConfig {
    /// genki's admin API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Operator token (or set GENKI_TOKEN, or --token-file).
    #[arg(long, env = "GENKI_TOKEN", hide_env_values = true, default_value = "")]
    pub token: String,
    /// File holding the operator token (genki writes <data>/operator-token).
    #[arg(long)]
    pub token_file: Option<std::path::PathBuf>,
    /// Subscribers (calls) in the round.
    #[arg(long, default_value_t = 200)]
    pub calls: usize,
    /// Seed of the behaviour mix (the same seed gives the same population).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the simulated phones listen (SIP, UDP).
    #[arg(long, default_value = "127.0.0.1:5090")]
    pub phones: SocketAddr,
    /// First RTP port of the phones.
    #[arg(long, default_value_t = 30000)]
    pub rtp_base: u16,
    /// Every answering phone plays this WAV (8 kHz mono) from its answer
    /// on, e.g. a person saying はい from `scripts/make-corpus`: genki then
    /// hears a voice on every call (what listening costs).
    #[arg(long)]
    pub play: Option<std::path::PathBuf>,
    /// Spread the check requests evenly over this many seconds (0: all at once).
    #[arg(long, default_value_t = 0)]
    pub spread_s: u64,
    /// Capacity mode: everyone answers and presses 1 (RFC 4733) 8 s into
    /// the greeting, so every call carries media both ways for ~13 s.
    #[arg(long)]
    pub all_answer: bool,
    /// genki's process id, for its CPU time and peak RSS.
    #[arg(long)]
    pub genki_pid: Option<u32>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub max_seconds: u64,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// A behaviour of the mix: its name, weight, the outcome genki must store.
struct Kind {
    name: &'static str,
    weight: u32,
    expect: &'static str,
    profile: fn(&mut rand::rngs::StdRng) -> Profile,
}

fn answer(rng: &mut rand::rngs::StdRng, digits: &str, dtmf: DtmfMode) -> Profile {
    // Real peers' media: half declare a=ssrc on the phones' one address,
    // 30 % share it without a=ssrc (as sipp), 20 % name another address
    // in SDP than they send from (NAT, baresip).
    let media = match rng.gen_range(0..10) {
        0..=4 => MediaShape::Declared,
        5..=7 => MediaShape::Shared,
        _ => MediaShape::Elsewhere,
    };
    Profile {
        media,
        behaviour: Behaviour::Answer,
        answer_delay_ms: rng.gen_range(200..=3000),
        digits: digits.to_string(),
        digit_delay_ms: rng.gen_range(1000..=4000),
        inter_digit_ms: 300,
        digit_duration_ms: 120,
        dtmf,
        hangup_after_ms: 0,
    }
}

/// The mix. Weights are percentages; expectations follow the default script.
const MIX: &[Kind] = &[
    Kind {
        name: "press 1 (RFC 4733)",
        weight: 40,
        expect: "fine",
        profile: |r| answer(r, "1", DtmfMode::Rfc4733),
    },
    Kind {
        name: "press 1 (in-band)",
        weight: 10,
        expect: "fine",
        profile: |r| answer(r, "1", DtmfMode::Inband),
    },
    Kind {
        name: "press 1 (SIP INFO)",
        weight: 10,
        expect: "fine",
        profile: |r| answer(r, "1", DtmfMode::Info),
    },
    Kind {
        name: "press 2",
        weight: 10,
        expect: "needs_contact",
        profile: |r| answer(r, "2", DtmfMode::Rfc4733),
    },
    // 5 then, after the "invalid" prompt (2.3 s), 1 during the repeated greeting.
    Kind {
        name: "wrong key then 1",
        weight: 5,
        expect: "fine",
        profile: |r| Profile {
            inter_digit_ms: 3500,
            ..answer(r, "51", DtmfMode::Rfc4733)
        },
    },
    Kind {
        name: "slow key (11 s)",
        weight: 5,
        expect: "fine",
        profile: |r| Profile {
            digit_delay_ms: 11_000,
            ..answer(r, "1", DtmfMode::Rfc4733)
        },
    },
    Kind {
        name: "press nothing",
        weight: 5,
        expect: "no_response",
        profile: |r| answer(r, "", DtmfMode::Rfc4733),
    },
    Kind {
        name: "hang up mid-prompt",
        weight: 5,
        expect: "no_response",
        profile: |r| Profile {
            behaviour: Behaviour::Hangup,
            hangup_after_ms: 2000,
            ..answer(r, "", DtmfMode::Rfc4733)
        },
    },
    Kind {
        name: "busy",
        weight: 5,
        expect: "missed",
        profile: |r| Profile {
            behaviour: Behaviour::Busy,
            ..answer(r, "", DtmfMode::Rfc4733)
        },
    },
    Kind {
        name: "no answer",
        weight: 5,
        expect: "missed",
        profile: |r| Profile {
            behaviour: Behaviour::NoAnswer,
            ..answer(r, "", DtmfMode::Rfc4733)
        },
    },
];

/// The population: callee key → (kind index, profile).
fn population(n: usize, seed: u64, all_answer: bool) -> Vec<(usize, Profile)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let total: u32 = MIX.iter().map(|k| k.weight).sum();
    (0..n)
        .map(|_| {
            let k = if all_answer {
                // Capacity runs: press 1 at 8 s, inside the first greeting,
                // so every call holds media for ~13 s.
                return (
                    0,
                    Profile {
                        digit_delay_ms: 8000,
                        ..answer(&mut rng, "1", DtmfMode::Rfc4733)
                    },
                );
            } else {
                let mut x = rng.gen_range(0..total);
                MIX.iter()
                    .position(|k| {
                        if x < k.weight {
                            true
                        } else {
                            x -= k.weight;
                            false
                        }
                    })
                    .unwrap_or(0)
            };
            (k, (MIX[k].profile)(&mut rng))
        })
        .collect()
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
        ctype: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let mut r = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(60));
        if let Some(b) = body {
            r = r.header("Content-Type", ctype).body(b);
        }
        let resp = r.send().await.with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
    async fn want(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
        ctype: &str,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (s, v) = self.call(method.clone(), path, body, ctype).await?;
        if s != want {
            bail!("{method} {path}: status {s} (wanted {want}): {v}");
        }
        Ok(v)
    }
    async fn metrics(&self) -> HashMap<String, f64> {
        let Ok(r) = self
            .http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
        else {
            return HashMap::new();
        };
        r.text()
            .await
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                l.rsplit_once(' ')
                    .and_then(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            })
            .collect()
    }
}

/// CPU seconds (user + system) and peak RSS (KiB) of a process.
fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let tick = 100.0; // USER_HZ on Linux
    let cpu = (fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / tick;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    Some((cpu, hwm))
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds")
}

fn pcts(h: &Histogram<u64>, unit: f64) -> Value {
    if h.is_empty() {
        return json!(null);
    }
    json!({"n": h.len(), "p50": h.value_at_quantile(0.5) as f64 / unit, "p90": h.value_at_quantile(0.9) as f64 / unit,
           "p99": h.value_at_quantile(0.99) as f64 / unit, "max": h.max() as f64 / unit})
}

/// Run the load test and return its report (`ledger.ok` says whether
/// every outcome matched); Err when the run itself could not happen.
pub async fn run(cfg: RunConfig) -> anyhow::Result<Value> {
    let token = match (&cfg.token_file, cfg.token.is_empty()) {
        (Some(f), _) => std::fs::read_to_string(f)
            .with_context(|| format!("token file {}", f.display()))?
            .trim()
            .to_string(),
        (None, false) => cfg.token.clone(),
        (None, true) => bail!("give --token, GENKI_TOKEN or --token-file"),
    };
    let api = Api {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(16)
            .build()?,
        base: cfg.api.trim_end_matches('/').to_string(),
        token,
    };
    let pop = population(cfg.calls, cfg.seed, cfg.all_answer);
    let by_key: Arc<HashMap<String, Profile>> = Arc::new(
        pop.iter()
            .enumerate()
            .map(|(i, (_, p))| (format!("lt{i}"), p.clone()))
            .collect(),
    );
    let lookup = by_key.clone();
    let phone_cfg = PhoneConfig {
        listen: cfg.phones,
        behaviour: Behaviour::Answer,
        answer_delay_ms: 300,
        digits: "1".into(),
        digit_delay_ms: 1000,
        inter_digit_ms: 300,
        digit_duration_ms: 120,
        dtmf: DtmfMode::Rfc4733,
        media: MediaShape::Declared,
        hangup_after_ms: 1500,
        reject_status: 603,
        announce_ms: 3000,
        auth: None,
        auth_proxy: false,
        drop_first_invite: false,
        drop_first_bye: false,
        codec: phones::CodecArg::Pcmu,
        silent_ms: 40_000,
        max_call_ms: 120_000,
        calls: cfg.calls as u64,
        max_seconds: cfg.max_seconds,
        leak_to: None,
        json: false,
        rtp_base: cfg.rtp_base,
        socket_per_call: false,
        play: cfg.play.clone(),
        play_audio: None,
        mix: Mix(Some(Arc::new(move |user: &str| lookup.get(user).cloned()))),
    };
    let phones_task = tokio::spawn(phones::run(phone_cfg));
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A tenant callable at any hour, one attempt per check (the ledger
    // expects exactly one call per subscriber), trunk limits only.
    let tenant = json!({"name": format!("loadtest seed {}", cfg.seed), "window_start": "00:00", "window_end": "23:59",
        "skip_holidays": false, "retry": {"max_attempts": 1, "spacing_minutes": 1, "retry_no_answer": false, "retry_busy": false,
        "retry_failed": false, "retry_no_input": false, "carry_to_next_window": false}});
    let tid = api
        .want(
            reqwest::Method::POST,
            "/v1/tenants",
            Some(tenant.to_string()),
            "application/json",
            201,
        )
        .await?["id"]
        .as_u64()
        .context("tenant id")?;
    let mut csv = String::from("name,phone\n");
    for i in 0..cfg.calls {
        csv.push_str(&format!("lt{i},sip:lt{i}@{}\n", cfg.phones));
    }
    let imported = api
        .want(
            reqwest::Method::POST,
            &format!("/v1/tenants/{tid}/subscribers/import"),
            Some(csv),
            "text/csv",
            200,
        )
        .await?;
    let ids: Vec<u64> = imported["ids"]
        .as_array()
        .context("ids")?
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    if ids.len() != cfg.calls {
        bail!(
            "imported {} of {} subscribers: {}",
            ids.len(),
            cfg.calls,
            imported["errors"]
        );
    }
    let key_of: HashMap<u64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, _) in &pop {
        *counts.entry(MIX[*k].name).or_default() += 1;
    }
    eprintln!(
        "genki-loadtest: {} subscribers enrolled (tenant {tid}); the mix:",
        ids.len()
    );
    for (name, n) in &counts {
        eprintln!("  {n:>6}  {name}");
    }

    let m0 = api.metrics().await;
    let usage0 = cfg.genki_pid.and_then(proc_usage);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(cfg.max_seconds);
    // Requests: all at once (a few in flight together) or spread evenly.
    let mut requested_at: HashMap<u64, u64> = HashMap::new();
    let gap = if cfg.spread_s > 0 {
        Duration::from_secs_f64(cfg.spread_s as f64 / cfg.calls.max(1) as f64)
    } else {
        Duration::ZERO
    };
    let api = Arc::new(api);
    for chunk in ids.chunks(if gap.is_zero() { 32 } else { 1 }) {
        let mut set = tokio::task::JoinSet::new();
        for id in chunk {
            let (api, id) = (api.clone(), *id);
            set.spawn(async move {
                let at = phones::unix_ms();
                api.want(
                    reqwest::Method::POST,
                    &format!("/v1/subscribers/{id}/checks"),
                    None,
                    "",
                    202,
                )
                .await
                .map(|_| (id, at))
            });
        }
        while let Some(r) = set.join_next().await {
            let (id, at) = r??;
            requested_at.insert(id, at);
        }
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
    eprintln!(
        "genki-loadtest: {} checks requested in {:.1} s",
        requested_at.len(),
        started.elapsed().as_secs_f64()
    );

    // Progress until every check is done.
    let mut peak_active = 0f64;
    let mut api_read = hist();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t0 = Instant::now();
        let (st, s) = api
            .call(
                reqwest::Method::GET,
                &format!("/v1/tenants/{tid}/summary"),
                None,
                "",
            )
            .await?;
        api_read.record(t0.elapsed().as_micros() as u64).ok();
        // A subscriber read, the p99 the issue asks to stay under 50 ms during a round.
        let t0 = Instant::now();
        let _ = api
            .call(
                reqwest::Method::GET,
                &format!("/v1/subscribers/{}", ids[0]),
                None,
                "",
            )
            .await;
        api_read.record(t0.elapsed().as_micros() as u64).ok();
        let m = api.metrics().await;
        let active = m.get("genki_active_calls").copied().unwrap_or(0.0);
        peak_active = peak_active.max(active);
        let o = &s["outcomes"];
        eprintln!(
            "  [{:>4}s] in call {:>5} (peak {:>5}) | waiting {:>5} | fine {:>5} needs_contact {:>4} no_response {:>4} missed {:>4}",
            started.elapsed().as_secs(), active, peak_active, s["pending"], o["fine"], o["needs_contact"], o["no_response"], o["missed"]
        );
        if st == 200
            && s["pending"] == 0
            && s["in_progress"] == 0
            && s["total"].as_u64() == Some(cfg.calls as u64)
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the round did not finish within {} s", cfg.max_seconds);
        }
    }
    let round_s = started.elapsed().as_secs_f64();
    let usage1 = cfg.genki_pid.and_then(proc_usage);
    let m1 = api.metrics().await;
    let phones_report = match tokio::time::timeout(Duration::from_secs(30), phones_task).await {
        Ok(Ok(Ok(r))) => r,
        Ok(Ok(Err(e))) => bail!("phones failed: {e}"),
        _ => bail!("the phones did not report (a call never ended?)"),
    };
    let records: &[CallRecord] = &phones_report.records;
    let phones_lateness = &phones_report.send_lateness;
    let out = api
        .want(
            reqwest::Method::GET,
            &format!("/v1/tenants/{tid}/outcomes?from=0"),
            None,
            "",
            200,
        )
        .await?;

    // The ledger.
    let mut problems: Vec<String> = Vec::new();
    // Calls the network kept from being answered in time (the INVITE lost
    // until the phone could not answer before genki's ring timeout): the
    // phone was cancelled before its own answer time, and genki stored
    // `missed` — what the person saw. Counted, and bounded below.
    let mut cancelled_before_answer = 0usize;
    let mut stored: HashMap<u64, Vec<Value>> = HashMap::new();
    for item in out["items"].as_array().context("outcome items")? {
        if let Some(sid) = item["subscriber_id"].as_u64() {
            stored.entry(sid).or_default().push(item.clone());
        }
    }
    let mut calls_of: HashMap<&str, Vec<&CallRecord>> = HashMap::new();
    for r in records {
        calls_of.entry(r.callee.as_str()).or_default().push(r);
    }
    let mut digit_to_outcome = hist();
    for (sid, i) in &key_of {
        let key = format!("lt{i}");
        let kind = &MIX[pop[*i].0];
        match stored.get(sid).map(|v| v.as_slice()) {
            None | Some([]) => problems.push(format!("{key} ({}): no outcome stored", kind.name)),
            Some([one]) => {
                let phone = calls_of.get(key.as_str()).and_then(|c| c.first());
                let profile = &pop[*i].1;
                let missed_as_seen = one["outcome"] == "missed"
                    && phone.is_some_and(|c| {
                        !c.answered
                            && c.ended_by == "cancelled"
                            && c.ended_at_ms.is_some_and(|e| {
                                e.saturating_sub(c.invite_at_ms) < profile.answer_delay_ms
                            })
                    });
                if one["outcome"] != kind.expect && missed_as_seen {
                    cancelled_before_answer += 1;
                } else if one["outcome"] != kind.expect {
                    // What the phone saw, to tell genki's fault from the
                    // network's (a call the loss kept from being answered).
                    let seen = phone.map_or("no call reached the phone".to_string(), |c| {
                        format!(
                            "call {} final {:?} answered {} acked {} digits sent {:?} ended by {} INVITEs {} RTP sent {} received {}",
                            c.call_id,
                            c.final_status,
                            c.answered,
                            c.acked,
                            c.digits_sent,
                            c.ended_by,
                            c.invites_received,
                            c.rtp_sent,
                            c.rtp_received
                        )
                    });
                    problems.push(format!(
                        "{key} ({}): stored {} but the phone's profile expects {:?}; the phone: {seen}",
                        kind.name, one["outcome"], kind.expect
                    ));
                }
                if let (Some(p), Some(done)) = (
                    // From the deciding key (after a wrong key, the
                    // right one): from the first, a wrong key's re-prompt
                    // was counted as latency.
                    phone.and_then(|c| c.last_digit_at_ms),
                    one["finished_at_ms"].as_u64(),
                ) {
                    digit_to_outcome.record(done.saturating_sub(p) * 1000).ok();
                }
            }
            Some(many) => {
                problems.push(format!("{key}: {} outcomes stored (duplicate)", many.len()))
            }
        }
        let n = calls_of.get(key.as_str()).map(|c| c.len()).unwrap_or(0);
        if n != 1 {
            problems.push(format!(
                "{key} ({}): the phone saw {n} calls, expected 1",
                kind.name
            ));
        }
    }

    // Percentiles as the phones saw the run.
    let (mut dial, mut answer_rtp, mut inter_max) = (hist(), hist(), hist());
    // Answer → first RTP by how the phone's SDP described its media (genki
    // sends to the SDP's address until the call latches to the real source).
    let mut answer_rtp_by_media: std::collections::BTreeMap<String, Histogram<u64>> =
        Default::default();
    let mut gaps = 0u64;
    let mut rtp_in = 0u64;
    let mut invites: Vec<u64> = Vec::new();
    let mut spans: Vec<(u64, i32)> = Vec::new();
    let mut invite_retrans = 0u64;
    let mut bye_retrans = 0u64;
    for r in records {
        invites.push(r.invite_at_ms);
        spans.push((r.invite_at_ms, 1));
        spans.push((r.invite_at_ms + r.duration_ms, -1));
        invite_retrans += r.invites_received.saturating_sub(1) as u64;
        bye_retrans += r.byes_received.saturating_sub(1) as u64;
        if let Some(i) = r
            .callee
            .strip_prefix("lt")
            .and_then(|x| x.parse::<usize>().ok())
        {
            if let Some(req) = ids.get(i).and_then(|id| requested_at.get(id)) {
                dial.record(r.invite_at_ms.saturating_sub(*req) * 1000).ok();
            }
        }
        if let (Some(a), Some(f)) = (r.answered_at_ms, r.first_rtp_at_ms) {
            answer_rtp.record(f.saturating_sub(a) * 1000 + 1).ok();
            if let Some(p) = by_key.get(&r.callee) {
                let shape = serde_json::to_value(p.media)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                answer_rtp_by_media
                    .entry(shape)
                    .or_insert_with(hist)
                    .record(f.saturating_sub(a) * 1000 + 1)
                    .ok();
            }
        }
        if r.answered && r.acked {
            inter_max
                .record((r.rtp_interarrival_max_ms * 1000.0) as u64 + 1)
                .ok();
            gaps += r.rtp_gaps;
            rtp_in += r.rtp_received;
        }
    }
    invites.sort_unstable();
    spans.sort_unstable();
    let (mut cur, mut peak_conc) = (0i32, 0i32);
    for (_, d) in &spans {
        cur += d;
        peak_conc = peak_conc.max(cur);
    }
    let mut peak_cps = 0usize;
    let mut lo = 0;
    for hi in 0..invites.len() {
        while invites[hi] - invites[lo] >= 1000 {
            lo += 1;
        }
        peak_cps = peak_cps.max(hi - lo + 1);
    }
    let n_records = records.len();
    // Call-seconds the phones spent in answered calls (the unit the sipp
    // comparison divides CPU by).
    let answered_call_s: f64 = records
        .iter()
        .filter(|r| r.answered)
        .map(|r| r.duration_ms as f64 / 1000.0)
        .sum();
    let setup_span_s = match (invites.first(), invites.last()) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1000.0,
        _ => 0.0,
    };
    let delta = |k: &str| m1.get(k).copied().unwrap_or(0.0) - m0.get(k).copied().unwrap_or(0.0);
    let q = |k: &str| m1.get(k).copied();
    // A few under heavy loss; more is genki giving up too early, not the network.
    if cancelled_before_answer * 100 > cfg.calls.max(1) {
        problems.push(format!(
            "{cancelled_before_answer} calls cancelled before the phone's answer time (more than 1 %)"
        ));
    }
    let report = json!({
        "calls": cfg.calls,
        "seed": cfg.seed,
        "mix": counts,
        "round_s": round_s,
        "answered_call_s": answered_call_s,
        "ledger": {"ok": problems.is_empty(), "cancelled_before_answer": cancelled_before_answer, "problems": problems.len(), "first_problems": problems.iter().take(20).collect::<Vec<_>>()},
        "calls_set_up_per_s": {"mean": if setup_span_s > 0.0 { n_records as f64 / setup_span_s } else { 0.0 }, "peak_1s": peak_cps},
        "peak_concurrent_calls": {"phones": peak_conc, "genki_sampled": peak_active},
        "request_to_invite_ms": pcts(&dial, 1000.0),
        "answer_to_first_rtp_ms": pcts(&answer_rtp, 1000.0),
        "answer_to_first_rtp_ms_by_media": answer_rtp_by_media
            .iter()
            .map(|(k, h)| (k.clone(), pcts(h, 1000.0)))
            .collect::<serde_json::Map<String, Value>>(),
        "digit_to_outcome_stored_ms": pcts(&digit_to_outcome, 1000.0),
        "phones_send_lateness_ms": {"n": phones_lateness.count(),
            "p50": phones_lateness.quantile(0.5).as_secs_f64() * 1000.0,
            "p99": phones_lateness.quantile(0.99).as_secs_f64() * 1000.0,
            "p999": phones_lateness.quantile(0.999).as_secs_f64() * 1000.0},
        "genki_send_lateness_ms": {"p50": q("genki_rtp_send_lateness_seconds{quantile=\"0.5\"}").map(|v| v * 1000.0),
            "p99": q("genki_rtp_send_lateness_seconds{quantile=\"0.99\"}").map(|v| v * 1000.0),
            "p999": q("genki_rtp_send_lateness_seconds{quantile=\"0.999\"}").map(|v| v * 1000.0)},
        "rtp_from_genki": {"received": rtp_in, "gaps": gaps, "interarrival_max_ms_per_call": pcts(&inter_max, 1000.0)},
        "sip_retransmissions": {"genki_sent": delta("genki_sip_retransmissions_total"), "invites_seen_again": invite_retrans, "byes_seen_again": bye_retrans},
        "api_read_ms_during_round": pcts(&api_read, 1000.0),
        "genki": match (usage0, usage1) {
            (Some((c0, _)), Some((c1, hwm))) => json!({"cpu_s": c1 - c0, "peak_rss_mib": hwm as f64 / 1024.0,
                "cpu_ms_per_call": (c1 - c0) * 1000.0 / cfg.calls.max(1) as f64}),
            _ => json!(null),
        },
    });
    for p in problems.iter().take(20) {
        eprintln!("  ledger: {p}");
    }
    Ok(report)
}

/// The report as a table.
pub fn print_table(r: &Value) {
    println!(
        "genki load test: {} calls (seed {}), round {:.1} s, ledger {}",
        r["calls"],
        r["seed"],
        r["round_s"].as_f64().unwrap_or(0.0),
        if r["ledger"]["ok"] == true {
            "OK (every outcome matches the phones)"
        } else {
            "FAILED"
        }
    );
    let row = |name: &str, v: &Value| {
        if v.is_null() {
            println!("  {name:<34} -");
        } else {
            println!(
                "  {name:<34} p50 {:>8.2}  p90 {:>8.2}  p99 {:>8.2}  max {:>8.2}  (n={})",
                v["p50"].as_f64().unwrap_or(0.0),
                v["p90"].as_f64().unwrap_or(0.0),
                v["p99"].as_f64().unwrap_or(0.0),
                v["max"].as_f64().unwrap_or(0.0),
                v["n"]
            );
        }
    };
    println!(
        "  calls set up per second           mean {:.1}, peak in 1 s {}",
        r["calls_set_up_per_s"]["mean"].as_f64().unwrap_or(0.0),
        r["calls_set_up_per_s"]["peak_1s"]
    );
    println!(
        "  peak concurrent calls             {} (phones), {} (genki, sampled)",
        r["peak_concurrent_calls"]["phones"], r["peak_concurrent_calls"]["genki_sampled"]
    );
    row("request → INVITE at phone (ms)", &r["request_to_invite_ms"]);
    row("answer → first RTP (ms)", &r["answer_to_first_rtp_ms"]);
    row(
        "digit → outcome stored (ms)",
        &r["digit_to_outcome_stored_ms"],
    );
    row(
        "phones' send lateness p99/call (ms)",
        &r["phones_send_lateness_ms"]["per_call_p99"],
    );
    row(
        "genki→phone interarrival p99/call",
        &r["rtp_from_genki"]["interarrival_p99_ms_per_call"],
    );
    row(
        "API reads during the round (ms)",
        &r["api_read_ms_during_round"],
    );
    println!(
        "  genki send lateness (ms)          p50 {}  p99 {}  p99.9 {}",
        r["genki_send_lateness_ms"]["p50"],
        r["genki_send_lateness_ms"]["p99"],
        r["genki_send_lateness_ms"]["p999"]
    );
    println!(
        "  RTP from genki                    {} packets, {} gaps",
        r["rtp_from_genki"]["received"], r["rtp_from_genki"]["gaps"]
    );
    println!("  SIP retransmissions               genki sent {}, phones saw INVITE again {}, BYE again {}", r["sip_retransmissions"]["genki_sent"],
        r["sip_retransmissions"]["invites_seen_again"], r["sip_retransmissions"]["byes_seen_again"]);
    if r["genki"].is_null() {
        println!("  genki CPU / RSS                   (give --genki-pid)");
    } else {
        println!(
            "  genki CPU / peak RSS              {:.2} s ({:.2} ms per call), {:.1} MiB",
            r["genki"]["cpu_s"].as_f64().unwrap_or(0.0),
            r["genki"]["cpu_ms_per_call"].as_f64().unwrap_or(0.0),
            r["genki"]["peak_rss_mib"].as_f64().unwrap_or(0.0)
        );
    }
}
