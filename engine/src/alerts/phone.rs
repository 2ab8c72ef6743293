//! Watcher calls: genki calls the watcher with its own SIP/RTP and plays
//! who has not answered; the watcher presses 1 to take the case, 2 to pass
//! it on, 3 when they already know the person is safe (or hears the
//! all-clear).
//!
//! Depends on: [`crate::telephony`] (placing the call), [`crate::checks::script`]
//! (the watcher's script), [`crate::clock`], genki-store records, [`super::delivery`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use genki_media::Prompt;
use genki_store::{
    AlertCase, Cause, EndReason, Notification, NotifyKind, Outcome, Watcher, WatcherAnswer,
};
use tracing::warn;

use super::delivery::{failed, Delivery};
use crate::checks::script::{Action, Flow, Gather, Node, Script};
use crate::clock::Clock;
use crate::telephony::context::CallContext;

/// The script of a call to a watcher: who has not answered, then 1 take /
/// 2 pass / 3 safe; or the all-clear message alone.
pub fn watcher_script(kind: NotifyKind, name_prompt: Option<&str>) -> Script {
    let mut nodes = BTreeMap::new();
    let end = |play: &str, answer: WatcherAnswer| Node {
        play: vec![play.to_string()],
        outcome: Some(Outcome::Fine),
        action: Some(Action::Alert(answer)),
        hangup: true,
        ..Default::default()
    };
    if kind == NotifyKind::AllClear {
        nodes.insert("clear".to_string(), end("all_clear", WatcherAnswer::Heard));
        return Script {
            start: "clear".into(),
            nodes,
        };
    }
    // One node, so a key pressed during any part of the message counts
    // (barge-in); a repeat plays the whole message again.
    let mut play = vec!["watcher_alert".to_string()];
    if let Some(p) = name_prompt {
        play.push(p.to_string());
    }
    play.push("watcher_menu".to_string());
    nodes.insert(
        "menu".to_string(),
        Node {
            play,
            gather: Some(Gather {
                max_digits: 1,
                timeout_s: 6,
                max_plays: 2,
            }),
            on: [
                ("1", "take"),
                ("2", "pass"),
                ("3", "safe"),
                ("other", "menu"),
                ("timeout", "none"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..Default::default()
        },
    );
    nodes.insert("take".to_string(), end("alert_taken", WatcherAnswer::Ack));
    nodes.insert("pass".to_string(), end("alert_passed", WatcherAnswer::Pass));
    nodes.insert(
        "safe".to_string(),
        end("alert_resolved", WatcherAnswer::Resolve),
    );
    nodes.insert(
        "none".to_string(),
        Node {
            hangup: true,
            ..Default::default()
        },
    );
    Script {
        start: "menu".into(),
        nodes,
    }
}

/// Call the watcher and hear their answer.
pub async fn call(
    calls: &CallContext,
    clock: &dyn Clock,
    n: &Notification,
    case: &AlertCase,
    w: &Watcher,
) -> Delivery {
    let Some(phone) = &w.phone else {
        return failed("the watcher has no phone", false);
    };
    if !calls.may_dial(phone) {
        return failed(
            "the watcher's phone is a SIP URI, which the operator does not allow",
            false,
        );
    }
    let prompts: Arc<HashMap<String, Prompt>> = match calls.prompts_for(case.tenant_id) {
        Ok(p) => p,
        Err(e) => return failed(format!("storage: {e}"), true),
    };
    let name_prompt = format!("name-{}", case.subscriber_id);
    let script = watcher_script(
        n.kind,
        prompts
            .contains_key(&name_prompt)
            .then_some(name_prompt.as_str()),
    );
    let to = calls.dial_uri(phone);
    let mut flow = Flow::new(script);
    let r = calls
        .placer
        .place(
            crate::telephony::call::Dial {
                to: &to,
                caller_id: calls.caller_id_of(case.tenant_id).as_deref(),
                keep_as: None,
                record_s: 0,
                listen_first: None,
            },
            n.tries,
            clock.now_ms(),
            &mut flow,
            &prompts,
        )
        .await;
    if !r.attempt.answered {
        let cause = r.cause.unwrap_or(Cause::Failed);
        if matches!(
            r.attempt.end_reason,
            EndReason::InvalidTarget | EndReason::Unresolvable
        ) {
            warn!(
                watcher = w.id,
                to = %crate::telephony::call::redacted(&to),
                "watcher's phone cannot be dialled"
            );
        }
        return failed(format!("{cause} ({})", r.attempt.end_reason), true);
    }
    let response = flow
        .actions()
        .iter()
        .find_map(|a| match a {
            Action::Alert(
                a @ (WatcherAnswer::Ack | WatcherAnswer::Pass | WatcherAnswer::Resolve),
            ) => Some(a.clone()),
            _ => None,
        })
        .unwrap_or(WatcherAnswer::Nothing);
    Delivery::Delivered {
        response: (n.kind != NotifyKind::AllClear).then_some(response),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watcher_scripts_are_valid_and_map_keys_to_answers() {
        let names = [
            "watcher_alert",
            "watcher_menu",
            "alert_taken",
            "alert_passed",
            "alert_resolved",
            "all_clear",
            "name-7",
        ];
        for s in [
            watcher_script(NotifyKind::Alert, None),
            watcher_script(NotifyKind::Urgent, Some("name-7")),
            watcher_script(NotifyKind::AllClear, None),
        ] {
            s.validate(|p| names.contains(&p)).unwrap();
        }
        let s = watcher_script(NotifyKind::Alert, None);
        let word = |n: &str| s.nodes[n].action.as_ref().map(|a| a.to_string());
        assert_eq!(word("take").as_deref(), Some("alert:ack"));
        assert_eq!(word("pass").as_deref(), Some("alert:pass"));
        assert_eq!(word("safe").as_deref(), Some("alert:resolve"));
    }
}
