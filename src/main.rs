fn main() {
    std::process::exit(irun::main());
}
