//! Retention: once an hour (and at start), each tenant with
//! `retention_days` forgets its checks that finished, and its alert cases
//! that were resolved, longer ago than that — attempts, keys and causes
//! with them — keeping only anonymous counts, so that personal data is
//! kept no longer than the tenant decided (APPI) while its summaries do
//! not change. In passes of a bounded size, so that no write batch grows
//! with the history and calls are never held up for long.
//!
//! Depends on: genki-store (`Store::prune`), [`crate::checks::service`] (the
//! store and the clock), tokio.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::checks::service::Service;

/// Checks forgotten per write batch.
const PASS: usize = 1000;
/// How often every tenant is looked at.
pub const EVERY: Duration = Duration::from_secs(3600);

/// One round over every tenant; returns the checks forgotten.
pub fn prune_all(svc: &Service) -> Result<u64, genki_store::StoreError> {
    let now = svc.clock.now_ms();
    let mut total = 0;
    for t in svc.store.tenants()? {
        let Some(days) = t.retention_days else {
            continue;
        };
        let before = now.saturating_sub(u64::from(days) * 86_400_000);
        let mut sum = genki_store::Pruned::default();
        loop {
            let p = svc.store.prune(t.id, before, PASS)?;
            sum.checks += p.checks;
            sum.attempts += p.attempts;
            sum.cases += p.cases;
            sum.notifications += p.notifications;
            if p.checks < PASS as u64 {
                break;
            }
        }
        if sum.checks + sum.cases > 0 {
            info!(
                tenant = t.id,
                days,
                checks = sum.checks,
                attempts = sum.attempts,
                cases = sum.cases,
                notifications = sum.notifications,
                "retention: forgot records older than the tenant keeps"
            );
        }
        total += sum.checks;
    }
    // Early media is kept no longer than the shortest retention a tenant
    // may set, whatever the tenant (files by age, not by record).
    if let Some(audio) = &svc.calls.audio {
        match audio.prune_older_than(crate::telephony::audio::KEEP) {
            Ok(0) => {}
            Ok(n) => info!(
                files = n,
                "retention: early media older than 30 days removed"
            ),
            Err(e) => tracing::warn!(error = %e, "retention: early media not pruned"),
        }
    }
    Ok(total)
}

/// Run [`prune_all`] at start and every [`EVERY`] until shutdown.
pub async fn run(svc: Arc<Service>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let s = svc.clone();
        if let Err(e) = crate::rt::blocking(move || prune_all(&s)) {
            warn!(error = %e, "retention pass failed; tried again in an hour");
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}
