//! The console's people and sign-ins (issue 15): staff members of a
//! tenant (or of the operator, tenant 0) with a role and an argon2
//! password hash, and their sessions, kept by the hash of the cookie's
//! token (a stolen database does not give a usable cookie). Failed
//! sign-ins and the lockout live on the staff record, so a restart does
//! not reset them.
//!
//! Depends on: [`crate::store`] (the column family [`cf::STAFF`]),
//! [`crate::records`] (the record format).

use serde::{Deserialize, Serialize};

use crate::kv::Batch;
use crate::records::encode;
use crate::store::{be, cat, cf};
use crate::{Store, StoreError};

/// What a staff member may do in the console. Each role can do all that
/// the one before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum StaffRole {
    /// Reads the tenant's pages; changes nothing.
    Viewer,
    /// Acts on the calls: takes, passes and resolves cases, pauses a
    /// person, asks for a call now, imports people.
    Coordinator,
    /// Also the tenant's settings (window, retries, script, prompts,
    /// watchers) and its staff.
    Admin,
    /// The operator's staff (tenant 0): any tenant's pages, one at a time.
    Operator,
}

impl StaffRole {
    pub const ALL: [StaffRole; 4] = [
        StaffRole::Viewer,
        StaffRole::Coordinator,
        StaffRole::Admin,
        StaffRole::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Viewer => "viewer",
            StaffRole::Coordinator => "coordinator",
            StaffRole::Admin => "admin",
            StaffRole::Operator => "operator",
        }
    }
}

impl std::str::FromStr for StaffRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        StaffRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?}: one of viewer, coordinator, admin, operator"))
    }
}

/// A person who signs in to the console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Staff {
    pub id: u64,
    /// 0 for the operator's staff.
    pub tenant_id: u64,
    /// Unique across all tenants (it is what is typed at sign-in).
    pub login: String,
    pub name: String,
    pub role: StaffRole,
    /// The password as an argon2id PHC string (never the password).
    pub password: String,
    /// Wrong passwords since the last good sign-in.
    #[serde(default)]
    pub failed: u32,
    /// Sign-in is refused until then (too many wrong passwords).
    #[serde(default)]
    pub locked_until_ms: Option<u64>,
    #[serde(default)]
    pub disabled: bool,
    pub created_at_ms: u64,
    /// Bumped when the password changes or the account is disabled: a
    /// session started before it is no session.
    #[serde(default)]
    pub generation: u64,
}

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub staff_id: u64,
    /// The tenant whose pages it shows (the operator's staff choose).
    pub tenant_id: u64,
    /// The form token every change must carry (synchronizer token).
    pub csrf: String,
    /// "ja" or "en".
    pub locale: String,
    /// The staff member's `generation` when the session began.
    #[serde(default)]
    pub generation: u64,
    pub created_at_ms: u64,
    /// Ends then whatever happens (idle or not).
    pub expires_at_ms: u64,
}

const ID: u8 = b'i';
const LOGIN: u8 = b'l';
const SESSION: u8 = b's';

impl Store {
    /// Add a staff member; `StoreError::Exists` when the login is taken.
    pub fn create_staff(&self, mut s: Staff) -> Result<Staff, StoreError> {
        let _g = self.guard();
        if self
            .raw(cf::STAFF, cat(&[&[LOGIN], s.login.as_bytes()]))?
            .is_some()
        {
            return Err(StoreError::Exists("login"));
        }
        let mut b = Batch::default();
        s.id = self.reserve_ids(&mut b, "staff", 1)?;
        b.put(cf::STAFF, cat(&[&[ID], &be(s.id)]), encode(&s));
        b.put(cf::STAFF, cat(&[&[LOGIN], s.login.as_bytes()]), be(s.id));
        self.write(b)?;
        Ok(s)
    }

    /// Replace a staff member's record (the login does not change).
    pub fn put_staff(&self, s: &Staff) -> Result<(), StoreError> {
        let _g = self.guard();
        self.put(cf::STAFF, cat(&[&[ID], &be(s.id)]), encode(s))
    }

    /// Change a staff member's record as it is now (read and written under
    /// one lock: two sign-ins at once both count, and a change made
    /// meanwhile by an admin is not overwritten). None if they are gone.
    pub fn update_staff(
        &self,
        id: u64,
        change: &dyn Fn(&mut Staff),
    ) -> Result<Option<Staff>, StoreError> {
        let _g = self.guard();
        let Some(mut s) = self.staff(id)? else {
            return Ok(None);
        };
        change(&mut s);
        self.put(cf::STAFF, cat(&[&[ID], &be(s.id)]), encode(&s))?;
        Ok(Some(s))
    }

    pub fn staff(&self, id: u64) -> Result<Option<Staff>, StoreError> {
        self.get(cf::STAFF, &cat(&[&[ID], &be(id)]))
    }

    pub fn staff_by_login(&self, login: &str) -> Result<Option<Staff>, StoreError> {
        match self.raw(cf::STAFF, cat(&[&[LOGIN], login.as_bytes()]))? {
            Some(v) if v.len() == 8 => {
                self.staff(u64::from_be_bytes(v[..8].try_into().expect("8 bytes")))
            }
            _ => Ok(None),
        }
    }

    /// A tenant's staff (0: the operator's), by id. A scan of every staff
    /// record: there are tens per tenant, not millions.
    pub fn staff_of(&self, tenant_id: u64) -> Result<Vec<Staff>, StoreError> {
        let rows = self.scan(cf::STAFF, &[ID], &[ID], usize::MAX)?;
        Ok(self
            .decode_all::<Staff>(cf::STAFF, rows)?
            .into_iter()
            .filter(|s| s.tenant_id == tenant_id)
            .collect())
    }

    /// Remove a staff member; their sessions are refused from then on
    /// (a session whose staff member is gone is no session).
    pub fn delete_staff(&self, s: &Staff) -> Result<(), StoreError> {
        let mut b = Batch::default();
        b.delete(cf::STAFF, cat(&[&[ID], &be(s.id)]));
        b.delete(cf::STAFF, cat(&[&[LOGIN], s.login.as_bytes()]));
        self.write(b)
    }

    pub fn put_session(&self, hash: &[u8; 32], s: &Session) -> Result<(), StoreError> {
        self.put(cf::STAFF, cat(&[&[SESSION], hash]), encode(s))
    }

    pub fn session(&self, hash: &[u8; 32]) -> Result<Option<Session>, StoreError> {
        self.get(cf::STAFF, &cat(&[&[SESSION], hash]))
    }

    pub fn delete_session(&self, hash: &[u8; 32]) -> Result<(), StoreError> {
        self.delete(cf::STAFF, cat(&[&[SESSION], hash]))
    }

    /// Forget sessions that ended before `now_ms`; how many.
    pub fn prune_sessions(&self, now_ms: u64) -> Result<usize, StoreError> {
        let rows = self.scan(cf::STAFF, &[SESSION], &[SESSION], usize::MAX)?;
        let mut b = Batch::default();
        let mut n = 0;
        for (k, v) in rows {
            let ended = match crate::records::decode::<Session>(cf::STAFF, &v) {
                Ok(s) => s.expires_at_ms < now_ms,
                Err(_) => true,
            };
            if ended {
                b.delete(cf::STAFF, k);
                n += 1;
            }
        }
        if n > 0 {
            self.write(b)?;
        }
        Ok(n)
    }
}
