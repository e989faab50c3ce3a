//! Offline admission: a claim or Composition checked against the CRD's OpenAPI
//! schema (types, enums, patterns, bounds, required and unknown fields, list keys)
//! and its CEL rules, as the apiserver would — so a claims repository's CI catches
//! what `kubectl apply` would refuse.

use serde_json::Value;

/// Every schema violation in `v`, as `path: message`.
pub fn check(schema: &Value, v: &Value) -> Vec<String> {
    let mut errs = vec![];
    walk(schema, v, "", true, &mut errs);
    let cel = kube_cel::validation::Validator::new();
    for e in cel.validate(schema, v, None) {
        errs.push(e.to_string());
    }
    errs
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(s: &Value, v: &Value, path: &str, root: bool, errs: &mut Vec<String>) {
    if v.is_null() {
        return;
    }
    let at = if path.is_empty() { "<root>" } else { path };
    if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            let names: Vec<String> = allowed
                .iter()
                .filter(|a| !a.is_null())
                .map(|a| a.to_string())
                .collect();
            errs.push(format!(
                "{at}: Unsupported value: {v}: supported values: {}",
                names.join(", ")
            ));
        }
    }
    match s.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(obj) = v.as_object() else {
                errs.push(format!("{at}: must be an object"));
                return;
            };
            for r in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !obj.contains_key(r) {
                    errs.push(format!("{}: Required value", join(path, r)));
                }
            }
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties");
            let preserve =
                s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            for (k, val) in obj {
                if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                match (props.and_then(|p| p.get(k)), additional) {
                    (Some(ps), _) => walk(ps, val, &join(path, k), false, errs),
                    (None, Some(a)) if a.is_object() => walk(a, val, &join(path, k), false, errs),
                    (None, _) if preserve => {}
                    (None, _) => errs.push(format!("{}: unknown field", join(path, k))),
                }
            }
        }
        Some("array") => {
            let Some(items) = v.as_array() else {
                errs.push(format!("{at}: must be a list"));
                return;
            };
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
                if items.len() as u64 > max {
                    errs.push(format!(
                        "{at}: Too many: {} items, at most {max}",
                        items.len()
                    ));
                }
            }
            if let Some(item_schema) = s.get("items") {
                for (i, it) in items.iter().enumerate() {
                    walk(item_schema, it, &format!("{path}[{i}]"), false, errs);
                }
            }
            if s.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
                let keys: Vec<&str> = s
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let mut seen = std::collections::HashSet::new();
                for (i, it) in items.iter().enumerate() {
                    let key: Vec<String> = keys
                        .iter()
                        .map(|k| it.get(*k).map(|x| x.to_string()).unwrap_or_default())
                        .collect();
                    if !seen.insert(key.clone()) {
                        errs.push(format!("{path}[{i}]: Duplicate value: {}", key.join(",")));
                    }
                }
            }
        }
        Some("string") => {
            let Some(st) = v.as_str() else {
                errs.push(format!("{at}: must be a string"));
                return;
            };
            let len = st.chars().count() as u64;
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
                if len > max {
                    errs.push(format!(
                        "{at}: Too long: may not be more than {max} characters"
                    ));
                }
            }
            if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
                if len < min {
                    errs.push(format!(
                        "{at}: Invalid value: must be at least {min} characters"
                    ));
                }
            }
            if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                match regex::Regex::new(p) {
                    Ok(re) if !re.is_match(st) => {
                        errs.push(format!("{at}: Invalid value: {st:?}: should match '{p}'"))
                    }
                    _ => {}
                }
            }
        }
        Some("integer") | Some("number") => {
            let Some(n) = v.as_f64() else {
                errs.push(format!("{at}: must be a number"));
                return;
            };
            if s.get("type").and_then(Value::as_str) == Some("integer") && v.as_i64().is_none() {
                errs.push(format!("{at}: must be an integer"));
            }
            if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
                if n < min {
                    errs.push(format!(
                        "{at}: Invalid value: {v}: should be greater than or equal to {min}"
                    ));
                }
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
                if n > max {
                    errs.push(format!(
                        "{at}: Invalid value: {v}: should be less than or equal to {max}"
                    ));
                }
            }
        }
        Some("boolean") if !v.is_boolean() => errs.push(format!("{at}: must be true or false")),
        _ => {}
    }
}
