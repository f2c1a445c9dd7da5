//! The command line as a user runs it: the real binary on the fixture files.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gguf-dequant"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run gguf-dequant")
}

/// A temporary folder for one test and the path `name` in it; the folder
/// goes when the first is dropped.
fn tmp(name: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(&format!("cli-{name}"));
    let path = dir.join(name);
    (dir, path)
}

fn real() -> String {
    fixture("real-weights.gguf").to_string_lossy().into_owned()
}

#[test]
fn inspect_json_matches_the_manifest() {
    let out = run(&["inspect", &real(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["version"], 3);
    assert_eq!(doc["alignment"], 32);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("manifest.json")).unwrap()).unwrap();
    let tensors = doc["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 28);
    for m in manifest["tensors"].as_array().unwrap() {
        let t = tensors
            .iter()
            .find(|t| t["name"] == m["name"])
            .expect("tensor listed");
        assert_eq!(t["type"], m["ggml_type"]);
        assert_eq!(t["ne"], m["ne_ggml"]);
        assert_eq!(t["offset"], m["data_offset_in_file"]);
        assert_eq!(t["nbytes"], m["quant_bytes"]);
    }
}

#[test]
fn inspect_text_lists_every_tensor() {
    let out = run(&["inspect", &real()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("GGUF v3, alignment 32"), "{text}");
    for t in real_tensors() {
        assert!(text.contains(&t.name), "{} missing", t.name);
    }
}

/// Reads a safetensors file written by `convert`: (header, data section).
fn read_safetensors(path: &Path) -> (serde_json::Value, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (
        serde_json::from_slice(&bytes[8..8 + n]).unwrap(),
        bytes[8 + n..].to_vec(),
    )
}

fn tensor_bytes<'a>(header: &serde_json::Value, data: &'a [u8], name: &str) -> &'a [u8] {
    let off = header[name]["data_offsets"].as_array().unwrap();
    &data[off[0].as_u64().unwrap() as usize..off[1].as_u64().unwrap() as usize]
}

#[test]
fn convert_writes_ggml_values_in_every_dtype_on_cpu_and_emulated_kernels() {
    let tensors = real_tensors();
    for dtype in ["f32", "f16", "bf16"] {
        let mut outputs = Vec::new();
        let devices: &[&str] = if cfg!(feature = "cuda") {
            &["cpu", "emulated"]
        } else {
            &["cpu"]
        };
        for &device in devices {
            let (_dir, path) = tmp(&format!("real-{dtype}-{device}.safetensors"));
            let out = run(&[
                "convert",
                &real(),
                "-o",
                path.to_str().unwrap(),
                "--dtype",
                dtype,
                "--device",
                device,
            ]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let (header, data) = read_safetensors(&path);
            assert_eq!(header["__metadata__"]["format"], "pt");
            for t in &tensors {
                assert_eq!(
                    header[&t.name]["shape"],
                    serde_json::json!([64, 1536]),
                    "row-major shape"
                );
                assert_eq!(header[&t.name]["dtype"], dtype.to_uppercase());
                let got = tensor_bytes(&header, &data, &t.name);
                let want: Vec<u8> = match dtype {
                    "f32" => t.expected.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    "f16" => to_f16(&t.expected)
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect(),
                    _ => to_bf16(&t.expected)
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect(),
                };
                assert!(
                    got == want.as_slice(),
                    "{} {dtype} {device} differs from ggml",
                    t.name
                );
            }
            outputs.push(std::fs::read(&path).unwrap());
            std::fs::remove_file(&path).unwrap();
        }
        assert!(
            outputs.iter().all(|o| *o == outputs[0]),
            "{dtype}: emulated kernels must reproduce the CPU file to the bit"
        );
    }
}

#[test]
fn convert_selected_tensors_and_refuse_unknown_names() {
    let (_dir, path) = tmp("some.safetensors");
    let out = run(&[
        "convert",
        &real(),
        "-o",
        path.to_str().unwrap(),
        "--tensor",
        "minilm.q6_k",
        "--tensor",
        "minilm.iq2_xxs",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (header, _) = read_safetensors(&path);
    let names: Vec<_> = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    assert_eq!(names.len(), 2);
    let (_dir, missing) = tmp("missing.safetensors");
    let out = run(&[
        "convert",
        &real(),
        "-o",
        missing.to_str().unwrap(),
        "--tensor",
        "no.such",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tensor named 'no.such'"));
    assert!(!missing.exists());
}

#[test]
#[cfg(feature = "cuda")]
fn verify_emulated_reports_every_tensor_bit_identical() {
    for dtype in ["f32", "bf16"] {
        let out = run(&["verify", &real(), "--device", "emulated", "--dtype", dtype]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert_eq!(text.matches("bit-identical,").count(), 28, "{text}");
        assert!(text.contains("all 28 tensors bit-identical"));
    }
}

/// A build without the `cuda` feature says so for every GPU command.
#[test]
#[cfg(not(feature = "cuda"))]
fn gpu_commands_say_the_build_has_no_gpu_support() {
    for args in [
        vec!["devices"],
        vec!["load", &real()],
        vec!["verify", &real(), "--device", "emulated"],
        vec!["bench", "--device", "cuda", "--elems", "256"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("without the `cuda` feature"),
            "{args:?}: {err}"
        );
    }
}

#[test]
#[cfg(feature = "cuda")]
fn devices_reports_without_a_gpu() {
    let out = run(&["devices", "--json"]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["kernels_embedded"].is_boolean());
    let out = run(&["devices"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("kernels:"));
}

#[test]
fn cuda_without_a_gpu_is_a_clear_error_and_auto_falls_back() {
    #[cfg(feature = "cuda")]
    if gguf_dequant::gpu::Gpu::new(0).is_ok() {
        println!("SKIPPED: this machine has a usable GPU");
        return;
    }
    let (_dir, path) = tmp("cuda.safetensors");
    let out = run(&[
        "convert",
        &real(),
        "-o",
        path.to_str().unwrap(),
        "--device",
        "cuda",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("cuda"), "{err}");
    assert!(!path.exists(), "no output on failure");
    let out = run(&[
        "convert",
        &real(),
        "-o",
        path.to_str().unwrap(),
        "--device",
        "auto",
        "--tensor",
        "minilm.q4_0",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("using the CPU"));
    assert!(path.exists());
}

#[test]
fn the_default_job_checks_every_type() {
    let out = bin().env("GDQ_DEFAULT_JOB_ROWS", "4").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for ty in gguf_dequant::GgmlType::dequantizable() {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{} ", ty.name())) && l.contains("bit-identical")),
            "{ty}: {text}"
        );
    }
}

/// Every malformed file is refused with exit code 1: no panic (101), no signal,
/// quickly.
#[test]
fn malformed_files_are_refused_without_panic_or_signal() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/malformed");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let (_dir, out_path) = tmp("malformed.safetensors");
        for args in [
            vec!["inspect", path.to_str().unwrap()],
            vec![
                "convert",
                path.to_str().unwrap(),
                "-o",
                out_path.to_str().unwrap(),
            ],
        ] {
            let start = Instant::now();
            let out = bin()
                .args(&args)
                .env("GDQ_REPORT_PEAK_RSS", "1")
                .output()
                .unwrap();
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{args:?} took too long"
            );
            // Bounded memory: none of these files may make the reader allocate
            // from its claims (each is a few KB; the process itself needs a few MB).
            #[cfg(target_os = "linux")]
            {
                let err = String::from_utf8_lossy(&out.stderr);
                let kb: u64 = err
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM: "))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
                    .expect("peak memory reported");
                assert!(kb < 64 * 1024, "{args:?} peaked at {kb} kB");
            }
            assert_eq!(
                out.status.code(),
                Some(1),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).starts_with("error: "),
                "{args:?}"
            );
            assert!(
                !String::from_utf8_lossy(&out.stderr).contains("panicked"),
                "{args:?}"
            );
            assert!(!out_path.exists(), "{args:?} left an output behind");
        }
        n += 1;
    }
    assert!(
        n >= 20,
        "the corpus should hold at least 20 files, found {n}"
    );
}

/// GPU failures mid-conversion (injected into the emulated kernels, where there
/// is no GPU) end in an error naming the tensor, exit code 1, and no output.
#[test]
#[cfg(feature = "cuda")]
fn device_faults_leave_no_partial_output() {
    for fault in ["launch:5", "oom:1", "lost:17"] {
        let dir = TempDir::new(&format!("cli-fault-{}", fault.replace(':', "-")));
        let path = dir.join("out.safetensors");
        let out = bin()
            .args([
                "convert",
                &real(),
                "-o",
                path.to_str().unwrap(),
                "--device",
                "emulated",
            ])
            .env("GDQ_INJECT_FAULT", fault)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{fault}: {err}");
        assert!(
            err.contains("CUDA") && err.contains("tensor 'minilm."),
            "{fault}: {err}"
        );
        assert!(!path.exists(), "{fault}: output left behind");
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert!(leftovers.is_empty(), "{fault}: left behind: {leftovers:?}");
    }
}

/// Peak resident memory of a run, in kB, from `GDQ_REPORT_PEAK_RSS`.
#[cfg(target_os = "linux")]
fn peak_rss_kb(args: &[&str]) -> u64 {
    let out = bin()
        .args(args)
        .env("GDQ_REPORT_PEAK_RSS", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {err}");
    reported_peak_kb(&err)
}

/// `inspect` reads the header only: a file declaring 8 GiB of tensors (sparse on
/// disk) is inspected in a few MB.
#[cfg(target_os = "linux")]
#[test]
fn inspect_memory_is_bounded_by_the_metadata() {
    use gguf_dequant::GgmlType;
    // The header by hand: one q8_0 tensor of 2^33 elements (9 GB), then a sparse file.
    let (_dir, path) = tmp("sparse.gguf");
    let ne = [8192u64, 1 << 20];
    let mut f = Vec::new();
    f.extend_from_slice(b"GGUF");
    f.extend_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(&1u64.to_le_bytes()); // tensors
    f.extend_from_slice(&0u64.to_le_bytes()); // kv
    f.extend_from_slice(&4u64.to_le_bytes());
    f.extend_from_slice(b"huge");
    f.extend_from_slice(&2u32.to_le_bytes());
    f.extend_from_slice(&ne[0].to_le_bytes());
    f.extend_from_slice(&ne[1].to_le_bytes());
    f.extend_from_slice(&(GgmlType::Q8_0.id()).to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes());
    while f.len() % 32 != 0 {
        f.push(0);
    }
    let data = GgmlType::Q8_0.bytes_for(ne[0] * ne[1]).unwrap();
    let file = std::fs::File::create(&path).unwrap();
    use std::io::Write;
    (&file).write_all(&f).unwrap();
    file.set_len(f.len() as u64 + data).unwrap();
    let kb = peak_rss_kb(&["inspect", path.to_str().unwrap()]);
    std::fs::remove_file(&path).ok();
    assert!(kb < 64 * 1024, "inspect of a 9 GB file peaked at {kb} kB");
}

/// `convert` streams: converting a model of many tensors peaks near the file
/// (mapped pages count as resident) plus one tensor's output, not the sum.
#[cfg(target_os = "linux")]
#[test]
fn convert_memory_stays_near_one_tensor() {
    use gguf_dequant::gguf::GgufWriter;
    use gguf_dequant::synth::{random_blocks, Rng};
    use gguf_dequant::GgmlType;
    let mut w = GgufWriter::new();
    let mut rng = Rng(3);
    let ne = [4096u64, 512]; // 2 Mi elements: 8 MiB of f32 each
    for i in 0..24 {
        w.add_tensor(
            format!("t{i}"),
            GgmlType::Q4_0,
            &ne,
            random_blocks(GgmlType::Q4_0, 2 << 20 >> 5, &mut rng),
        )
        .unwrap();
    }
    let (_dir, path) = tmp("many.gguf");
    std::fs::write(&path, w.to_bytes()).unwrap();
    let (_out_dir, out) = tmp("many.safetensors");
    let kb = peak_rss_kb(&[
        "convert",
        path.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let file_kb = std::fs::metadata(&path).unwrap().len() / 1024;
    let total_out_kb = std::fs::metadata(&out).unwrap().len() / 1024;
    std::fs::remove_file(&path).ok();
    std::fs::remove_file(&out).ok();
    // One tensor's output is 8 MiB; allow it twice plus 48 MiB for the process.
    let bound = file_kb + 2 * 8 * 1024 + 48 * 1024;
    assert!(
        kb < bound,
        "peak {kb} kB, bound {bound} kB (all outputs together: {total_out_kb} kB)"
    );
    assert!(
        total_out_kb > bound,
        "the test must be able to tell streaming from not"
    );
}

/// `--tensor` names are looked up, never compared with every tensor: naming
/// each of 60,000 tensors costs about what converting the whole file costs,
/// where names x tensors comparisons took many times as long. A ratio within
/// this run (the best of three runs of each), not a time: the same binary on
/// the same machine, the same output; only the selection differs.
#[test]
fn naming_every_tensor_costs_about_the_whole_file() {
    use gguf_dequant::gguf::GgufWriter;
    use gguf_dequant::GgmlType;
    // Quadratic work was 26 times the whole file's at this count (15.2 s against
    // 0.59 s, measured here): the bound leaves room for a noisy machine.
    let n = 60_000;
    let mut w = GgufWriter::new();
    for i in 0..n {
        w.add_tensor(format!("t{i}"), GgmlType::F32, &[1], vec![0u8; 4])
            .unwrap();
    }
    let (_dir, path) = tmp("many-names.gguf");
    std::fs::write(&path, w.to_bytes()).unwrap();
    let out = path.with_extension("safetensors");
    let whole = [
        "convert",
        path.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]
    .map(String::from);
    // every name, last first, and one twice (still one tensor)
    let mut named = whole.to_vec();
    for i in (0..n).rev().chain([7]) {
        named.extend(["--tensor".to_string(), format!("t{i}")]);
    }
    let best = |args: &[String]| {
        (0..3)
            .map(|_| {
                let start = Instant::now();
                let run = bin().args(args).output().unwrap();
                assert!(
                    run.status.success(),
                    "{}",
                    String::from_utf8_lossy(&run.stderr)
                );
                (start.elapsed(), std::fs::read(&out).unwrap())
            })
            .min()
            .unwrap()
    };
    let (whole_time, whole_file) = best(&whole);
    let (named_time, named_file) = best(&named);
    assert!(
        named_file == whole_file,
        "naming every tensor is the whole file"
    );
    assert!(
        named_time < 6 * whole_time,
        "{n} names took {named_time:?}, the whole file {whole_time:?}"
    );
}
