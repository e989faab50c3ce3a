//! `paved trace`: a claim's tree from a live cluster, with Ready / Synced / reason
//! for every Paved object in it.

use anyhow::{bail, Context, Result};
use kube::{
    api::{ApiResource, DynamicObject, ListParams},
    Api, Client, ResourceExt,
};
use paved_api::labels;

struct Kind {
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        api_version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
    },
    Kind {
        api_version: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        plural: "networkpolicies",
        namespaced: true,
    },
    Kind {
        api_version: "v1",
        kind: "ResourceQuota",
        plural: "resourcequotas",
        namespaced: true,
    },
    Kind {
        api_version: "v1",
        kind: "LimitRange",
        plural: "limitranges",
        namespaced: true,
    },
    Kind {
        api_version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        namespaced: true,
    },
    Kind {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        namespaced: true,
    },
    Kind {
        api_version: "v1",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
    },
    Kind {
        api_version: "external-secrets.io/v1",
        kind: "SecretStore",
        plural: "secretstores",
        namespaced: true,
    },
    Kind {
        api_version: "external-secrets.io/v1",
        kind: "ExternalSecret",
        plural: "externalsecrets",
        namespaced: true,
    },
    Kind {
        api_version: "paved.dev/v1alpha1",
        kind: "PostgreSQLInstance",
        plural: "postgresqlinstances",
        namespaced: true,
    },
    Kind {
        api_version: "paved.dev/v1alpha1",
        kind: "TemporalNamespace",
        plural: "temporalnamespaces",
        namespaced: true,
    },
];

fn ar(k: &Kind) -> ApiResource {
    let (group, version) = k
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", k.api_version));
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: k.api_version.into(),
        kind: k.kind.into(),
        plural: k.plural.into(),
    }
}

fn paved_kind(name: &str) -> Option<&'static str> {
    match name.to_ascii_lowercase().as_str() {
        "serviceclaim" | "serviceclaims" | "svcclaim" => Some("ServiceClaim"),
        "postgresqlinstance" | "postgresqlinstances" | "pginstance" | "pgi" => {
            Some("PostgreSQLInstance")
        }
        "temporalnamespace" | "temporalnamespaces" | "tns" => Some("TemporalNamespace"),
        _ => None,
    }
}

/// `Ready=True Synced=True Available: message` for an object with Paved conditions.
fn conditions(o: &DynamicObject) -> String {
    let conds = o
        .data
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    if conds.is_empty() {
        return "(not reconciled yet)".into();
    }
    let get = |t: &str| conds.iter().find(|c| c["type"] == t);
    let status = |t: &str| {
        get(t)
            .and_then(|c| c["status"].as_str())
            .unwrap_or("Unknown")
            .to_string()
    };
    let ready = get("Ready");
    let reason = ready.and_then(|c| c["reason"].as_str()).unwrap_or("");
    let message = ready.and_then(|c| c["message"].as_str()).unwrap_or("");
    let mut line = format!(
        "Ready={} Synced={} {reason}",
        status("Ready"),
        status("Synced")
    );
    if !message.is_empty() {
        line.push_str(&format!(": {message}"));
    }
    if let Some(s) = get("Synced").filter(|c| c["status"] != "True") {
        line.push_str(&format!(
            " [Synced {}: {}]",
            s["reason"].as_str().unwrap_or(""),
            s["message"].as_str().unwrap_or("")
        ));
    }
    line
}

/// Objects labelled as made for `claim_kind/claim_name`, in `namespace`.
async fn owned(
    client: &Client,
    namespace: &str,
    claim_kind: &str,
    claim_name: &str,
) -> Result<Vec<(String, DynamicObject)>> {
    let sel = format!(
        "{}={claim_kind},{}={claim_name}",
        labels::CLAIM_KIND,
        labels::CLAIM_NAME
    );
    let mut out = vec![];
    for k in KINDS {
        let api: Api<DynamicObject> = if k.namespaced {
            Api::namespaced_with(client.clone(), namespace, &ar(k))
        } else {
            Api::all_with(client.clone(), &ar(k))
        };
        match api.list(&ListParams::default().labels(&sel)).await {
            Ok(list) => out.extend(list.items.into_iter().map(|o| (k.kind.to_string(), o))),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

pub async fn trace(target: &str, namespace: Option<&str>) -> Result<String> {
    let (kind, name) = target
        .split_once('/')
        .context("expected KIND/NAME, e.g. serviceclaim/claims-eligibility-svc")?;
    let kind = paved_kind(kind).with_context(|| format!("{kind} is not a Paved claim kind (serviceclaim, postgresqlinstance, temporalnamespace)"))?;
    let client = Client::try_default()
        .await
        .context("connecting to the cluster (KUBECONFIG)")?;
    let mut out = String::new();
    match kind {
        "ServiceClaim" => {
            let k = Kind {
                api_version: "paved.dev/v1alpha1",
                kind: "ServiceClaim",
                plural: "serviceclaims",
                namespaced: false,
            };
            let claim = Api::<DynamicObject>::all_with(client.clone(), &ar(&k))
                .get(name)
                .await
                .with_context(|| format!("ServiceClaim {name}"))?;
            out.push_str(&format!("ServiceClaim/{name}  {}\n", conditions(&claim)));
            let children = owned(&client, name, "ServiceClaim", name).await?;
            let n = children.len();
            for (i, (kind, o)) in children.iter().enumerate() {
                let last = i + 1 == n;
                let (branch, indent) = if last {
                    ("└─", "   ")
                } else {
                    ("├─", "│  ")
                };
                let paved = o
                    .types
                    .as_ref()
                    .is_some_and(|t| t.api_version.starts_with("paved.dev/"));
                let status = if paved {
                    format!("  {}", conditions(o))
                } else {
                    String::new()
                };
                out.push_str(&format!("{branch} {kind}/{}{status}\n", o.name_any()));
                if kind == "PostgreSQLInstance" {
                    for (gk, g) in owned(&client, name, "PostgreSQLInstance", &o.name_any()).await?
                    {
                        out.push_str(&format!("{indent}└─ {gk}/{}\n", g.name_any()));
                    }
                }
            }
        }
        _ => {
            let ns = namespace.unwrap_or("default");
            let k = KINDS.iter().find(|k| k.kind == kind).expect("listed kind");
            let obj = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar(k))
                .get(name)
                .await
                .with_context(|| format!("{kind} {ns}/{name}"))?;
            out.push_str(&format!("{kind}/{ns}/{name}  {}\n", conditions(&obj)));
            let children = owned(&client, ns, kind, name).await?;
            let n = children.len();
            for (i, (gk, g)) in children.iter().enumerate() {
                out.push_str(&format!(
                    "{} {gk}/{}\n",
                    if i + 1 == n { "└─" } else { "├─" },
                    g.name_any()
                ));
            }
        }
    }
    if out.is_empty() {
        bail!("nothing found");
    }
    Ok(out)
}
