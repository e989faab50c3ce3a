//! `kubectl paved ...`: kubectl finds plugins by this name.
fn main() {
    paved_cli::main()
}
