//! With the `cuda` feature (on by default), builds the kernels of `cuda/` twice,
//! after writing their dispatch table and translation unit from the list of
//! formats (`src/formats.rs`, included below):
//!
//! 1. always, with the host C++ compiler, as the host-emulated grid (`emulate.cpp`)
//!    that runs the very same kernel source on the CPU, so that every machine can
//!    test it;
//! 2. when nvcc is found, into a fatbin embedded in the binary (SASS for the
//!    current architectures plus PTX for later ones). The build fails if any
//!    kernel spills registers or uses local memory, or if the image's kernels
//!    are not exactly those the list names.
//!
//! nvcc is looked for in `NVCC`, `CUDA_HOME`/`CUDA_PATH`, `PATH`, and the
//! project-local toolchain of `scripts/install-cuda-toolchain.sh`. Set
//! `GDQ_NO_NVCC=1` to skip it, `GDQ_CUDA_ARCHS=90,120` to build fewer architectures.

#![cfg_attr(not(feature = "cuda"), allow(dead_code, unused_imports))]

use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

// The list of formats: `for_each_format!`, THREADS_PER_BLOCK, PLAIN_VALS.
#[allow(dead_code)]
#[macro_use]
mod formats {
    include!("src/formats.rs");
}

/// SASS targets; PTX is added for the last one so that newer GPUs can JIT it.
const DEFAULT_ARCHS: &[&str] = &["75", "80", "86", "89", "90", "100", "120"];

fn main() {
    println!("cargo:rerun-if-changed=cuda");
    println!("cargo:rerun-if-changed=src/formats.rs");
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
    // Without the `cuda` feature, the CPU library alone: no C++ at all.
    #[cfg(feature = "cuda")]
    build_kernels();
}

/// Writes the kernel table, builds the emulated grid and, with nvcc, the fatbin.
#[cfg(feature = "cuda")]
fn build_kernels() {
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let generated = out_dir.join("cuda");
    write_kernel_sources(&generated);
    build_emulated(&generated);

    let archs = target_archs();
    let fatbin = out_dir.join("kernels.fatbin");
    let mut ptx = Vec::new();
    let built = env::var_os("GDQ_NO_NVCC").is_none()
        && match find_nvcc() {
            Some(nvcc) => {
                build_fatbin(&nvcc, &archs, &generated, &fatbin);
                ptx = build_ptx(&nvcc, &archs, &generated, &out_dir);
                true
            }
            None => false,
        };
    write_ptx_sources(&out_dir, &ptx, built);
    if built {
        println!("cargo:rustc-cfg=gdq_kernels");
        println!("cargo:rustc-env=GDQ_FATBIN={}", fatbin.display());
        println!("cargo:rustc-env=GDQ_CUDA_ARCHS={}", archs.join(","));
    } else {
        println!("cargo:rustc-env=GDQ_CUDA_ARCHS=");
    }
}

/// The architectures whose PTX the interpreter (`src/ptx/`) runs: 90, from
/// which the SASS of the H100 and H200 is made, and the newest one, whose PTX
/// the fatbin embeds for later GPUs (the two come from different NVVM
/// versions).
fn interpreted_archs(archs: &[String]) -> Vec<String> {
    let mut v = vec!["90".to_string()];
    let last = archs.last().expect("at least one CUDA architecture");
    if *last != "90" {
        v.push(last.clone());
    }
    v
}

/// Has nvcc emit the kernels' PTX for each interpreted architecture, with the
/// fatbin's flags; returns (architecture, file).
#[cfg(feature = "cuda")]
fn build_ptx(
    nvcc: &Path,
    archs: &[String],
    generated: &Path,
    out_dir: &Path,
) -> Vec<(String, PathBuf)> {
    interpreted_archs(archs)
        .into_iter()
        .map(|a| {
            let file = out_dir.join(format!("kernels.compute_{a}.ptx"));
            let mut cmd = nvcc_command(nvcc, generated);
            cmd.arg("-ptx")
                .arg(format!("-arch=compute_{a}"))
                .arg("-o")
                .arg(&file)
                .arg(generated.join("all.cu"));
            let output = cmd
                .output()
                .unwrap_or_else(|e| panic!("running {}: {e}", nvcc.display()));
            if !output.status.success() {
                panic!(
                    "nvcc -ptx failed on cuda/all.cu:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            (a, file)
        })
        .collect()
}

/// Writes `ptx_sources.rs`: the PTX texts, included into the library as
/// `SOURCES` (empty without nvcc).
fn write_ptx_sources(out_dir: &Path, ptx: &[(String, PathBuf)], with_log: bool) {
    let log = if with_log {
        format!(
            "include_str!({:?})",
            out_dir.join("ptxas.log").display().to_string()
        )
    } else {
        "\"\"".to_string()
    };
    let mut s = format!(
        "/// ptxas's report on the fatbin's kernels (registers, spills), or empty.\n\
         pub const PTXAS_LOG: &str = {log};\n"
    );
    s += concat!(
        "/// (architecture, PTX text) of each module build.rs had nvcc emit.\n",
        "pub const SOURCES: &[(&str, &str)] = &[\n"
    );
    for (arch, file) in ptx {
        writeln!(
            s,
            "    ({arch:?}, include_str!({:?})),",
            file.display().to_string()
        )
        .unwrap();
    }
    s += "];\n";
    let path = out_dir.join("ptx_sources.rs");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(s.as_str()) {
        std::fs::write(&path, s).unwrap();
    }
}

/// Every kernel of the list: (name, type id, threads per block, is a tail).
fn listed_kernels() -> Vec<(&'static str, u32, u32, bool)> {
    macro_rules! collect {
        ($( $file:ident { $( $ty:ident => $name:ident : $parts:literal $(/ $tail:ident)? ),+ } )*) => {{
            let mut v = vec![$( $( (stringify!($name), type_id(stringify!($ty)), $parts, false), )+ )*];
            v.extend([$( $( $( (stringify!($tail), type_id(stringify!($ty)), 1, true), )? )+ )*]);
            v
        }};
    }
    for_each_format!(collect)
}

/// The files of the list, in order, each once.
fn listed_files() -> Vec<&'static str> {
    macro_rules! collect {
        ($( $file:ident { $( $ty:ident => $name:ident : $parts:literal $(/ $tail:ident)? ),+ } )*) => {
            vec![$( stringify!($file) ),*]
        };
    }
    for_each_format!(collect)
}

/// ggml's id of a type, from the `GgmlType` declaration in src/types.rs.
fn type_id(variant: &str) -> u32 {
    let types = std::fs::read_to_string("src/types.rs").expect("reading src/types.rs");
    println!("cargo:rerun-if-changed=src/types.rs");
    types
        .lines()
        .find_map(|l| {
            let (name, id) = l.trim().trim_end_matches(',').split_once(" = ")?;
            (name == variant).then(|| id.parse().ok())?
        })
        .unwrap_or_else(|| panic!("src/types.rs declares no GgmlType::{variant} = <id>"))
}

/// Writes, from the list of formats, the C side's view of it:
/// - `formats.def`: `GDQ_FORMAT(name, id, parts)` for every format and
///   `GDQ_TAIL(name, id)` for every tail kernel (the emulator's dispatch);
/// - `all.cu`: the translation unit of every format's kernels, checking that
///   each splits a block among the threads the list says;
/// - `geometry.h`: the launch constants Rust uses.
fn write_kernel_sources(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut def = String::from("/* Generated by build.rs from src/formats.rs. */\n");
    let mut checks = String::new();
    for (name, id, parts, tail) in listed_kernels() {
        if tail {
            writeln!(def, "GDQ_TAIL({name}, {id})").unwrap();
        } else {
            writeln!(def, "GDQ_FORMAT({name}, {id}, {parts})").unwrap();
            writeln!(
                checks,
                "static_assert({name}::PARTS == {parts}, \"{name}: threads per block differ from src/formats.rs\");"
            )
            .unwrap();
        }
    }
    let mut all = String::from(
        "/* Generated by build.rs from src/formats.rs: every format's kernels in one\n   \
         translation unit, for nvcc (the fatbin) and the host compiler (emulate.cpp). */\n",
    );
    for file in listed_files() {
        writeln!(all, "#include \"{file}.cu\"").unwrap();
    }
    all += &checks;
    let geometry = format!(
        "/* Generated by build.rs from src/formats.rs. */\n\
         #define GDQ_THREADS {}\n#define GDQ_PLAIN_VALS {}\n",
        formats::THREADS_PER_BLOCK,
        formats::PLAIN_VALS
    );
    for (file, text) in [
        ("formats.def", def),
        ("all.cu", all),
        ("geometry.h", geometry),
    ] {
        let path = dir.join(file);
        // rewritten only when changed, so that nothing rebuilds for nothing
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).unwrap();
        }
    }
}

#[cfg(feature = "cuda")]
fn build_emulated(generated: &Path) {
    cc::Build::new()
        .cpp(true)
        .file("cuda/emulate.cpp")
        .include(generated)
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
    // Watched only where it is: cargo reruns a build script on every build
    // while a file it watches is missing, which a checkout without the
    // toolchain, and every packaged crate (it has no .toolchain), would pay
    // for with a recompile of the crate each time (and with nvcc on the
    // PATH, every architecture's kernels). The install script touches
    // build.rs, so that a toolchain installed later is found.
    let stamp = local.join("stamp");
    if stamp.is_file() {
        println!("cargo:rerun-if-changed={}", stamp.display());
    }
    candidates.push(local.join("nvidia/cu13/bin").join(exe));
    candidates.into_iter().find(|p| p.is_file())
}

/// nvcc with the flags every compilation of the kernels shares.
fn nvcc_command(nvcc: &Path, generated: &Path) -> Command {
    let mut cmd = Command::new(nvcc);
    cmd.arg("-std=c++17")
        .arg("-O3")
        // ggml's products are exact in f32, so contraction could not change a
        // result; turning it off keeps the GPU's arithmetic the host's, op for op.
        .arg("--fmad=false")
        .arg(format!("-I{}", generated.display()))
        .arg("-Icuda");
    // nvcc finds its own pieces relative to itself; the PyPI layout also needs
    // the CUDA headers next to it on the include path.
    if let Some(root) = nvcc.parent().and_then(|b| b.parent()) {
        let inc = root.join("include");
        if inc.is_dir() {
            cmd.arg(format!("-I{}", inc.display()));
        }
    }
    cmd
}

fn build_fatbin(nvcc: &Path, archs: &[String], generated: &Path, fatbin: &Path) {
    let mut cmd = nvcc_command(nvcc, generated);
    cmd.arg("-fatbin").arg("-Xptxas").arg("-v");
    for a in archs {
        cmd.arg(format!("-gencode=arch=compute_{a},code=sm_{a}"));
    }
    let last = archs.last().expect("at least one CUDA architecture");
    cmd.arg(format!("-gencode=arch=compute_{last},code=compute_{last}"));
    cmd.arg("-o").arg(fatbin).arg(generated.join("all.cu"));
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
    check_kernel_names(&log);
    let bad = resource_problems(&log);
    if !bad.is_empty() {
        panic!(
            "kernels must not spill or use local memory:\n{}",
            bad.join("\n")
        );
    }
}

/// Fails the build unless the image's kernels (every entry `ptxas -v` reports)
/// are exactly those the list names, in every output type: a name Rust can ask
/// for that the image lacks would otherwise fail only on a GPU, at load time.
fn check_kernel_names(log: &str) {
    let compiled: BTreeSet<String> = log
        .lines()
        .filter_map(|l| l.split("Compiling entry function '").nth(1))
        .filter_map(|rest| rest.split('\'').next())
        .map(str::to_string)
        .collect();
    let listed: BTreeSet<String> = listed_kernels()
        .iter()
        .flat_map(|(name, ..)| ["f32", "f16", "bf16"].map(|out| format!("gdq_{name}_{out}")))
        .collect();
    let missing: Vec<_> = listed.difference(&compiled).collect();
    let unlisted: Vec<_> = compiled.difference(&listed).collect();
    if !missing.is_empty() || !unlisted.is_empty() {
        panic!(
            "the kernel image and src/formats.rs disagree:\n  listed but not compiled: {missing:?}\n  compiled but not listed: {unlisted:?}"
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
