//! Lists the CPU decoders that are written (their file in `src/cpu/` is not a
//! `//! PLACEHOLDER`), so that the decoder targets fuzz exactly those and take
//! in each new format as it lands, without ever calling a `todo!()`.

use std::path::Path;

fn main() {
    let cpu = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/cpu");
    println!("cargo:rerun-if-changed={}", cpu.display());
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&cpu).expect("src/cpu") {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.extension().is_none_or(|e| e != "rs") || stem == "mod" {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path).unwrap();
        // Helpers (k_common.rs) implement no format; placeholders would `todo!()`.
        if text.starts_with("//! PLACEHOLDER") || !text.contains("impl Format for") {
            continue;
        }
        if stem == "plain" {
            names.extend(["f32", "f16", "bf16"].map(String::from));
        } else {
            names.push(stem);
        }
    }
    names.sort();
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("ready.rs");
    std::fs::write(
        out,
        format!(
            "/// Types whose CPU decoder is written.\npub const READY: &[&str] = &{names:?};\n"
        ),
    )
    .unwrap();
}
