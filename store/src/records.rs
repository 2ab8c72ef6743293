//! The records genki keeps, their keys and their on-disk encoding.
//!
//! Every value starts with a format byte ([`FORMAT`]) followed by JSON, so a
//! later release can read old records and migrate them; keys are big-endian
//! so that RocksDB's byte order is time or id order.
//!
//! Depends on: serde. Knows nothing of SIP.

use std::fmt;
use std::str::FromStr;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::vocab::{AnsweredBy, Cause, CheckKind, DtmfTransport, EndReason};
use crate::StoreError;

/// Format byte of every record written by this release.
pub const FORMAT: u8 = 1;

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    encode_into(&mut out, v);
    out
}

/// [`encode`] appended to `out` (a batch's buffer: no allocation of its own).
pub(crate) fn encode_into<T: Serialize>(out: &mut Vec<u8>, v: &T) {
    out.push(FORMAT);
    // Serialising our own plain structs cannot fail.
    serde_json::to_writer(&mut *out, v).expect("records serialise");
}

pub(crate) fn decode<T: DeserializeOwned>(cf: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => serde_json::from_slice(rest).map_err(|e| StoreError::Corrupt {
            cf,
            reason: e.to_string(),
        }),
        Some((v, _)) => Err(StoreError::UnknownFormat { cf, format: *v }),
        None => Err(StoreError::Corrupt {
            cf,
            reason: "empty record".into(),
        }),
    }
}

/// An organisation that runs watch calls (NPO, municipal office…).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    pub id: u64,
    pub name: String,
    /// IANA time zone of the tenant's schedules and calling window.
    pub time_zone: String,
    /// Calls are placed only between these local times ("HH:MM", end exclusive).
    pub window_start: String,
    pub window_end: String,
    /// Skip Japanese public holidays.
    pub skip_holidays: bool,
    pub retry: RetryPolicy,
    /// Calls per second this tenant may start (None: trunk limit only).
    pub cps: Option<f64>,
    /// Concurrent calls this tenant may have (None: trunk limit only).
    pub max_calls: Option<u32>,
    /// The tenant's call script (engine-defined JSON); None: the default.
    pub script: Option<serde_json::Value>,
    /// When a bad outcome becomes an alert case and how urgent it is.
    #[serde(default)]
    pub alerts: AlertRules,
    pub created_at_ms: u64,
    /// Days a finished check (its attempts, keys, causes) and a resolved
    /// alert case are kept; then they are forgotten and only anonymous
    /// counts stay (APPI: personal data kept no longer than needed).
    /// None: kept until the person is erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// The operator's dial plan for this tenant: when set, a phone number
    /// must begin with one of these prefixes (e.g. `["0", "+81"]` without
    /// premium-rate ranges) to be enrolled or dialled. None: any number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dial_allow: Option<Vec<String>>,
    /// The number presented when calling this tenant's people (set by the
    /// operator: the trunk must own it). None: the trunk's `caller_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_id: Option<String>,
    /// Seconds of the person's audio kept after each prompt (and during
    /// it: people answer over it), for a coordinator to listen to (0:
    /// none, the default; at most 15). Kept as
    /// files beside the data, never in the database; erased with the
    /// person and pruned after 30 days.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub record_answers_s: u32,
    /// Listen after the answer before the first prompt (who answered: a
    /// call recorder, a machine…). None: the daemon's `[sip] answer_wait`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_first: Option<bool>,
    /// A person who calls genki and hangs up while it still rings (the
    /// "ring twice and hang up" habit) has checked in: recorded `fine`.
    /// Off by default (the tenant's choice: a presented number is all it
    /// rests on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub checkin_by_ringing: bool,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl Tenant {
    /// A tenant with the defaults a new organisation gets: Asia/Tokyo,
    /// calls 08:00–20:00, Japanese holidays skipped, the default retry
    /// policy, trunk limits only, the default script. The id is assigned on create.
    pub fn with_defaults(name: &str, created_at_ms: u64) -> Tenant {
        Tenant {
            id: 0,
            name: name.to_string(),
            time_zone: "Asia/Tokyo".into(),
            window_start: "08:00".into(),
            window_end: "20:00".into(),
            skip_holidays: true,
            retry: RetryPolicy::default(),
            cps: None,
            max_calls: None,
            script: None,
            alerts: AlertRules::default(),
            created_at_ms,
            retention_days: None,
            dial_allow: None,
            caller_id: None,
            record_answers_s: 0,
            listen_first: None,
            checkin_by_ringing: false,
        }
    }
}

/// A tenant's alert rules (PRODUCT.md: who hears about a bad outcome).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertRules {
    /// Outcomes that open (or add to) a case.
    pub open_on: Vec<Outcome>,
    /// Outcomes that make a case urgent at once (answered but silent).
    pub urgent_on: Vec<Outcome>,
    /// A case is urgent once it holds `missed` on this many consecutive
    /// local days (the rule municipalities use before a home visit); 0: never.
    pub urgent_after_missed_days: u32,
    /// Urgent cases reach watchers during their quiet hours.
    pub urgent_skips_quiet_hours: bool,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            open_on: vec![
                Outcome::Missed,
                Outcome::NeedsContact,
                Outcome::NoResponse,
                Outcome::Spoke,
            ],
            urgent_on: vec![Outcome::NoResponse],
            urgent_after_missed_days: 2,
            urgent_skips_quiet_hours: true,
        }
    }
}

/// How a check is retried when a call does not reach the person.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Minutes between attempts.
    pub spacing_minutes: u32,
    pub retry_no_answer: bool,
    pub retry_busy: bool,
    pub retry_failed: bool,
    /// Retry when answered but no key was pressed.
    pub retry_no_input: bool,
    /// A retry that would fall outside the calling window moves to the next
    /// window (true) or the check ends as missed (false).
    pub carry_to_next_window: bool,
    /// Answered, a voice heard after the prompt, no key (`spoke`). Not
    /// written when it is the default (records keep their bytes).
    #[serde(default, skip_serializing_if = "SpokePolicy::is_default")]
    pub on_spoke: SpokePolicy,
}

/// What an answer with a voice but no key becomes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SpokePolicy {
    /// Call again while attempts remain (the person may press next time);
    /// then `spoke`.
    #[default]
    Retry,
    /// `spoke` at once: a coordinator reviews (a case opens, not urgent).
    Review,
    /// A voice counts as `fine` (the tenant's choice, e.g. for people who
    /// cannot press keys); the attempt keeps what was heard as evidence.
    Fine,
}

impl SpokePolicy {
    pub fn is_default(&self) -> bool {
        *self == SpokePolicy::Retry
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            spacing_minutes: 15,
            retry_no_answer: true,
            retry_busy: true,
            retry_failed: true,
            retry_no_input: false,
            carry_to_next_window: false,
            on_spoke: SpokePolicy::Retry,
        }
    }
}

/// When a subscriber is called: days of the week and times of day, local time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    /// ISO weekdays, 1 = Monday … 7 = Sunday.
    pub days: Vec<u8>,
    /// "HH:MM" local times.
    pub times: Vec<String>,
}

/// A person who is called.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subscriber {
    pub id: u64,
    pub tenant_id: u64,
    pub name: String,
    /// A SIP URI, or a number the trunk dials.
    pub phone: String,
    pub schedule: Option<Schedule>,
    /// No calls until this local date (YYYY-MM-DD), inclusive.
    pub paused_until: Option<String>,
    pub notes: String,
    pub created_at_ms: u64,
}

/// The final result of a check (PRODUCT.md "One watch call").
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Outcome {
    /// Pressed 1.
    Fine,
    /// Pressed 2: someone must call back.
    NeedsContact,
    /// Answered but no key after the prompt was repeated: urgent.
    NoResponse,
    /// Never reached after all attempts.
    Missed,
    /// Answered, and a voice was heard after the prompt, but no key: the
    /// person (or someone) is there and did not confirm they are well —
    /// someone who cannot press keys (a rotary phone), or presses late.
    /// Not urgent; the tenant's `retry.on_spoke` decides what it becomes.
    Spoke,
    /// Not called at all: the person was paused or removed before the
    /// check ran (the cause says which). Never an alert.
    NotAttempted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Fine => "fine",
            Outcome::NeedsContact => "needs_contact",
            Outcome::NoResponse => "no_response",
            Outcome::Missed => "missed",
            Outcome::Spoke => "spoke",
            Outcome::NotAttempted => "not_attempted",
        }
    }
    pub const ALL: [Outcome; 6] = [
        Outcome::Fine,
        Outcome::NeedsContact,
        Outcome::NoResponse,
        Outcome::Missed,
        Outcome::Spoke,
        Outcome::NotAttempted,
    ];
}

/// Where a check is in its life.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CheckStatus {
    /// Waiting in the due index for its time.
    Pending,
    /// Claimed by a dialer (owner + lease); a call is being placed or is up.
    Dialing,
    /// Final outcome written; never changes again.
    Done,
}

/// Stable identity of a check: the subscriber and the slot it is for
/// (a scheduled time, or the instant a one-off check was requested).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckId {
    pub subscriber_id: u64,
    pub kind: CheckKind,
    /// Unix seconds of the scheduled slot ([`CheckKind::Scheduled`]), or
    /// unix ms of the request ([`CheckKind::OneOff`]).
    pub slot: u64,
}

impl CheckId {
    pub fn scheduled(subscriber_id: u64, slot_unix_s: u64) -> CheckId {
        CheckId {
            subscriber_id,
            kind: CheckKind::Scheduled,
            slot: slot_unix_s,
        }
    }
    pub fn one_off(subscriber_id: u64, requested_ms: u64) -> CheckId {
        CheckId {
            subscriber_id,
            kind: CheckKind::OneOff,
            slot: requested_ms,
        }
    }
    /// The check's time on the tenant's time line (unix ms): the scheduled
    /// slot, or the instant a one-off was requested.
    pub fn time_ms(&self) -> u64 {
        if self.kind == CheckKind::Scheduled {
            self.slot.saturating_mul(1000)
        } else {
            self.slot
        }
    }
    /// 17-byte big-endian key.
    pub fn key(&self) -> [u8; 17] {
        let mut k = [0u8; 17];
        k[..8].copy_from_slice(&self.subscriber_id.to_be_bytes());
        k[8] = self.kind.byte();
        k[9..].copy_from_slice(&self.slot.to_be_bytes());
        k
    }
    pub fn from_key(k: &[u8]) -> Option<CheckId> {
        if k.len() != 17 {
            return None;
        }
        Some(CheckId {
            subscriber_id: u64::from_be_bytes(k[..8].try_into().ok()?),
            kind: CheckKind::from_byte(k[8])?,
            slot: u64::from_be_bytes(k[9..].try_into().ok()?),
        })
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}{}",
            self.subscriber_id,
            self.kind.byte() as char,
            self.slot
        )
    }
}

impl FromStr for CheckId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (sub, rest) = s.split_once('-').ok_or(())?;
        let kind = CheckKind::from_byte(*rest.as_bytes().first().ok_or(())?).ok_or(())?;
        Ok(CheckId {
            subscriber_id: sub.parse().map_err(|_| ())?,
            kind,
            slot: rest[1..].parse().map_err(|_| ())?,
        })
    }
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CheckId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|_| serde::de::Error::custom(format!("bad check id {s:?}")))
    }
}

/// One scheduled welfare check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Check {
    pub id: CheckId,
    pub tenant_id: u64,
    /// When the next attempt is due (unix ms).
    pub due_at_ms: u64,
    pub status: CheckStatus,
    /// Attempts made so far.
    pub attempts: u32,
    pub outcome: Option<Outcome>,
    /// Why the last attempt did not reach the person (no_answer, busy, …).
    pub last_cause: Option<Cause>,
    /// Who holds the claim while Dialing, and until when (unix ms).
    pub owner: Option<String>,
    pub lease_until_ms: Option<u64>,
    pub created_at_ms: u64,
    pub finished_at_ms: Option<u64>,
}

impl Check {
    /// A new Pending check, due at `due_at_ms`, nothing attempted yet.
    pub fn pending(id: CheckId, tenant_id: u64, due_at_ms: u64, created_at_ms: u64) -> Check {
        Check {
            id,
            tenant_id,
            due_at_ms,
            status: CheckStatus::Pending,
            attempts: 0,
            outcome: None,
            last_cause: None,
            owner: None,
            lease_until_ms: None,
            created_at_ms,
            finished_at_ms: None,
        }
    }
}

/// One call placed for a check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    pub n: u32,
    pub call_id: String,
    pub started_at_ms: u64,
    pub answered: bool,
    pub sip_status: Option<u16>,
    pub ring_ms: u64,
    pub talk_ms: u64,
    pub digits: String,
    pub dtmf_transport: Option<DtmfTransport>,
    /// How the call ended; the empty word while it is in progress.
    pub end_reason: EndReason,
    /// The outcome this attempt produced, if it produced one.
    pub outcome: Option<Outcome>,
    /// The carrier failed this attempt while it was failing for everyone
    /// (or for the first time on this check): the attempt does not count
    /// against the person's retries. Absent (false) in older records.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// Milliseconds of early media heard before the final response (an
    /// announcement played as 183 with SDP), kept beside the data as
    /// `audio/<check>-<n>-early.wav` for classification. Absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_media_ms: Option<u64>,
    /// Who answered, as genki heard it (absent: not answered, or an older
    /// record). Evidence for coordinators, never the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<AnsweredBy>,
    /// What the verdict rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hearing: Option<Hearing>,
    /// Milliseconds of the person's audio kept after the prompts
    /// (`audio/<check>-<n>-answer.wav`; the tenant's `record_answers_s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_ms: Option<u64>,
    /// The person called genki (a call-in after a missed check), not
    /// genki the person. Absent (false) for genki's own calls.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inbound: bool,
}

/// What genki heard after an answer (times in ms from the answer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hearing {
    /// The first sound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_sound_ms: Option<u32>,
    /// Voice before the first prompt, and in how many runs (words).
    pub greeting_ms: u32,
    pub words: u32,
    /// A call recorder's ringback heard after the answer.
    pub ringback_ms: u32,
    /// When the first prompt started: the wait the person had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_at_ms: Option<u32>,
    /// Voice heard after the prompt started (a person who speaks).
    pub spoke_ms: u32,
    /// Times the script started again when a recorder's ringback was
    /// heard late and the person then lifted the handset.
    pub restarts: u32,
    /// The first tones heard: frequency, start, length.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tones: Vec<HeardTone>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeardTone {
    pub hz: u16,
    pub at_ms: u32,
    pub ms: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_ids_round_trip_and_sort_by_subscriber_then_slot() {
        let a = CheckId::scheduled(7, 1_795_000_000);
        assert_eq!(a.to_string(), "7-s1795000000");
        assert_eq!("7-s1795000000".parse::<CheckId>(), Ok(a));
        assert_eq!(CheckId::from_key(&a.key()), Some(a));
        assert!(a.key() < CheckId::scheduled(7, 1_795_000_001).key());
        assert!(a.key() < CheckId::scheduled(8, 0).key());
        for bad in ["", "7", "7-x1", "x-s1", "7-s", "7-s-1"] {
            assert!(bad.parse::<CheckId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn records_carry_a_format_byte() {
        let o = Outcome::Fine;
        let b = encode(&o);
        assert_eq!(b[0], FORMAT);
        assert_eq!(decode::<Outcome>("t", &b).unwrap(), o);
        assert!(matches!(
            decode::<Outcome>("t", &[9, b'1']),
            Err(StoreError::UnknownFormat { format: 9, .. })
        ));
        assert!(matches!(
            decode::<Outcome>("t", &[]),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
