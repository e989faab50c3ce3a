//! `paved`: offline tooling for claims repositories and platform teams, and
//! `trace` for a live cluster. Built as `paved` and as `kubectl-paved`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

pub mod diff;
pub mod generate;
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
