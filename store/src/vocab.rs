//! The words genki stores: why a person was not reached ([`Cause`]), how a
//! call ended ([`EndReason`]), how a key arrived ([`DtmfTransport`]), what
//! kind a check is ([`CheckKind`]), what a watcher answered
//! ([`WatcherAnswer`]) and the steps of an alert case's
//! timeline ([`EventKind`]). One typed enum each, with the serde names the
//! records and the API have always used (tests/golden/ proves the bytes
//! did not change), so no string is compared or re-parsed anywhere else.
//!
//! A value a later release may add ([`Cause`], [`EndReason`], [`EventKind`])
//! decodes into `Other` and is written back verbatim: reading a record never
//! fails on a word this release does not know, and nothing stored is lost.
//!
//! Depends on: serde.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Serde through `as_str`/`FromStr`, for the enums that keep unknown words.
macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Ok(s.parse()
                    .unwrap_or_else(|e: std::convert::Infallible| match e {}))
            }
        }
    };
}

/// Why an attempt did not reach the person, or why a check ended without
/// hearing them: decides the retry policy ([`crate::RetryPolicy`]) and what
/// coordinators read in `last_cause`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cause {
    /// Rang out, was cancelled, or 480/408/487.
    NoAnswer,
    /// 486 Busy Here or 600 Busy Everywhere.
    Busy,
    /// Anything else that is not the person's doing: a rejection, a media
    /// fault of genki's, an isolated carrier fault that repeated.
    Failed,
    /// The carrier failed (5xx from the trunk, no response at all, an
    /// unreachable first hop, trunk credentials refused): the call never
    /// reached the person's phone. Such an attempt is held — it does not
    /// count against the person's retries — and a check the carrier kept
    /// from being called ends `not_attempted`, never an alert.
    Carrier,
    /// Answered, but no key before the script ended or the line dropped.
    NoInput,
    /// genki stopped mid-call; the check was dialled again after restart.
    Interrupted,
    /// The calling window closed before the check could be dialled.
    OutsideWindow,
    /// The person was deleted while their check was pending.
    SubscriberDeleted,
    /// The person is paused (away): the check was not called.
    Paused,
    /// The person's schedule changed after the check was planned and no
    /// longer has its slot: the check was not called.
    Rescheduled,
    /// The person's phone is one the operator does not let genki dial (a
    /// SIP URI where `[trunk] uri_phones` forbids them, or a number outside
    /// the tenant's dial plan); nothing was dialled, nobody alerted.
    NotAllowed,
    /// The network says the number does not exist or is wrong (404 Not
    /// Found, 410 Gone, 484 Address Incomplete, 604 Does Not Exist
    /// Anywhere; RFC 3261 §21.4, §21.6): not retried, the check ends
    /// `not_attempted` — the coordinator must fix the number; the
    /// person's watchers are not alerted about a wrong number.
    InvalidNumber,
    /// The person's line or its network refused genki's call (403
    /// Forbidden, 433 Anonymity Disallowed — RFC 5079, 603 Decline; the
    /// attempt's end reason has the code): retried as a failure (433,
    /// which only the presented number fixes, is not), and a check that
    /// ends on it is `not_attempted` — the coordinator's to act on (a
    /// blocked caller, call barring), not the person's silence.
    Rejected,
    /// Answered, a voice was heard after the prompt, but no key pressed.
    Spoke,
    /// An answering machine or voicemail took the call (heard: a long
    /// greeting, a beep): the person did not answer; retried like no
    /// answer, and never `fine`.
    Machine,
    /// The network answered with an announcement (special information
    /// tones, a busy tone) instead of the person: retried, and a check
    /// that ends on it is `not_attempted`, never an alert.
    Announcement,
    /// A fax machine answers this number: not retried, the check ends
    /// `not_attempted` — the coordinator must fix the number.
    Fax,
    /// A word this release does not know (kept verbatim).
    Other(String),
}

impl Cause {
    pub fn as_str(&self) -> &str {
        match self {
            Cause::NoAnswer => "no_answer",
            Cause::Busy => "busy",
            Cause::Failed => "failed",
            Cause::Carrier => "carrier",
            Cause::NoInput => "no_input",
            Cause::Interrupted => "interrupted",
            Cause::OutsideWindow => "outside_window",
            Cause::SubscriberDeleted => "subscriber_deleted",
            Cause::Paused => "paused",
            Cause::Rescheduled => "rescheduled",
            Cause::NotAllowed => "not_allowed",
            Cause::InvalidNumber => "invalid_number",
            Cause::Rejected => "rejected",
            Cause::Spoke => "spoke",
            Cause::Machine => "machine",
            Cause::Announcement => "announcement",
            Cause::Fax => "fax",
            Cause::Other(s) => s,
        }
    }
}

impl FromStr for Cause {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "no_answer" => Cause::NoAnswer,
            "busy" => Cause::Busy,
            "failed" => Cause::Failed,
            "carrier" => Cause::Carrier,
            "no_input" => Cause::NoInput,
            "interrupted" => Cause::Interrupted,
            "outside_window" => Cause::OutsideWindow,
            "subscriber_deleted" => Cause::SubscriberDeleted,
            "paused" => Cause::Paused,
            "rescheduled" => Cause::Rescheduled,
            "not_allowed" => Cause::NotAllowed,
            "invalid_number" => Cause::InvalidNumber,
            "rejected" => Cause::Rejected,
            "spoke" => Cause::Spoke,
            "machine" => Cause::Machine,
            "announcement" => Cause::Announcement,
            "fax" => Cause::Fax,
            other => Cause::Other(other.to_string()),
        })
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
string_serde!(Cause);

/// How one call ended, as its attempt records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The script ran to its end and genki hung up.
    ScriptDone,
    /// The callee sent BYE.
    RemoteBye,
    /// genki sent BYE before the script's end (it never does today but an
    /// older release wrote it).
    Hangup,
    /// Rang out (CANCEL), or 480/408/487.
    NoAnswer,
    /// A final 3xx–6xx response other than an auth failure: `rejected:<status>`.
    Rejected(u16),
    /// A 401/407 that could not be answered or was answered wrongly:
    /// `auth_failed:<status>`.
    AuthFailed(u16),
    /// No response at all to the INVITE (Timer B, RFC 3261 §17.1.1.2).
    Timeout,
    /// An ICMP error for the first hop (§8.1.3.1).
    Unreachable,
    /// The SDP answer had no codec genki speaks.
    NoCommonCodec,
    /// The SDP answer's media address is one genki does not send to
    /// (unspecified, multicast, or of narrower reach than the peer).
    MediaAddressRefused,
    /// The call's RTP port or worker could not be set up.
    MediaSetupFailed,
    /// No RTP arrived after the answer.
    NoMedia,
    /// RTP stopped mid-call.
    MediaStopped,
    /// The hard limit on a call's length was reached.
    MaxCallLength,
    /// The session timer ran out (RFC 4028 §10): the carrier's refresh
    /// never came, or ours failed; genki hung up.
    SessionExpired,
    /// genki stopped mid-call.
    Interrupted,
    /// The person's SIP URI could not be resolved.
    Unresolvable,
    /// The person's SIP URI does not make a valid request.
    InvalidTarget,
    /// The person was deleted before the call; nothing was dialled.
    SubscriberDeleted,
    /// The person was paused before the call; nothing was dialled.
    Paused,
    /// The person's schedule no longer has the slot; nothing was dialled.
    Rescheduled,
    /// The trunk requires registration and genki's binding did not hold:
    /// nothing was dialled (the carrier would refuse it). A carrier fault.
    Unregistered,
    /// genki heard an answering machine, left its message (if the tenant
    /// has one) and hung up.
    Machine,
    /// genki heard a network announcement (special information tones, a
    /// busy tone) after the answer and hung up.
    Announcement,
    /// genki heard a fax machine and hung up.
    Fax,
    /// A call recorder rang the person's handset and nobody lifted it
    /// before genki gave up (the person's no-answer).
    NotLifted,
    /// A word this release does not know (kept verbatim).
    Other(String),
}

/// The word of an attempt whose end is not known yet: empty, as the
/// records have always had it.
impl Default for EndReason {
    fn default() -> Self {
        EndReason::Other(String::new())
    }
}

impl EndReason {
    /// True when genki or the network ended the call, not the callee or the
    /// script: such an attempt is never taken for the person's silence.
    pub fn is_system(&self) -> bool {
        matches!(
            self,
            EndReason::MediaSetupFailed
                | EndReason::NoMedia
                | EndReason::MediaStopped
                | EndReason::MaxCallLength
                | EndReason::SessionExpired
                | EndReason::NoCommonCodec
                | EndReason::MediaAddressRefused
                | EndReason::Interrupted
        )
    }
}

impl EndReason {
    /// True when the path to the person failed, not the person: a 500,
    /// 502, 503 or 504 (RFC 3261 §21.5: the server, a gateway, or the
    /// service failed), no response at all to the INVITE (Timer B,
    /// §17.1.1.2), an ICMP error from the first hop (§8.1.3.1), or trunk
    /// credentials refused (§22). A 408 or 480 is the far end's answer
    /// (nobody picked up) and stays the person's.
    pub fn is_carrier_fault(&self) -> bool {
        matches!(
            self,
            EndReason::Rejected(500 | 502 | 503 | 504)
                | EndReason::Timeout
                | EndReason::Unreachable
                | EndReason::AuthFailed(_)
                | EndReason::Unregistered
        )
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            EndReason::ScriptDone => "script_done",
            EndReason::RemoteBye => "remote_bye",
            EndReason::Hangup => "hangup",
            EndReason::NoAnswer => "no_answer",
            EndReason::Rejected(s) => return write!(f, "rejected:{s}"),
            EndReason::AuthFailed(s) => return write!(f, "auth_failed:{s}"),
            EndReason::Timeout => "timeout",
            EndReason::Unreachable => "unreachable",
            EndReason::NoCommonCodec => "no_common_codec",
            EndReason::MediaAddressRefused => "media_address_refused",
            EndReason::MediaSetupFailed => "media_setup_failed",
            EndReason::NoMedia => "no_media",
            EndReason::MediaStopped => "media_stopped",
            EndReason::MaxCallLength => "max_call_length",
            EndReason::SessionExpired => "session_expired",
            EndReason::Interrupted => "interrupted",
            EndReason::Unresolvable => "unresolvable",
            EndReason::InvalidTarget => "invalid_target",
            EndReason::SubscriberDeleted => "subscriber_deleted",
            EndReason::Paused => "paused",
            EndReason::Rescheduled => "rescheduled",
            EndReason::Unregistered => "unregistered",
            EndReason::Machine => "machine",
            EndReason::Announcement => "announcement",
            EndReason::Fax => "fax",
            EndReason::NotLifted => "not_lifted",
            EndReason::Other(s) => s,
        };
        f.write_str(s)
    }
}

impl FromStr for EndReason {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let status = |p: &str| p.parse::<u16>().ok().filter(|c| (100..700).contains(c));
        Ok(match s {
            "script_done" => EndReason::ScriptDone,
            "remote_bye" => EndReason::RemoteBye,
            "hangup" => EndReason::Hangup,
            "no_answer" => EndReason::NoAnswer,
            "timeout" => EndReason::Timeout,
            "unreachable" => EndReason::Unreachable,
            "no_common_codec" => EndReason::NoCommonCodec,
            "media_address_refused" => EndReason::MediaAddressRefused,
            "media_setup_failed" => EndReason::MediaSetupFailed,
            "no_media" => EndReason::NoMedia,
            "media_stopped" => EndReason::MediaStopped,
            "max_call_length" => EndReason::MaxCallLength,
            "session_expired" => EndReason::SessionExpired,
            "interrupted" => EndReason::Interrupted,
            "unresolvable" => EndReason::Unresolvable,
            "invalid_target" => EndReason::InvalidTarget,
            "subscriber_deleted" => EndReason::SubscriberDeleted,
            "paused" => EndReason::Paused,
            "rescheduled" => EndReason::Rescheduled,
            "unregistered" => EndReason::Unregistered,
            "machine" => EndReason::Machine,
            "announcement" => EndReason::Announcement,
            "fax" => EndReason::Fax,
            "not_lifted" => EndReason::NotLifted,
            other => match other.split_once(':') {
                Some(("rejected", c)) if status(c).is_some() => {
                    EndReason::Rejected(status(c).unwrap_or_default())
                }
                Some(("auth_failed", c)) if status(c).is_some() => {
                    EndReason::AuthFailed(status(c).unwrap_or_default())
                }
                _ => EndReason::Other(other.to_string()),
            },
        })
    }
}
string_serde!(EndReason);

/// How a key reached genki.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DtmfTransport {
    /// RFC 4733 telephone-events in the RTP stream.
    Rfc4733,
    /// Tones in the audio, found by the Goertzel detector.
    Inband,
    /// A SIP INFO request (application/dtmf-relay or application/dtmf).
    Info,
}

impl DtmfTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfTransport::Rfc4733 => "rfc4733",
            DtmfTransport::Inband => "inband",
            DtmfTransport::Info => "info",
        }
    }
}

/// What a watcher answered on an alert call (a notification's
/// `response`, and the watcher script's `alert:<answer>` actions).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WatcherAnswer {
    /// Pressed 1: "I'll go" — takes the case.
    Ack,
    /// Pressed 2: "I can't" — the ladder moves on.
    Pass,
    /// Pressed 3: "they are safe" — closes the case.
    Resolve,
    /// Heard the all-clear (a script action; never stored as a response).
    Heard,
    /// Answered but pressed nothing the menu knows.
    Nothing,
    /// A word this release does not know (kept verbatim).
    Other(String),
}

impl WatcherAnswer {
    pub fn as_str(&self) -> &str {
        match self {
            WatcherAnswer::Ack => "ack",
            WatcherAnswer::Pass => "pass",
            WatcherAnswer::Resolve => "resolve",
            WatcherAnswer::Heard => "heard",
            WatcherAnswer::Nothing => "none",
            WatcherAnswer::Other(s) => s,
        }
    }
}

impl FromStr for WatcherAnswer {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "ack" => WatcherAnswer::Ack,
            "pass" => WatcherAnswer::Pass,
            "resolve" => WatcherAnswer::Resolve,
            "heard" => WatcherAnswer::Heard,
            "none" => WatcherAnswer::Nothing,
            other => WatcherAnswer::Other(other.to_string()),
        })
    }
}

impl fmt::Display for WatcherAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
string_serde!(WatcherAnswer);

/// What a check is for; it decides what [`crate::CheckId::slot`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckKind {
    /// A slot of the person's schedule: `slot` is unix **seconds** of the
    /// scheduled local time (one check per slot, however often planned).
    Scheduled,
    /// Requested through the API: `slot` is unix **milliseconds** of the
    /// request (two requests never share an id).
    OneOff,
}

impl CheckKind {
    /// The byte in a check's key and the letter in its id (`7-s1795000000`).
    pub fn byte(self) -> u8 {
        match self {
            CheckKind::Scheduled => b's',
            CheckKind::OneOff => b'o',
        }
    }
    pub fn from_byte(b: u8) -> Option<CheckKind> {
        match b {
            b's' => Some(CheckKind::Scheduled),
            b'o' => Some(CheckKind::OneOff),
            _ => None,
        }
    }
}

/// One kind of step in an alert case's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The case was opened by a bad outcome.
    Opened,
    /// Another bad outcome joined the open case.
    Outcome,
    /// The case's severity changed (urgency rules).
    Severity,
    /// The ladder moved to a tier.
    Tier,
    /// A notification was put in the outbox.
    NotificationQueued,
    Delivered,
    Failed,
    GivenUp,
    Cancelled,
    /// A watcher took the case.
    Acknowledged,
    /// A watcher passed it on.
    Passed,
    Resolved,
    /// Every tier was tried and nobody took it.
    LadderExhausted,
    /// No watcher is set for the person or the tenant.
    NoLadder,
    /// A ladder names a watcher that no longer exists.
    WatcherMissing,
    AllClearQueued,
    /// A word this release does not know (kept verbatim).
    Other(String),
}

impl EventKind {
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::Opened => "opened",
            EventKind::Outcome => "outcome",
            EventKind::Severity => "severity",
            EventKind::Tier => "tier",
            EventKind::NotificationQueued => "notification_queued",
            EventKind::Delivered => "delivered",
            EventKind::Failed => "failed",
            EventKind::GivenUp => "given_up",
            EventKind::Cancelled => "cancelled",
            EventKind::Acknowledged => "acknowledged",
            EventKind::Passed => "passed",
            EventKind::Resolved => "resolved",
            EventKind::LadderExhausted => "ladder_exhausted",
            EventKind::NoLadder => "no_ladder",
            EventKind::WatcherMissing => "watcher_missing",
            EventKind::AllClearQueued => "all_clear_queued",
            EventKind::Other(s) => s,
        }
    }
    const KNOWN: [EventKind; 16] = [
        EventKind::Opened,
        EventKind::Outcome,
        EventKind::Severity,
        EventKind::Tier,
        EventKind::NotificationQueued,
        EventKind::Delivered,
        EventKind::Failed,
        EventKind::GivenUp,
        EventKind::Cancelled,
        EventKind::Acknowledged,
        EventKind::Passed,
        EventKind::Resolved,
        EventKind::LadderExhausted,
        EventKind::NoLadder,
        EventKind::WatcherMissing,
        EventKind::AllClearQueued,
    ];
}

impl FromStr for EventKind {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(EventKind::KNOWN
            .iter()
            .find(|k| k.as_str() == s)
            .cloned()
            .unwrap_or_else(|| EventKind::Other(s.to_string())))
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
string_serde!(EventKind);

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug>(
        v: T,
        json: &str,
    ) {
        assert_eq!(serde_json::to_string(&v).unwrap(), json);
        assert_eq!(serde_json::from_str::<T>(json).unwrap(), v);
    }

    #[test]
    fn words_are_the_stored_ones() {
        round_trip(Cause::NoAnswer, r#""no_answer""#);
        round_trip(Cause::SubscriberDeleted, r#""subscriber_deleted""#);
        round_trip(EndReason::Rejected(486), r#""rejected:486""#);
        round_trip(EndReason::AuthFailed(407), r#""auth_failed:407""#);
        round_trip(EndReason::MaxCallLength, r#""max_call_length""#);
        round_trip(DtmfTransport::Rfc4733, r#""rfc4733""#);
        round_trip(EventKind::NotificationQueued, r#""notification_queued""#);
        round_trip(WatcherAnswer::Nothing, r#""none""#);
        round_trip(WatcherAnswer::Ack, r#""ack""#);
        for k in EventKind::KNOWN {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), k);
        }
    }

    #[test]
    fn unknown_words_are_kept_verbatim() {
        round_trip(Cause::Other("carrier_down".into()), r#""carrier_down""#);
        round_trip(EndReason::Other("digits".into()), r#""digits""#);
        round_trip(EndReason::Other("rejected:abc".into()), r#""rejected:abc""#);
        round_trip(EndReason::Other("rejected:99".into()), r#""rejected:99""#);
        round_trip(EventKind::Other("sms_sent".into()), r#""sms_sent""#);
        assert!(serde_json::from_str::<DtmfTransport>(r#""smoke""#).is_err());
    }

    #[test]
    fn check_kinds_are_one_byte() {
        for k in [CheckKind::Scheduled, CheckKind::OneOff] {
            assert_eq!(CheckKind::from_byte(k.byte()), Some(k));
        }
        assert_eq!(CheckKind::from_byte(b'x'), None);
    }
}

/// OpenAPI schemas of the words kept as strings (their serde is by hand).
#[cfg(feature = "openapi")]
mod openapi_schemas {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    use utoipa::openapi::RefOr;

    macro_rules! string_schema {
        ($t:ty, $desc:expr) => {
            impl utoipa::PartialSchema for $t {
                fn schema() -> RefOr<Schema> {
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some($desc))
                        .into()
                }
            }
            impl utoipa::ToSchema for $t {}
        };
    }

    string_schema!(
        super::Cause,
        "no_answer, busy, failed, carrier, no_input, interrupted, outside_window, subscriber_deleted, paused, rescheduled, not_allowed, invalid_number, rejected, machine, announcement, fax"
    );
    string_schema!(
        super::EndReason,
        "script_done, remote_bye, hangup, no_answer, rejected:<status>, auth_failed:<status>, timeout, unreachable, no_common_codec, media_setup_failed, no_media, media_stopped, max_call_length, interrupted, unresolvable, invalid_target, subscriber_deleted, paused, rescheduled, unregistered, session_expired, media_address_refused, machine, announcement, fax, not_lifted"
    );
    string_schema!(
        super::EventKind,
        "opened, outcome, severity, tier, notification_queued, delivered, failed, given_up, cancelled, acknowledged, passed, resolved, ladder_exhausted, no_ladder, watcher_missing, all_clear_queued"
    );
    string_schema!(super::WatcherAnswer, "ack, pass, resolve, none");
    string_schema!(
        super::AnsweredBy,
        "human, recorder, machine, announcement, fax, silence, unknown"
    );
    string_schema!(
        crate::records::CheckId,
        "<subscriber id>-s<slot unix seconds> (scheduled) or <subscriber id>-o<request unix ms> (one-off)"
    );
}

/// Who answered a call, as genki heard it (issue 14): evidence beside the
/// outcome, never the outcome itself (`fine` needs the person's key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AnsweredBy {
    Human,
    /// An anti-fraud call recorder: an announcement, then ringback until
    /// the person lifted the handset.
    Recorder,
    /// An answering machine or voicemail.
    Machine,
    /// A network announcement (special information tones, a busy tone).
    Announcement,
    Fax,
    /// Nothing was heard before the prompt.
    Silence,
    Unknown,
    /// A word this release does not know (kept verbatim).
    Other(String),
}

impl AnsweredBy {
    pub fn as_str(&self) -> &str {
        match self {
            AnsweredBy::Human => "human",
            AnsweredBy::Recorder => "recorder",
            AnsweredBy::Machine => "machine",
            AnsweredBy::Announcement => "announcement",
            AnsweredBy::Fax => "fax",
            AnsweredBy::Silence => "silence",
            AnsweredBy::Unknown => "unknown",
            AnsweredBy::Other(s) => s,
        }
    }
}

impl FromStr for AnsweredBy {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "human" => AnsweredBy::Human,
            "recorder" => AnsweredBy::Recorder,
            "machine" => AnsweredBy::Machine,
            "announcement" => AnsweredBy::Announcement,
            "fax" => AnsweredBy::Fax,
            "silence" => AnsweredBy::Silence,
            "unknown" => AnsweredBy::Unknown,
            other => AnsweredBy::Other(other.to_string()),
        })
    }
}

impl fmt::Display for AnsweredBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
string_serde!(AnsweredBy);
