//! Pure: Paved's field ownership of an object it created with a POST.
//!
//! A new claim's objects are created with POST: the apiserver does about half the work
//! of a server-side apply of the same object (no merge with a live object, no apply
//! configuration). A create records Paved's fields as an `Update` entry, though, and
//! server-side apply only removes a field its applier owned through `Apply`: a field a
//! later render drops would stay. So the first apply after a create adopts the create's
//! fields into Paved's `Apply` entry (as client-go's csaupgrade does for kubectl), and
//! the apply that follows removes what the render no longer has.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use serde_json::{Map, Value};

fn paved(e: &ManagedFieldsEntry, operation: &str) -> bool {
    e.manager.as_deref() == Some(paved_api::FIELD_MANAGER)
        && e.operation.as_deref() == Some(operation)
        && e.subresource.as_deref().unwrap_or("").is_empty()
}

/// What adopting an object's fields takes: the managedFields to write, and whether an
/// apply must follow (the create owned fields the last apply did not send, which only
/// an apply after the adoption removes).
#[derive(Debug, PartialEq)]
pub struct Adoption {
    pub managed_fields: Vec<ManagedFieldsEntry>,
    pub reapply: bool,
}

/// Pure: `None` when Paved owns nothing of the object through an `Update` entry;
/// otherwise its managedFields with that entry merged into Paved's `Apply` entry (made
/// if there is none). Other managers' entries are kept as they are.
pub fn adoption(entries: &[ManagedFieldsEntry]) -> Option<Adoption> {
    let update = entries.iter().find(|e| paved(e, "Update"))?;
    let applied = entries.iter().find(|e| paved(e, "Apply"));
    let empty = Value::Object(Map::new());
    let fields = |e: Option<&ManagedFieldsEntry>| {
        e.and_then(|e| e.fields_v1.as_ref())
            .map(|f| f.0.clone())
            .unwrap_or_else(|| empty.clone())
    };
    let (created, mut owned) = (fields(Some(update)), fields(applied));
    let reapply = !subset(&created, &owned);
    union(&mut owned, &created);
    let adopted = ManagedFieldsEntry {
        api_version: applied
            .and_then(|a| a.api_version.clone())
            .or_else(|| update.api_version.clone()),
        fields_type: Some("FieldsV1".into()),
        fields_v1: Some(FieldsV1(owned)),
        manager: Some(paved_api::FIELD_MANAGER.into()),
        operation: Some("Apply".into()),
        subresource: None,
        time: applied.and_then(|a| a.time.clone()).or(update.time.clone()),
    };
    let mut managed_fields = vec![];
    for e in entries {
        if paved(e, "Apply") {
            continue;
        } else if paved(e, "Update") {
            managed_fields.push(adopted.clone());
        } else {
            managed_fields.push(e.clone());
        }
    }
    Some(Adoption {
        managed_fields,
        reapply,
    })
}

/// The union of two field sets in FieldsV1 form (a trie of `f:`/`k:`/`v:`/`i:` keys,
/// `.` for the node itself): merged key by key.
fn union(into: &mut Value, from: &Value) {
    let (Value::Object(into), Value::Object(from)) = (into, from) else {
        return;
    };
    for (k, v) in from {
        match into.get_mut(k) {
            Some(existing) => union(existing, v),
            None => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Whether every field of `a` is in `b`.
fn subset(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| subset(v, w))),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(manager: &str, operation: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            api_version: Some("v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            ..Default::default()
        }
    }

    fn created() -> Value {
        json!({ "f:metadata": { "f:labels": { ".": {}, "f:a": {}, "f:b": {} },
                                "f:ownerReferences": { ".": {}, "k:{\"uid\":\"u\"}": {} } },
                "f:spec": { "f:description": {}, "f:retentionDays": {} } })
    }

    #[test]
    fn nothing_to_adopt_without_an_update_entry() {
        let entries = [
            entry(paved_api::FIELD_MANAGER, "Apply", created()),
            entry(
                "kube-controller-manager",
                "Update",
                json!({ "f:status": {} }),
            ),
        ];
        assert_eq!(adoption(&entries), None);
    }

    #[test]
    fn a_created_object_becomes_paved_apply_owned_and_others_stay() {
        let mut status = entry(
            "kube-controller-manager",
            "Update",
            json!({ "f:status": {} }),
        );
        status.subresource = Some("status".into());
        let entries = [
            entry(paved_api::FIELD_MANAGER, "Update", created()),
            status.clone(),
        ];
        let a = adoption(&entries).unwrap();
        assert_eq!(a.managed_fields.len(), 2);
        let ours = &a.managed_fields[0];
        assert_eq!(ours.operation.as_deref(), Some("Apply"));
        assert_eq!(ours.manager.as_deref(), Some(paved_api::FIELD_MANAGER));
        assert_eq!(ours.fields_v1.as_ref().unwrap().0, created());
        assert_eq!(a.managed_fields[1], status);
        // Nothing applied yet: the created fields are new to the apply entry.
        assert!(a.reapply);
    }

    #[test]
    fn fields_the_last_apply_did_not_send_need_an_apply_after_adoption() {
        // The last apply dropped spec.description, which the create had set.
        let applied = json!({ "f:metadata": { "f:labels": { ".": {}, "f:a": {}, "f:b": {} },
                                              "f:ownerReferences": { ".": {}, "k:{\"uid\":\"u\"}": {} } },
                              "f:spec": { "f:retentionDays": {} } });
        let entries = [
            entry(paved_api::FIELD_MANAGER, "Update", created()),
            entry(paved_api::FIELD_MANAGER, "Apply", applied.clone()),
        ];
        let a = adoption(&entries).unwrap();
        assert_eq!(a.managed_fields.len(), 1, "one entry for Paved");
        assert_eq!(a.managed_fields[0].fields_v1.as_ref().unwrap().0, created());
        assert!(a.reapply);
        // The apply sent everything the create had: adopting is enough.
        let entries = [
            entry(paved_api::FIELD_MANAGER, "Apply", created()),
            entry(paved_api::FIELD_MANAGER, "Update", applied),
        ];
        let a = adoption(&entries).unwrap();
        assert!(!a.reapply);
        assert_eq!(a.managed_fields[0].fields_v1.as_ref().unwrap().0, created());
    }

    #[test]
    fn union_and_subset_follow_the_field_trie() {
        let mut a = json!({ "f:a": { "f:x": {} } });
        union(&mut a, &json!({ "f:a": { "f:y": {} }, "f:b": {} }));
        assert_eq!(a, json!({ "f:a": { "f:x": {}, "f:y": {} }, "f:b": {} }));
        assert!(subset(&json!({ "f:a": { "f:y": {} } }), &a));
        assert!(!subset(&json!({ "f:a": { "f:z": {} } }), &a));
        assert!(subset(&json!({}), &json!({})));
    }
}
