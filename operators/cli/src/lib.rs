//! `paved`: offline tooling for claims repositories and platform teams, and
//! `trace` for a live cluster. Built as `paved` and as `kubectl-paved`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

pub mod diff;
pub mod generate;
pub mod migrate;
pub mod migrate_live;
pub mod render;
pub mod schema;
pub mod trace;

#[derive(Parser)]
#[command(
    name = "paved",
    version,
    about = "Paved: render, validate and generate CRDs, offline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the CustomResourceDefinitions generated from the Rust types.
    Crds {
        /// Directory to write to (one file per CRD); `-` prints to stdout.
        #[arg(long, default_value = "crds")]
        out: String,
        /// Do not write: exit non-zero when the directory differs from the types.
        #[arg(long)]
        check: bool,
    },
    /// Write everything derived from the Rust types: crds/, the chart's copies of crds/
    /// and compositions/, and the README's table of condition reasons.
    Generate {
        /// The repository root.
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Do not write: exit non-zero naming every file that differs.
        #[arg(long)]
        check: bool,
    },
    /// Print every object the claims would produce, without a cluster.
    Render {
        /// Claim files (YAML, several documents allowed).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Directory of Compositions to render with.
        #[arg(long, default_value = "compositions")]
        compositions: PathBuf,
        /// Cloud used for a ServiceClaim that names none.
        #[arg(long, default_value = "local")]
        default_cloud: String,
    },
    /// Which claims a Composition edit would change, and how: every claim rendered with
    /// the Compositions before and after (e.g. the base and the head of a pull request).
    Diff {
        /// Claim files (YAML, several documents allowed).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Directory of the Compositions as they are now.
        #[arg(long)]
        before: PathBuf,
        /// Directory of the Compositions as the edit would leave them.
        #[arg(long)]
        after: PathBuf,
        /// Cloud used for a ServiceClaim that names none.
        #[arg(long, default_value = "local")]
        default_cloud: String,
        /// Exit with status 2 when any claim would change (for CI).
        #[arg(long)]
        exit_code: bool,
    },
    /// Show a claim's tree from the live cluster, with Ready / Synced / reason per child.
    Trace {
        /// KIND/NAME, e.g. serviceclaim/claims-eligibility-svc or pgi/main.
        target: String,
        /// Namespace of a namespaced claim.
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Move a Crossplane platform's PostgreSQL databases under Paved without
    /// recreating any: Paved claims that adopt the same RDS instances, the Team grants
    /// they need, a report of what is not carried and why, and (`--apply`) the cut-over.
    Migrate {
        /// Read a directory of manifests (a claims repository, `kubectl get -o yaml`
        /// exports of the XRDs, claims, composites and RDS Instances).
        #[arg(long, conflicts_with = "live", required_unless_present = "live")]
        dir: Option<PathBuf>,
        /// Read the live cluster (the current kubeconfig context).
        #[arg(long)]
        live: bool,
        /// Write the Paved claims (`<out>/<namespace>/<name>.yaml`), Team grants
        /// (`<out>/teams/<team>.yaml`) and, with `--service-claims`, ServiceClaims
        /// (`<out>/services/`) and the namespace labels to set (`<out>/label-namespaces.sh`) here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the report and the claims; write and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Carry out the cut-over on the live cluster (see the report's last lines).
        #[arg(long, requires = "live", conflicts_with = "dry_run")]
        apply: bool,
        /// CROSSPLANE=PAVED: the Paved Composition that adopts what a Crossplane
        /// Composition made (default: the only Paved one for its region).
        #[arg(long = "composition", value_name = "CROSSPLANE=PAVED")]
        compositions: Vec<String>,
        /// Believe managed databases in tenants' namespaces (Crossplane v2), which a
        /// team may write: only once the platform checked each is that team's.
        #[arg(long)]
        allow_namespaced: bool,
        /// Also propose, for each namespace whose claims move and that a Team lists
        /// with its system and cost center, the ServiceClaim that takes the namespace
        /// over (default-deny NetworkPolicies, Pod Security, quota, RoleBinding,
        /// SecretStore there: review the report's notes first). With `--apply`, created
        /// once the namespace's databases are cut over.
        #[arg(long)]
        service_claims: bool,
        /// How long `--apply` waits for the claims to adopt.
        #[arg(long, default_value_t = 600)]
        timeout_seconds: u64,
    },
    /// Check claims and Compositions against the types and the compliance floor.
    Validate {
        /// Files to check.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
}

/// The entry point of both binaries.
pub fn main() {
    // Linked TLS backends: ring (kube) and aws-lc (the AWS SDK, elsewhere in the
    // workspace); kube's client uses the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    match Cli::parse().command {
        Command::Crds { out, check } => crds(&out, check),
        Command::Generate { root, check } => {
            let drift = generate::generate(&root, check)?;
            for p in &drift {
                println!(
                    "{} {}",
                    if check { "differs:" } else { "wrote" },
                    p.display()
                );
            }
            if check && !drift.is_empty() {
                anyhow::bail!(
                    "{} generated file(s) drifted; run `make generate`",
                    drift.len()
                );
            }
            Ok(())
        }
        Command::Render {
            files,
            compositions,
            default_cloud,
        } => {
            let cloud = default_cloud.parse().map_err(anyhow::Error::msg)?;
            print!("{}", render::render_files(&files, &compositions, cloud)?);
            Ok(())
        }
        Command::Diff {
            files,
            before,
            after,
            default_cloud,
            exit_code,
        } => {
            let cloud = default_cloud.parse().map_err(anyhow::Error::msg)?;
            let (text, changed) = diff::diff_files(&files, &before, &after, cloud)?;
            print!("{text}");
            if exit_code && changed > 0 {
                std::process::exit(2);
            }
            Ok(())
        }
        Command::Trace { target, namespace } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            print!(
                "{}",
                rt.block_on(trace::trace(&target, namespace.as_deref()))?
            );
            Ok(())
        }
        Command::Migrate {
            dir,
            live,
            out,
            dry_run,
            apply,
            compositions,
            allow_namespaced,
            service_claims,
            timeout_seconds,
        } => {
            let mut opts = migrate::Options {
                allow_namespaced,
                service_claims,
                ..Default::default()
            };
            for c in compositions {
                let (from, to) = c
                    .split_once('=')
                    .with_context(|| format!("--composition {c}: expected CROSSPLANE=PAVED"))?;
                opts.compositions.insert(from.into(), to.into());
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let client = if live {
                Some(rt.block_on(kube::Client::try_default())?)
            } else {
                None
            };
            let objects = match (&dir, &client) {
                (Some(d), _) => migrate::read_dir(d)?.into_iter().map(|(_, v)| v).collect(),
                (None, Some(c)) => rt.block_on(migrate_live::gather(c))?,
                (None, None) => anyhow::bail!("--dir or --live"),
            };
            let m = migrate::plan(&objects, &opts);
            print!("{}", m.report());
            if dry_run {
                for claim in m
                    .entries
                    .iter()
                    .map(|e| &e.claim)
                    .chain(m.services.iter().map(|s| &s.claim))
                {
                    println!("---\n{}", serde_yaml::to_string(claim)?.trim_end());
                }
                return Ok(());
            }
            if let Some(out) = &out {
                for p in migrate::write(&m, out)? {
                    println!("wrote {}", p.display());
                }
            }
            if apply {
                let client = client.expect("--apply requires --live");
                print!(
                    "{}",
                    rt.block_on(migrate_live::apply(
                        &client,
                        &m,
                        std::time::Duration::from_secs(timeout_seconds)
                    ))?
                );
            }
            Ok(())
        }
        Command::Validate { files } => {
            let problems = render::validate_files(&files)?;
            if problems.is_empty() {
                println!("{} file(s) valid", files.len());
                Ok(())
            } else {
                for p in &problems {
                    eprintln!("{p}");
                }
                anyhow::bail!("{} problem(s) found", problems.len())
            }
        }
    }
}

fn crds(out: &str, check: bool) -> Result<()> {
    let crds = paved_api::crds::all();
    if out == "-" {
        for crd in &crds {
            println!("---\n{}", paved_api::crds::to_yaml(crd));
        }
        return Ok(());
    }
    let dir = PathBuf::from(out);
    let mut drift = vec![];
    for crd in &crds {
        let path = dir.join(paved_api::crds::file_name(crd));
        let want = paved_api::crds::to_yaml(crd);
        if check {
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            if have != want {
                drift.push(path.display().to_string());
            }
        } else {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::write(&path, want).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !drift.is_empty() {
        anyhow::bail!(
            "CRDs differ from the Rust types: {}; run `paved crds`",
            drift.join(", ")
        );
    }
    Ok(())
}
