//! An in-memory provider for the reconciler tests (feature `fake`): databases live in
//! a map, a create takes one observe to become available, and each call can be made to
//! fail with a chosen error. Never in a release build.

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;
use paved_api::DeletionPolicy;
use paved_compose::postgresql::{DesiredDatabase, ObservedDatabase};

use crate::{ownership, DeleteProgress, ExternalClient, Observation, ProviderError};

/// Which call an injected error answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Observe,
    Create,
    Update,
    Delete,
}

#[derive(Default)]
pub struct FakeDatabases {
    state: Mutex<HashMap<String, ObservedDatabase>>,
    failures: Mutex<HashMap<Call, ProviderError>>,
    calls: Mutex<Vec<(Call, String)>>,
}

impl FakeDatabases {
    /// The next call of `call` fails with `e` (once).
    pub fn fail_next(&self, call: Call, e: ProviderError) {
        self.failures.lock().unwrap().insert(call, e);
    }

    /// A database someone else made under this name (another claim's mark).
    pub fn put(&self, name: &str, o: ObservedDatabase) {
        self.state.lock().unwrap().insert(name.to_string(), o);
    }

    /// The databases that exist, by name.
    pub fn databases(&self) -> HashMap<String, ObservedDatabase> {
        self.state.lock().unwrap().clone()
    }

    /// How many times `call` was made.
    pub fn count(&self, call: Call) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| *c == call)
            .count()
    }

    fn enter(&self, call: Call, name: &str) -> Result<(), ProviderError> {
        self.calls.lock().unwrap().push((call, name.to_string()));
        match self.failures.lock().unwrap().remove(&call) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn as_made(d: &DesiredDatabase, state: &str) -> ObservedDatabase {
    ObservedDatabase {
        state: state.into(),
        owner_uid: Some(d.owner_uid.clone()),
        instance_class: Some(d.instance_class.clone()),
        storage_gb: Some(d.storage_gb),
        multi_az: Some(d.multi_az),
        storage_encrypted: Some(d.storage_encrypted),
        kms_key_id: d.kms_key_id.clone(),
        publicly_accessible: Some(d.publicly_accessible),
        backup_retention_days: Some(d.backup_retention_days),
        deletion_protection: Some(d.deletion_protection),
        tls_required: Some(d.tls_required),
        database_present: Some(true),
        endpoint: Some(format!("{}.fake", d.external_name)),
        port: Some(5432),
        master_secret_ref: Some(format!("{}-admin", d.external_name)),
        tags: Some(paved_compose::postgresql::cloud_tags(d.provider, &d.tags)),
        ..Default::default()
    }
}

#[async_trait]
impl ExternalClient<DesiredDatabase, ObservedDatabase> for FakeDatabases {
    async fn observe(
        &self,
        d: &DesiredDatabase,
    ) -> Result<Observation<ObservedDatabase>, ProviderError> {
        self.enter(Call::Observe, &d.external_name)?;
        let mut state = self.state.lock().unwrap();
        let Some(o) = state.get_mut(&d.external_name) else {
            return Ok(Observation::Absent);
        };
        let seen = o.clone();
        // One look later, a create has finished.
        if o.state == "creating" {
            o.state = "available".into();
        }
        let owner = seen.owner_uid.clone();
        Ok(ownership(
            seen,
            owner.as_deref(),
            &d.owner_uid,
            "an unmarked database",
            d.existing(),
        ))
    }

    async fn create(&self, d: &DesiredDatabase) -> Result<(), ProviderError> {
        self.enter(Call::Create, &d.external_name)?;
        // The deterministic name: a second create finds the first.
        self.state
            .lock()
            .unwrap()
            .entry(d.external_name.clone())
            .or_insert_with(|| as_made(d, "creating"));
        Ok(())
    }

    async fn update(
        &self,
        d: &DesiredDatabase,
        _o: &ObservedDatabase,
    ) -> Result<(), ProviderError> {
        self.enter(Call::Update, &d.external_name)?;
        if let Some(o) = self.state.lock().unwrap().get_mut(&d.external_name) {
            let state = o.state.clone();
            *o = as_made(d, &state);
        }
        Ok(())
    }

    async fn delete(&self, d: &DesiredDatabase) -> Result<DeleteProgress, ProviderError> {
        self.enter(Call::Delete, &d.external_name)?;
        if d.deletion_policy == DeletionPolicy::Orphan {
            return Ok(DeleteProgress::Done(format!(
                "{} left in place (Orphan)",
                d.external_name
            )));
        }
        let mut state = self.state.lock().unwrap();
        match state.get(&d.external_name).map(|o| o.owner_uid.clone()) {
            None => Ok(DeleteProgress::Done(format!("{} deleted", d.external_name))),
            Some(owner) if owner.as_deref() != Some(d.owner_uid.as_str()) => {
                Ok(DeleteProgress::Skipped(format!(
                    "{} is not this claim's; left untouched",
                    d.external_name
                )))
            }
            Some(_) => {
                state.remove(&d.external_name);
                Ok(DeleteProgress::Waiting(format!(
                    "deleting {}",
                    d.external_name
                )))
            }
        }
    }
}
