//! Session timers (RFC 4028), sans-IO: the keep-alive a carrier puts on
//! a call so that a session whose ends vanished is torn down. Whoever the
//! `refresher` is sends a refresh (re-INVITE or UPDATE) before the
//! interval runs out; if none comes, the other side ends the call.
//!
//! A [`SessionTimer`] holds the negotiated interval and who refreshes,
//! and says when our refresh is due (half the interval, §7.4) or when the
//! session must be ended because the peer's did not come (§10: before
//! expiry, by the lesser of 32 s and a third of the interval). The UAC
//! ([`crate::uac`]) builds the requests and owns the transactions.
//!
//! Depends on: [`crate::message`]. Time is passed in.

use std::time::{Duration, Instant};

use crate::message::{header_param, Message};

/// The smallest interval a UA may ask for (§4: Min-SE defaults to 90 s).
pub const DEFAULT_MIN_SE: u32 = 90;

/// Who sends the refreshes of a session (the `refresher` parameter, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// genki refreshes.
    Us,
    /// The far end (or the proxy that asked for the timer) refreshes.
    Peer,
}

/// A `Session-Expires` value: delta-seconds and the `refresher`
/// parameter, when given (§4: `delta-seconds *(SEMI se-params)`).
pub fn parse_session_expires(value: &str) -> Option<(u32, Option<String>)> {
    let v = value.trim();
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let secs: u32 = v[..end].parse().ok()?;
    if secs == 0 {
        return None;
    }
    let refresher = header_param(v, "refresher").map(|r| r.trim().to_ascii_lowercase());
    Some((secs, refresher))
}

/// The `Min-SE` of a 422 (§4: delta-seconds).
pub fn parse_min_se(msg: &Message) -> Option<u32> {
    let v = msg.header("Min-SE")?.trim();
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    v[..end].parse().ok()
}

/// A running session timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTimer {
    pub interval: Duration,
    pub refresher: Refresher,
    /// When the interval started (the last refresh's 2xx).
    pub since: Instant,
}

impl SessionTimer {
    /// From a 2xx to a request of ours (INVITE, re-INVITE or UPDATE): we
    /// are the transaction's UAC, so `refresher=uac` means us (§7.2). A
    /// 2xx without Session-Expires means no timer (§7.2). A missing
    /// `refresher` (the UAS must send it, §9) is taken as us: refreshing
    /// needlessly costs one request, not refreshing costs the call.
    pub fn from_response(msg: &Message, now: Instant) -> Option<SessionTimer> {
        let (secs, who) = parse_session_expires(msg.header("Session-Expires")?)?;
        Some(SessionTimer {
            interval: Duration::from_secs(u64::from(secs)),
            refresher: match who.as_deref() {
                Some("uas") => Refresher::Peer,
                _ => Refresher::Us,
            },
            since: now,
        })
    }

    /// From a refresh the peer sent (it is the transaction's UAC): its
    /// `refresher=uac` is the peer itself; without one, we let the peer
    /// keep refreshing (§9: the UAS chooses, and `uac` is the choice that
    /// asks nothing new of either side). Returns the timer and the value
    /// of the `Session-Expires` our 2xx must carry (§9).
    pub fn from_request(msg: &Message, now: Instant) -> Option<(SessionTimer, String)> {
        let (secs, who) = parse_session_expires(msg.header("Session-Expires")?)?;
        let (refresher, word) = match who.as_deref() {
            Some("uas") => (Refresher::Us, "uas"),
            _ => (Refresher::Peer, "uac"),
        };
        Some((
            SessionTimer {
                interval: Duration::from_secs(u64::from(secs)),
                refresher,
                since: now,
            },
            format!("{secs};refresher={word}"),
        ))
    }

    /// When we must send a refresh (half the interval, §7.4), if we refresh.
    pub fn refresh_at(&self) -> Option<Instant> {
        (self.refresher == Refresher::Us).then(|| self.since + self.interval / 2)
    }

    /// When the session is over for want of a refresh: for the peer's,
    /// the interval less the lesser of 32 s and a third of it (§10); for
    /// ours (every refresh failed), the interval itself.
    pub fn expires_at(&self) -> Instant {
        match self.refresher {
            Refresher::Us => self.since + self.interval,
            Refresher::Peer => {
                let margin = Duration::from_secs(32).min(self.interval / 3);
                self.since + self.interval - margin
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(extra: &str) -> Message {
        Message::parse(
            format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn who_refreshes_and_when() {
        let now = Instant::now();
        let t = SessionTimer::from_response(&msg("Session-Expires: 30;refresher=uac\r\n"), now)
            .unwrap();
        assert_eq!(t.refresher, Refresher::Us);
        assert_eq!(t.refresh_at(), Some(now + Duration::from_secs(15)));
        let t = SessionTimer::from_response(&msg("Session-Expires: 90;refresher=uas\r\n"), now)
            .unwrap();
        assert_eq!(t.refresher, Refresher::Peer);
        assert_eq!(t.refresh_at(), None);
        assert_eq!(t.expires_at(), now + Duration::from_secs(60));
        let t = SessionTimer::from_response(&msg("Session-Expires: 1800\r\n"), now).unwrap();
        assert_eq!(t.refresher, Refresher::Us, "no refresher named: we refresh");
        assert!(SessionTimer::from_response(&msg(""), now).is_none());
        assert!(SessionTimer::from_response(&msg("Session-Expires: x\r\n"), now).is_none());
        assert!(SessionTimer::from_response(&msg("Session-Expires: 0\r\n"), now).is_none());
        // A refresh the peer sends: its `uac` is itself.
        let (t, echo) =
            SessionTimer::from_request(&msg("Session-Expires: 120;refresher=uac\r\n"), now)
                .unwrap();
        assert_eq!(t.refresher, Refresher::Peer);
        assert_eq!(echo, "120;refresher=uac");
        let (t, echo) =
            SessionTimer::from_request(&msg("Session-Expires: 120;refresher=uas\r\n"), now)
                .unwrap();
        assert_eq!(t.refresher, Refresher::Us);
        assert_eq!(echo, "120;refresher=uas");
        assert_eq!(parse_min_se(&msg("Min-SE: 180\r\n")), Some(180));
    }
}
