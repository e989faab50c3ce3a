//! The `paved-operator` binary: everything is in the library.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    paved_operator::run::run().await
}
