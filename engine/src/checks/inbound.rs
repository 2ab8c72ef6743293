//! Call-ins: a person rings genki's number back (they saw a missed call,
//! or they want to say they are well). A caller whose presented number is
//! a subscriber's hears the check-in menu; 1 (fine) or 2 (please contact
//! me) is recorded as a check of its own and settles their checks still
//! pending today ([`Service::check_in`]), so nobody calls them again and
//! an open case closes with the all-clear (or, for 2, opens). An unknown
//! caller hears a polite message, is logged (number redacted) and leaves no
//! record of anyone.
//!
//! Depends on: [`crate::checks::service`], [`crate::telephony::inbound`],
//! [`crate::telephony::call`], [`crate::telephony::context`], tokio.

use std::sync::Arc;

use genki_store::{Attempt, EndReason, Outcome};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::checks::service::Service;
use crate::telephony::call::{redacted, CallSetup};
use crate::telephony::endpoint::InboundCall;
use crate::telephony::inbound::{answer, caller_number, ring_for, RING_CHECKIN};

/// Take every call-in from `rx` until it closes, each on its own task.
pub async fn serve(
    svc: Arc<Service>,
    setup: Arc<CallSetup>,
    mut rx: mpsc::UnboundedReceiver<InboundCall>,
) {
    while let Some(call) = rx.recv().await {
        let (svc, setup) = (svc.clone(), setup.clone());
        tokio::spawn(async move { take(svc, setup, call).await });
    }
}

async fn take(svc: Arc<Service>, setup: Arc<CallSetup>, call: InboundCall) {
    let number = caller_number(&call.invite);
    let who = {
        let (svc, number) = (svc.clone(), number.clone());
        crate::rt::blocking(move || svc.identify(&number))
    };
    let who = match who {
        Ok(w) => w,
        Err(e) => {
            // Storage down: still answer, as a stranger would be (nothing
            // to record anyway), and say so.
            warn!(error = %e, "call-in: cannot look the caller up");
            None
        }
    };
    let prompts = match &who {
        Some(s) => svc
            .calls
            .prompts_for(s.tenant_id)
            .unwrap_or_else(|_| svc.calls.default_prompts()),
        None => svc.calls.default_prompts(),
    };
    let shown = redacted(&format!("sip:{number}@caller"));
    match &who {
        Some(s) => info!(subscriber = s.id, "call-in from a subscriber"),
        None => warn!(from = %shown, "call-in from an unknown number: the message, no record"),
    }
    svc.metrics.inbound_calls.inc();
    let mut call = call;
    let started = svc.clock.now_ms();
    // The tenant's people may check in by ringing and hanging up.
    let by_ringing = who.as_ref().is_some_and(|s| {
        svc.store
            .tenant(s.tenant_id)
            .ok()
            .flatten()
            .is_some_and(|t| t.checkin_by_ringing)
    });
    if let (true, Some(s)) = (by_ringing, &who) {
        if ring_for(&setup, &mut call, RING_CHECKIN).await {
            let attempt = Attempt {
                n: 1,
                call_id: call.call_id.clone(),
                started_at_ms: started,
                sip_status: Some(487),
                end_reason: EndReason::NoAnswer,
                outcome: Some(Outcome::Fine),
                inbound: true,
                ..Default::default()
            };
            let (svc, s) = (svc.clone(), s.clone());
            match crate::rt::blocking(move || svc.check_in(&s, Outcome::Fine, &attempt)) {
                Ok(id) => info!(check = %id, "check-in by ringing recorded"),
                Err(e) => warn!(error = %e, "check-in by ringing not recorded"),
            }
            return;
        }
    }
    let r = answer(&setup, call, who.is_some(), &prompts, started).await;
    let (Some(s), Some(key)) = (who, r.key) else {
        return;
    };
    let outcome = if key == '1' {
        Outcome::Fine
    } else {
        Outcome::NeedsContact
    };
    let mut attempt = r.attempt;
    attempt.outcome = Some(outcome);
    let done = crate::rt::blocking(move || svc.check_in(&s, outcome, &attempt));
    match done {
        Ok(id) => info!(check = %id, outcome = outcome.as_str(), "call-in recorded"),
        Err(e) => warn!(error = %e, "call-in not recorded"),
    }
}
