fn main() {
    paved_cli::main()
}
