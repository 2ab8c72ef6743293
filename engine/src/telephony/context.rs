//! What anything that places calls needs, and nothing more: the
//! [`Placer`] (the call set-up: endpoint, media, trunk), the trunk's domain for plain numbers,
//! and each tenant's prompts (built-ins overlaid with uploads, decoded once
//! and cached). The due loop and the alert notifier share one; neither
//! needs the other's state to place a call.
//!
//! Depends on: [`crate::telephony::call`], genki-media (WAV, prompts),
//! genki-storage (uploaded prompts).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use genki_media::{wav, Prompt};
use genki_store::{Storage, StoreError};
use tracing::warn;

use crate::telephony::call::Placer;

/// The shared context of every call genki places.
pub struct CallContext {
    /// Places the calls: the daemon's SIP/RTP path, or a test's stand-in.
    pub placer: Arc<dyn Placer>,
    /// Host part for people given as plain numbers: `sip:<number>@<domain>`.
    pub trunk_domain: String,
    /// Whether a phone may be a SIP URI (dialled where it points) rather
    /// than a number dialled through the trunk (`[trunk] uri_phones`).
    pub uri_phones: bool,
    /// Where calls keep early media (erased with the person, pruned by age).
    pub audio: Option<Arc<crate::telephony::audio::AudioStore>>,
    store: Arc<dyn Storage>,
    defaults: Arc<HashMap<String, Prompt>>,
    /// Tenant prompt sets, built on demand.
    cache: RwLock<HashMap<u64, Arc<HashMap<String, Prompt>>>>,
}

impl CallContext {
    pub fn new(
        placer: Arc<dyn Placer>,
        trunk_domain: String,
        store: Arc<dyn Storage>,
        defaults: Arc<HashMap<String, Prompt>>,
    ) -> CallContext {
        CallContext {
            placer,
            trunk_domain,
            uri_phones: true,
            audio: None,
            store,
            defaults,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The number a tenant's calls present (None: the trunk's), also on
    /// calls to its watchers, so a watcher sees the same caller as the
    /// people do.
    pub fn caller_id_of(&self, tenant_id: u64) -> Option<String> {
        self.store.tenant(tenant_id).ok().flatten()?.caller_id
    }

    /// Whether `phone` may be called: a number always (through the trunk),
    /// a SIP URI only where the operator allows them.
    pub fn may_dial(&self, phone: &str) -> bool {
        self.uri_phones || !is_uri(phone)
    }

    /// The SIP URI a phone number or URI is called at.
    pub fn dial_uri(&self, phone: &str) -> String {
        if is_uri(phone) {
            phone.to_string()
        } else {
            format!("sip:{phone}@{}", self.trunk_domain)
        }
    }

    /// The prompts a tenant's calls use.
    /// The built-in prompts (for a caller of no tenant).
    pub fn default_prompts(&self) -> Arc<HashMap<String, Prompt>> {
        self.defaults.clone()
    }

    pub fn prompts_for(&self, tenant: u64) -> Result<Arc<HashMap<String, Prompt>>, StoreError> {
        if let Some(p) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&tenant)
        {
            return Ok(p.clone());
        }
        let mut set = (*self.defaults).clone();
        for name in self.store.prompt_names(tenant)? {
            if let Some(bytes) = self.store.prompt(tenant, &name)? {
                match wav::read_wav_8k(&bytes[..]) {
                    Ok(pcm) => {
                        set.insert(name.clone(), Prompt::from_pcm(&name, &pcm));
                    }
                    Err(e) => {
                        warn!(tenant, prompt = %name, error = %e, "stored prompt unreadable; default kept")
                    }
                }
            }
        }
        let set = Arc::new(set);
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant, set.clone());
        Ok(set)
    }

    /// Forget a tenant's cached prompts (after an upload).
    pub fn invalidate_prompts(&self, tenant: u64) {
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&tenant);
    }
}

/// A phone given as a SIP URI rather than a number.
pub fn is_uri(phone: &str) -> bool {
    phone.starts_with("sip:") || phone.starts_with("sips:")
}

/// Whether a phone number fits a tenant's dial plan (prefixes the operator
/// allows; None: any). A SIP URI is not a number: [`CallContext::may_dial`]
/// rules on it.
pub fn in_dial_plan(dial_allow: Option<&[String]>, phone: &str) -> bool {
    is_uri(phone) || dial_allow.is_none_or(|p| p.iter().any(|x| phone.starts_with(x.as_str())))
}
