//! Every string, list and map a tenant can write in a claim has a bound in the CRD
//! schema, so the apiserver refuses an oversized claim before the operator caches it
//! (a claim is held in memory by every replica; an unbounded map is a memory
//! exhaustion attack on the operator by anyone who can commit a claim).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;

fn unbounded(path: &str, s: &JSONSchemaProps, out: &mut Vec<String>) {
    let bounded_by_enum = s.enum_.as_ref().is_some_and(|e| !e.is_empty());
    match s.type_.as_deref() {
        Some("string") if s.max_length.is_none() && !bounded_by_enum && s.format.is_none() => {
            out.push(format!("{path}: string without maxLength"))
        }
        Some("array") if s.max_items.is_none() => {
            out.push(format!("{path}: list without maxItems"))
        }
        Some("object") if s.additional_properties.is_some() && s.max_properties.is_none() => {
            out.push(format!("{path}: map without maxProperties"))
        }
        _ => {}
    }
    if s.x_kubernetes_int_or_string == Some(true) && s.max_length.is_none() {
        out.push(format!("{path}: int-or-string without maxLength"));
    }
    for (k, v) in s.properties.iter().flatten() {
        unbounded(&format!("{path}.{k}"), v, out);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(i)) = &s.items {
        unbounded(&format!("{path}[]"), i, out);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrBool::Schema(a)) =
        &s.additional_properties
    {
        unbounded(&format!("{path}{{}}"), a, out);
    }
    if s.x_kubernetes_preserve_unknown_fields == Some(true) {
        out.push(format!("{path}: free-form object"));
    }
}

#[test]
fn every_field_a_tenant_writes_is_bounded() {
    let mut out = vec![];
    for crd in paved_api::crds::all() {
        let kind = crd.spec.names.kind.clone();
        // Compositions and Teams are the platform's; status is the operator's.
        if kind == "Composition" || kind == "Team" {
            continue;
        }
        for v in &crd.spec.versions {
            let root = v
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema");
            let spec = root
                .properties
                .as_ref()
                .and_then(|p| p.get("spec"))
                .expect("spec");
            unbounded(&format!("{kind}.spec"), spec, &mut out);
        }
    }
    assert!(out.is_empty(), "unbounded fields:\n{}", out.join("\n"));
}
