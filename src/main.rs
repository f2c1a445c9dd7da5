fn main() {
    println!("gguf-dequant: CLI coming");
}
