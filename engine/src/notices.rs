//! Notices to the operator: faults of the service itself (the carrier is
//! failing, storage refuses writes) that somebody running genki must act
//! on, and that must never reach a person's watchers as that person's
//! silence. Each is logged, counted, and queued for the operator's webhook
//! (delivered by [`crate::alerts::operator`]).
//!
//! This module only says what happened; it sits below the subsystems so
//! that `checks` can raise a notice without depending on `alerts`.
//!
//! Depends on: [`crate::metrics`], tokio (channel), serde_json.

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::{error, warn};

/// What the operator is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// The trunk's circuit opened: calls are failing at the carrier, so
    /// nobody is dialled and checks are held until probes get through.
    TrunkDown {
        faults: usize,
        of: usize,
        /// Seconds until the first probe.
        probe_in_s: u64,
    },
    /// Probes got through: dialling resumed (held checks are called now).
    TrunkRecovered { down_s: u64 },
    /// The trunk requires registration and the binding is lost (the
    /// registrar refused with `status`, or did not answer): nobody is
    /// dialled through it, checks are held; retried in `retry_in_s`.
    TrunkUnregistered {
        status: Option<u16>,
        retry_in_s: u64,
    },
    /// Registered again: dialling resumed.
    TrunkRegistered { down_s: u64 },
    /// Storage refuses writes: nobody is dialled until it accepts them.
    StorageFailing { error: String },
    /// Storage accepts writes again: dialling resumed.
    StorageRecovered,
}

impl Notice {
    /// The notice's `type` word (webhook body, metric label).
    pub fn kind(&self) -> &'static str {
        match self {
            Notice::TrunkDown { .. } => "trunk_down",
            Notice::TrunkRecovered { .. } => "trunk_recovered",
            Notice::TrunkUnregistered { .. } => "trunk_unregistered",
            Notice::TrunkRegistered { .. } => "trunk_registered",
            Notice::StorageFailing { .. } => "storage_failing",
            Notice::StorageRecovered => "storage_recovered",
        }
    }

    /// What the notice says, beside its type.
    pub fn details(&self) -> Value {
        match self {
            Notice::TrunkDown {
                faults,
                of,
                probe_in_s,
            } => json!({"faults": faults, "of_recent_calls": of, "probe_in_s": probe_in_s}),
            Notice::TrunkRecovered { down_s } => json!({"down_s": down_s}),
            Notice::TrunkUnregistered { status, retry_in_s } => {
                json!({"status": status, "retry_in_s": retry_in_s})
            }
            Notice::TrunkRegistered { down_s } => json!({"down_s": down_s}),
            Notice::StorageFailing { error } => json!({"error": error}),
            Notice::StorageRecovered => json!({}),
        }
    }
}

/// A notice with the time it was raised and its number in this process.
#[derive(Debug, Clone)]
pub struct Raised {
    pub at_ms: u64,
    pub seq: u64,
    pub notice: Notice,
}

/// Where notices are raised. Cheap to share; raising never blocks.
#[derive(Debug)]
pub struct Notices {
    tx: Option<mpsc::UnboundedSender<Raised>>,
    seq: std::sync::atomic::AtomicU64,
    /// Notices raised, by any kind (`genki_operator_notices_total`).
    pub raised: crate::metrics::Counter,
}

impl Notices {
    /// Notices delivered through the returned receiver.
    pub fn channel() -> (Notices, mpsc::UnboundedReceiver<Raised>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Notices {
                tx: Some(tx),
                ..Notices::log_only()
            },
            rx,
        )
    }

    /// Notices that are only logged and counted (tests, `genki call`).
    pub fn log_only() -> Notices {
        Notices {
            tx: None,
            seq: Default::default(),
            raised: Default::default(),
        }
    }

    /// Raise `notice` at `at_ms`.
    pub fn raise(&self, at_ms: u64, notice: Notice) {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.raised.inc();
        match &notice {
            Notice::TrunkRecovered { .. }
            | Notice::TrunkRegistered { .. }
            | Notice::StorageRecovered => {
                warn!(kind = notice.kind(), details = %notice.details(), "operator notice")
            }
            _ => error!(kind = notice.kind(), details = %notice.details(), "operator notice"),
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(Raised { at_ms, seq, notice });
        }
    }
}
