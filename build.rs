//! Builds the kernels of `cuda/` twice:
//!
//! 1. always, with the host C++ compiler, as the host-emulated grid (`emulate.cpp`)
//!    that runs the very same kernel source on the CPU, so that every machine can
//!    test it;
//! 2. when nvcc is found, into a fatbin embedded in the binary (SASS for the
//!    current architectures plus PTX for later ones). The build fails if any
//!    kernel spills registers or uses local memory.
//!
//! nvcc is looked for in `NVCC`, `CUDA_HOME`/`CUDA_PATH`, `PATH`, and the
//! project-local toolchain of `scripts/install-cuda-toolchain.sh`. Set
//! `GDQ_NO_NVCC=1` to skip it, `GDQ_CUDA_ARCHS=90,120` to build fewer architectures.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// SASS targets; PTX is added for the last one so that newer GPUs can JIT it.
const DEFAULT_ARCHS: &[&str] = &["75", "80", "86", "89", "90", "100", "120"];

fn main() {
    println!("cargo:rerun-if-changed=cuda");
    println!("cargo:rerun-if-changed=build.rs");
    for var in [
        "NVCC",
        "CUDA_HOME",
        "CUDA_PATH",
        "GDQ_NO_NVCC",
        "GDQ_CUDA_ARCHS",
        "PATH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo::rustc-check-cfg=cfg(gdq_kernels)");

    build_emulated();

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let archs = target_archs();
    let fatbin = out_dir.join("kernels.fatbin");
    let built = env::var_os("GDQ_NO_NVCC").is_none()
        && match find_nvcc() {
            Some(nvcc) => {
                build_fatbin(&nvcc, &archs, &fatbin);
                true
            }
            None => false,
        };
    if built {
        println!("cargo:rustc-cfg=gdq_kernels");
        println!("cargo:rustc-env=GDQ_FATBIN={}", fatbin.display());
        println!("cargo:rustc-env=GDQ_CUDA_ARCHS={}", archs.join(","));
    } else {
        println!("cargo:rustc-env=GDQ_CUDA_ARCHS=");
    }
}

fn build_emulated() {
    cc::Build::new()
        .cpp(true)
        .file("cuda/emulate.cpp")
        .include("cuda")
        .std("c++17")
        .opt_level(2)
        // ggml's reference is built without contraction; keep the host the same.
        .flag("-ffp-contract=off")
        // Kernels read raw bytes through block and vector types.
        .flag("-fno-strict-aliasing")
        .flag_if_supported("-fno-fast-math")
        .flag_if_supported("-Wno-unknown-pragmas")
        .warnings(true)
        .compile("gdq_emulate");
}

fn target_archs() -> Vec<String> {
    match env::var("GDQ_CUDA_ARCHS") {
        Ok(s) if !s.trim().is_empty() => s.split(',').map(|a| a.trim().to_string()).collect(),
        _ => DEFAULT_ARCHS.iter().map(|s| s.to_string()).collect(),
    }
}

fn find_nvcc() -> Option<PathBuf> {
    let exe = if cfg!(windows) { "nvcc.exe" } else { "nvcc" };
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = env::var_os("NVCC") {
        candidates.push(PathBuf::from(p));
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(p) = env::var_os(var) {
            candidates.push(Path::new(&p).join("bin").join(exe));
        }
    }
    if let Some(path) = env::var_os("PATH") {
        candidates.extend(env::split_paths(&path).map(|d| d.join(exe)));
    }
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let local = manifest.join(".toolchain");
    println!("cargo:rerun-if-changed={}", local.join("stamp").display());
    candidates.push(local.join("nvidia/cu13/bin").join(exe));
    candidates.into_iter().find(|p| p.is_file())
}

fn build_fatbin(nvcc: &Path, archs: &[String], fatbin: &Path) {
    let mut cmd = Command::new(nvcc);
    cmd.arg("-fatbin")
        .arg("-std=c++17")
        .arg("-O3")
        // ggml's products are exact in f32, so contraction could not change a
        // result; turning it off keeps the GPU's arithmetic the host's, op for op.
        .arg("--fmad=false")
        .arg("-Xptxas")
        .arg("-v")
        .arg("-Icuda");
    for a in archs {
        cmd.arg(format!("-gencode=arch=compute_{a},code=sm_{a}"));
    }
    let last = archs.last().expect("at least one CUDA architecture");
    cmd.arg(format!("-gencode=arch=compute_{last},code=compute_{last}"));
    cmd.arg("-o").arg(fatbin).arg("cuda/all.cu");
    // nvcc finds its own pieces relative to itself; the PyPI layout also needs
    // the CUDA headers next to it on the include path.
    if let Some(root) = nvcc.parent().and_then(|b| b.parent()) {
        let inc = root.join("include");
        if inc.is_dir() {
            cmd.arg(format!("-I{}", inc.display()));
        }
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", nvcc.display()));
    let log = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("ptxas.log"), &log).unwrap();
    if !output.status.success() {
        panic!("nvcc failed on cuda/all.cu:\n{log}");
    }
    let bad = resource_problems(&log);
    if !bad.is_empty() {
        panic!(
            "kernels must not spill or use local memory:\n{}",
            bad.join("\n")
        );
    }
}

/// Lines of a `ptxas -v` report that show spills or a stack frame, with the
/// function each belongs to.
fn resource_problems(log: &str) -> Vec<String> {
    let mut current = String::new();
    let mut bad = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Function properties for ").nth(1) {
            current = rest.trim().to_string();
        }
        let nonzero = |key: &str| {
            line.split(key)
                .next()
                .and_then(|before| before.split_whitespace().last())
                .is_some_and(|n| n != "0")
        };
        if line.contains("bytes stack frame")
            && (nonzero(" bytes stack frame")
                || nonzero(" bytes spill stores")
                || nonzero(" bytes spill loads"))
        {
            bad.push(format!("{current}: {}", line.trim()));
        }
        if line.contains("lmem") && !line.contains("0 bytes lmem") {
            bad.push(format!("{current}: {}", line.trim()));
        }
    }
    bad
}
