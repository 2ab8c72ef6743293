//! The contract between a call and the conversation on it: the
//! [`Dialogue`] a call drives (sans-IO: events and instants in, commands
//! out) and the [`FlowCmd`]s it asks of the call. Its own file, with no
//! dependency but the records, so that the watch script's flow can be
//! built and fuzzed without the daemon around it (fuzz/).
//!
//! Depends on: genki-store (records), std.

use genki_store::{Attempt, Outcome};

/// What the flow asks of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowCmd {
    /// Play these prompts in order (after whatever is queued).
    Play(Vec<String>),
    /// Barge-in: stop the prompt now.
    StopPlayout,
    /// Hang up; the flow is over.
    Hangup,
}

/// The conversation on an answered call, sans-IO: what to play, when to
/// hang up, what the person's keys mean. [`run_call`] drives it with the
/// call's events; the watch script (`crate::checks::script::Flow`) is the
/// one genki runs, defined above this folder so that placing a call does
/// not depend on the planner's vocabulary.
pub trait Dialogue: Send {
    /// The call was answered.
    fn start(&mut self, now: std::time::Instant);
    /// A key arrived (once, whatever its transport).
    fn on_digit(&mut self, d: char, now: std::time::Instant);
    /// Every prompt asked for by the last `Play` has been sent.
    fn on_play_finished(&mut self, now: std::time::Instant);
    fn handle_timeout(&mut self, now: std::time::Instant);
    fn poll_cmd(&mut self) -> Option<FlowCmd>;
    fn has_cmd(&self) -> bool;
    fn poll_timeout(&self) -> Option<std::time::Instant>;
    /// The outcome reached so far.
    fn outcome(&self) -> Option<Outcome>;
    /// The dialogue ran to its end (it asked to hang up).
    fn is_done(&self) -> bool;
    /// Every key pressed, in order.
    fn digits(&self) -> &str;
    /// The dialogue reached its outcome; `attempt` is the call so far
    /// (answered, its keys and their transport, the outcome; no end reason
    /// yet). Called once, so that the outcome can be stored at the key
    /// rather than when the call ends.
    fn reached(&mut self, attempt: &Attempt) {
        let _ = attempt;
    }
}
