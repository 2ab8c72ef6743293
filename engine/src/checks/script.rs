//! The watch-call script: a small declarative description (prompts,
//! digits, branches, outcomes) that an organisation can change without
//! code, and [`Flow`], the sans-IO machine that runs it on one call.
//!
//! A script is a set of named nodes. Entering a node sets its outcome (if
//! any), plays its prompts, then either gathers digits and branches on them
//! (`on`: a digit string, `"other"` for any other key, `"timeout"` when no
//! key came after the prompt was played `max_plays` times), follows `next`,
//! or hangs up. Barge-in: a key stops the prompt. Example, as JSON:
//!
//! ```json
//! {"start": "greeting", "nodes": {
//!   "greeting": {"play": ["greeting"], "gather": {"max_digits": 1, "timeout_s": 5, "max_plays": 3},
//!                "on": {"1": "fine", "2": "contact", "8": "pause", "other": "invalid", "timeout": "silent"}},
//!   "pause": {"play": ["thanks"], "outcome": "fine", "action": "pause_days:7", "hangup": true}, …}}
//! ```
//!
//! Depends on: genki-storage (the Outcome type), serde.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use genki_store::{Outcome, WatcherAnswer};

use crate::telephony::call::{Dialogue, FlowCmd};
use serde::{Deserialize, Serialize};

/// How many nodes one call may enter before it is ended as no_response
/// (guards against a script loop and a caller who keeps pressing wrong keys).
pub const MAX_STEPS: u32 = 24;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub start: String,
    pub nodes: BTreeMap<String, Node>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Prompt names, played in order.
    #[serde(default)]
    pub play: Vec<String>,
    #[serde(default)]
    pub gather: Option<Gather>,
    /// Branches after gathering: digits, "other", "timeout".
    #[serde(default)]
    pub on: BTreeMap<String, String>,
    /// Node to enter after playing, when there is no gather.
    #[serde(default)]
    pub next: Option<String>,
    /// Outcome recorded on entering this node.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// An action for the engine, e.g. "pause_days:7".
    #[serde(default)]
    pub action: Option<Action>,
    /// Hang up after playing.
    #[serde(default)]
    pub hangup: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Gather {
    #[serde(default = "one")]
    pub max_digits: usize,
    /// Seconds to wait for a key after the prompt finished.
    pub timeout_s: u64,
    /// Times the prompt is played before taking the "timeout" branch.
    #[serde(default = "one_u32")]
    pub max_plays: u32,
}

fn one() -> usize {
    1
}
fn one_u32() -> u32 {
    1
}

/// A script that cannot run: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScriptError {
    pub field: String,
    pub message: String,
}

impl Script {
    /// The default watch script of PRODUCT.md.
    pub fn default_watch() -> Script {
        let node = |play: &str, outcome: Option<Outcome>| Node {
            play: vec![play.to_string()],
            outcome,
            hangup: true,
            ..Default::default()
        };
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "greeting".to_string(),
            Node {
                play: vec!["greeting".into()],
                gather: Some(Gather {
                    max_digits: 1,
                    timeout_s: 5,
                    max_plays: 3,
                }),
                on: [
                    ("1", "fine"),
                    ("2", "contact"),
                    ("other", "invalid"),
                    ("timeout", "silent"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
                ..Default::default()
            },
        );
        nodes.insert(
            "invalid".to_string(),
            Node {
                play: vec!["invalid".into()],
                next: Some("greeting".into()),
                ..Default::default()
            },
        );
        nodes.insert("fine".to_string(), node("thanks", Some(Outcome::Fine)));
        nodes.insert(
            "contact".to_string(),
            node("will_contact", Some(Outcome::NeedsContact)),
        );
        nodes.insert(
            "silent".to_string(),
            node("goodbye_no_input", Some(Outcome::NoResponse)),
        );
        Script {
            start: "greeting".into(),
            nodes,
        }
    }

    /// Check references, gathers and prompt names (`prompt_exists`).
    pub fn validate(&self, prompt_exists: impl Fn(&str) -> bool) -> Result<(), ScriptError> {
        let e = |field: String, message: &str| {
            Err(ScriptError {
                field,
                message: message.to_string(),
            })
        };
        if !self.nodes.contains_key(&self.start) {
            return e("script.start".into(), "names no node");
        }
        for (name, n) in &self.nodes {
            let f = |k: &str| format!("script.nodes.{name}.{k}");
            for p in &n.play {
                if !prompt_exists(p) {
                    return e(f("play"), &format!("no prompt named {p:?}"));
                }
            }
            for (key, target) in
                n.on.iter()
                    .map(|(k, v)| (k.clone(), v))
                    .chain(n.next.iter().map(|v| ("next".to_string(), v)))
            {
                if !self.nodes.contains_key(target) {
                    return e(
                        f(&format!("on.{key}")),
                        &format!("names no node {target:?}"),
                    );
                }
            }
            if let Some(g) = &n.gather {
                if g.max_digits == 0
                    || g.max_digits > 16
                    || g.timeout_s == 0
                    || g.timeout_s > 120
                    || g.max_plays == 0
                    || g.max_plays > 10
                {
                    return e(
                        f("gather"),
                        "max_digits 1–16, timeout_s 1–120, max_plays 1–10",
                    );
                }
                for k in n.on.keys() {
                    if k != "other"
                        && k != "timeout"
                        && !k
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
                    {
                        return e(
                            f(&format!("on.{k}")),
                            "branch keys are digits, \"other\" or \"timeout\"",
                        );
                    }
                }
            } else if !n.on.is_empty() {
                return e(f("on"), "branches need a gather");
            }
            if n.gather.is_none() && n.next.is_none() && !n.hangup {
                return e(f("hangup"), "a node without gather or next must hang up");
            }
        }
        Ok(())
    }
}

/// What a script node asks of the engine besides the call itself. Written
/// as a word in scripts and never re-parsed after the script is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `pause_days:N`: the person is away; no checks for N days (1–365).
    PauseDays(u16),
    /// `alert:…`: a watcher's answer on an alert call
    /// (the watcher call script of `alerts::phone`).
    Alert(WatcherAnswer),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::PauseDays(d) => write!(f, "pause_days:{d}"),
            Action::Alert(a) => write!(f, "alert:{}", a.as_str()),
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // The answers a watcher script may end with (not "none": pressing
        // nothing is no action).
        let answer = |a: &str| match a.parse::<WatcherAnswer>() {
            Ok(
                w @ (WatcherAnswer::Ack
                | WatcherAnswer::Pass
                | WatcherAnswer::Resolve
                | WatcherAnswer::Heard),
            ) => Some(w),
            _ => None,
        };
        match s.split_once(':') {
            Some(("pause_days", d)) => match d.parse::<u16>() {
                Ok(d) if (1..=365).contains(&d) => Ok(Action::PauseDays(d)),
                _ => Err(format!("{s:?}: pause_days takes 1–365 days")),
            },
            Some(("alert", a)) if answer(a).is_some() => {
                Ok(Action::Alert(answer(a).unwrap_or(WatcherAnswer::Heard)))
            }
            _ => Err(format!(
                "unknown action {s:?}; known actions: pause_days:N (1–365), alert:ack|pass|resolve|heard"
            )),
        }
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One call running a script. Inputs: `start`, `on_play_finished`,
/// `on_digit`, `handle_timeout`; outputs: `poll_cmd`, `poll_timeout`.
#[derive(Debug)]
pub struct Flow {
    /// Shared: every call of a tenant runs the same script (built per
    /// call, it was ~2.5 KiB of each call's memory).
    script: std::sync::Arc<Script>,
    node: String,
    gathered: String,
    all_digits: String,
    plays: u32,
    playing: bool,
    deadline: Option<Instant>,
    outcome: Option<Outcome>,
    actions: Vec<Action>,
    steps: u32,
    cmds: VecDeque<FlowCmd>,
    done: bool,
}

impl Flow {
    pub fn new(script: impl Into<std::sync::Arc<Script>>) -> Flow {
        let script = script.into();
        Flow {
            node: script.start.clone(),
            script,
            gathered: String::new(),
            all_digits: String::new(),
            plays: 0,
            playing: false,
            deadline: None,
            outcome: None,
            actions: Vec::new(),
            steps: 0,
            cmds: VecDeque::new(),
            done: false,
        }
    }

    /// The call was answered: enter the start node.
    pub fn start(&mut self, now: Instant) {
        let start = self.script.start.clone();
        self.enter(&start, now);
    }

    fn node(&self) -> Option<&Node> {
        self.script.nodes.get(&self.node)
    }

    fn enter(&mut self, name: &str, now: Instant) {
        self.steps += 1;
        if self.steps > MAX_STEPS || !self.script.nodes.contains_key(name) {
            self.outcome.get_or_insert(Outcome::NoResponse);
            self.finish();
            return;
        }
        self.node = name.to_string();
        self.gathered.clear();
        self.plays = 0;
        self.deadline = None;
        let n = self.node().cloned().unwrap_or_default();
        if let Some(o) = n.outcome {
            self.outcome = Some(o);
        }
        if let Some(a) = n.action {
            self.actions.push(a);
        }
        if n.play.is_empty() {
            self.after_play(now);
        } else {
            self.plays = 1;
            self.playing = true;
            self.cmds.push_back(FlowCmd::Play(n.play));
        }
    }

    fn after_play(&mut self, now: Instant) {
        let Some(n) = self.node().cloned() else {
            return;
        };
        if let Some(g) = &n.gather {
            if self.gathered.is_empty() {
                self.deadline = Some(now + Duration::from_secs(g.timeout_s));
            }
        } else if n.hangup {
            self.finish();
        } else if let Some(next) = n.next {
            self.enter(&next, now);
        } else {
            self.finish();
        }
    }

    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.deadline = None;
            self.cmds.push_back(FlowCmd::Hangup);
        }
    }

    fn branch(&mut self, key: &str, now: Instant) {
        let n = self.node().cloned().unwrap_or_default();
        let target =
            n.on.get(key)
                .or_else(|| {
                    if key != "timeout" {
                        n.on.get("other")
                    } else {
                        None
                    }
                })
                .cloned();
        match target {
            Some(t) => self.enter(&t, now),
            None => {
                if key == "timeout" {
                    self.outcome.get_or_insert(Outcome::NoResponse);
                }
                self.finish();
            }
        }
    }

    /// The prompts asked for by the last Play have all been sent.
    pub fn on_play_finished(&mut self, now: Instant) {
        if self.done || !self.playing {
            return;
        }
        self.playing = false;
        self.after_play(now);
    }

    /// A key arrived.
    pub fn on_digit(&mut self, d: char, now: Instant) {
        if self.done {
            return;
        }
        self.all_digits.push(d);
        let Some(g) = self.node().and_then(|n| n.gather.clone()) else {
            return; // keys while a prompt without gather plays are ignored
        };
        if self.playing {
            self.playing = false;
            self.cmds.push_back(FlowCmd::StopPlayout);
        }
        self.gathered.push(d);
        if self.gathered.chars().count() >= g.max_digits {
            let key = self.gathered.clone();
            self.branch(&key, now);
        } else {
            self.deadline = Some(now + Duration::from_secs(g.timeout_s));
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.done || self.deadline.is_none_or(|d| now < d) {
            return;
        }
        self.deadline = None;
        let Some(g) = self.node().and_then(|n| n.gather.clone()) else {
            return;
        };
        if !self.gathered.is_empty() {
            let key = self.gathered.clone();
            self.branch(&key, now);
        } else if self.plays < g.max_plays {
            self.plays += 1;
            self.playing = true;
            let play = self.node().map(|n| n.play.clone()).unwrap_or_default();
            if play.is_empty() {
                self.after_play(now);
            } else {
                self.cmds.push_back(FlowCmd::Play(play));
            }
        } else {
            self.branch("timeout", now);
        }
    }

    pub fn poll_cmd(&mut self) -> Option<FlowCmd> {
        self.cmds.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// True when commands wait in [`poll_cmd`](Self::poll_cmd).
    pub fn has_cmd(&self) -> bool {
        !self.cmds.is_empty()
    }

    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// Every key pressed during the call, in order.
    pub fn digits(&self) -> &str {
        &self.all_digits
    }

    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl Dialogue for Flow {
    fn start(&mut self, now: Instant) {
        Flow::start(self, now)
    }
    fn on_digit(&mut self, d: char, now: Instant) {
        Flow::on_digit(self, d, now)
    }
    fn on_play_finished(&mut self, now: Instant) {
        Flow::on_play_finished(self, now)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Flow::handle_timeout(self, now)
    }
    fn poll_cmd(&mut self) -> Option<FlowCmd> {
        Flow::poll_cmd(self)
    }
    fn has_cmd(&self) -> bool {
        Flow::has_cmd(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Flow::poll_timeout(self)
    }
    fn outcome(&self) -> Option<Outcome> {
        Flow::outcome(self)
    }
    fn is_done(&self) -> bool {
        Flow::is_done(self)
    }
    fn digits(&self) -> &str {
        Flow::digits(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        script: Script,
        keys: &[(u64, char)],
        plays_take_ms: u64,
    ) -> (Option<Outcome>, Vec<FlowCmd>, String, u64) {
        let t0 = Instant::now();
        let mut f = Flow::new(script);
        f.start(t0);
        let mut now = t0;
        let mut log = vec![];
        let mut play_ends: Option<Instant> = None;
        let mut keys: VecDeque<(u64, char)> = keys.iter().copied().collect();
        for _ in 0..1000 {
            while let Some(c) = f.poll_cmd() {
                match &c {
                    FlowCmd::Play(_) => {
                        play_ends = Some(now + Duration::from_millis(plays_take_ms))
                    }
                    FlowCmd::StopPlayout => play_ends = None,
                    FlowCmd::Hangup => {}
                }
                log.push(c);
            }
            if f.is_done() {
                break;
            }
            let next_key = keys.front().map(|(ms, _)| t0 + Duration::from_millis(*ms));
            let next = [play_ends, f.poll_timeout(), next_key]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            now = next;
            if Some(now) == next_key {
                let (_, k) = keys.pop_front().unwrap();
                f.on_digit(k, now);
            } else if Some(now) == play_ends {
                play_ends = None;
                f.on_play_finished(now);
            } else {
                f.handle_timeout(now);
            }
        }
        let digits = f.digits().to_string();
        (f.outcome(), log, digits, (now - t0).as_millis() as u64)
    }

    fn plays(log: &[FlowCmd]) -> Vec<String> {
        log.iter()
            .filter_map(|c| match c {
                FlowCmd::Play(p) => Some(p.join("+")),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn press_1_is_fine_with_barge_in() {
        let (o, log, d, _) = run(Script::default_watch(), &[(2000, '1')], 9000);
        assert_eq!(o, Some(Outcome::Fine));
        assert_eq!(d, "1");
        assert_eq!(log[1], FlowCmd::StopPlayout, "the key stops the greeting");
        assert_eq!(plays(&log), vec!["greeting", "thanks"]);
        assert_eq!(log.last(), Some(&FlowCmd::Hangup));
    }

    #[test]
    fn press_2_needs_contact_and_wrong_key_replays() {
        let (o, log, d, _) = run(
            Script::default_watch(),
            &[(10_000, '5'), (14_000, '2')],
            3000,
        );
        assert_eq!(o, Some(Outcome::NeedsContact));
        assert_eq!(d, "52");
        assert_eq!(
            plays(&log),
            vec![
                "greeting",
                "greeting",
                "invalid",
                "greeting",
                "will_contact"
            ]
        );
    }

    #[test]
    fn silence_after_three_plays_is_no_response() {
        let (o, log, d, t) = run(Script::default_watch(), &[], 9000);
        assert_eq!(o, Some(Outcome::NoResponse));
        assert_eq!(d, "");
        assert_eq!(
            plays(&log),
            vec!["greeting", "greeting", "greeting", "goodbye_no_input"]
        );
        // 3 × (9 s prompt + 5 s wait) + 9 s goodbye.
        assert_eq!(t, 3 * 14_000 + 9000);
    }

    #[test]
    fn a_wrong_key_forever_ends_by_the_step_limit() {
        let keys: Vec<(u64, char)> = (0..100).map(|i| (1000 + i * 700, '7')).collect();
        let (o, _, _, _) = run(Script::default_watch(), &keys, 500);
        assert_eq!(o, Some(Outcome::NoResponse));
    }

    #[test]
    fn an_organisation_adds_8_pause() {
        let mut s = Script::default_watch();
        s.nodes
            .get_mut("greeting")
            .unwrap()
            .on
            .insert("8".into(), "pause".into());
        s.nodes.insert(
            "pause".into(),
            Node {
                play: vec!["thanks".into()],
                outcome: Some(Outcome::Fine),
                action: Some(Action::PauseDays(7)),
                hangup: true,
                ..Default::default()
            },
        );
        s.validate(|_| true).unwrap();
        let t0 = Instant::now();
        let mut f = Flow::new(s);
        f.start(t0);
        f.on_digit('8', t0);
        assert_eq!(f.actions(), [Action::PauseDays(7)]);
        assert_eq!(f.outcome(), Some(Outcome::Fine));
    }

    #[test]
    fn validation_names_the_field() {
        let known = |p: &str| {
            [
                "greeting",
                "thanks",
                "will_contact",
                "invalid",
                "goodbye_no_input",
            ]
            .contains(&p)
        };
        Script::default_watch().validate(known).unwrap();
        let mut s = Script::default_watch();
        s.start = "nope".into();
        assert_eq!(s.validate(known).unwrap_err().field, "script.start");
        let mut s = Script::default_watch();
        s.nodes.get_mut("fine").unwrap().play = vec!["missing".into()];
        assert_eq!(
            s.validate(known).unwrap_err().field,
            "script.nodes.fine.play"
        );
        let mut s = Script::default_watch();
        s.nodes
            .get_mut("greeting")
            .unwrap()
            .on
            .insert("1".into(), "ghost".into());
        assert_eq!(
            s.validate(known).unwrap_err().field,
            "script.nodes.greeting.on.1"
        );
        // An unknown action is refused when the script is read.
        let bad: Result<Script, _> = serde_json::from_str(
            r#"{"start":"a","nodes":{"a":{"hangup":true,"action":"explode"}}}"#,
        );
        assert!(bad.unwrap_err().to_string().contains("known actions"));
        let bad: Result<Script, _> = serde_json::from_str(
            r#"{"start":"a","nodes":{"a":{"hangup":true,"action":"pause_days:400"}}}"#,
        );
        assert!(bad.unwrap_err().to_string().contains("1–365"));
        for word in [
            "pause_days:7",
            "alert:ack",
            "alert:pass",
            "alert:resolve",
            "alert:heard",
        ] {
            let a: Action = word.parse().unwrap();
            assert_eq!(a.to_string(), word);
        }
        let bad: Result<Script, _> =
            serde_json::from_str(r#"{"start":"a","nodes":{"a":{"hangup":true,"colour":"red"}}}"#);
        assert!(bad.unwrap_err().to_string().contains("colour"));
    }
}
