//! `model`: the GPU kernels' performance model, from their PTX run by the
//! interpreter (`gguf_dequant::ptx::model`), for the H100 and H200.

use std::process::ExitCode;

use gguf_dequant::ptx::{self, model};
use gguf_dequant::Result;
use serde_json::json;

pub fn run(arch: u16, json: bool) -> Result<ExitCode> {
    let arch = arch.to_string();
    let module = ptx::builtin(&arch)?;
    let rows = model::rows(module, ptx::PTXAS_LOG)?;
    if json {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| {
                let c = &r.counts;
                json!({
                    "type": r.ty.name(),
                    "out": r.out.name(),
                    "kernel": r.kernel,
                    "elements": c.elements,
                    "elements_per_thread": r.elements_per_thread,
                    "ideal_bytes_per_elem": c.ideal_bytes as f64 / c.elements as f64,
                    "dram_bytes_per_elem": c.dram_bytes as f64 / c.elements as f64,
                    "warp_insts_per_elem": model::Class::ALL
                        .iter()
                        .map(|&cl| (cl.name().to_string(), json!(c.per_element(cl))))
                        .collect::<serde_json::Map<_, _>>(),
                    "l1_sectors_per_elem": c.l1_sectors as f64 / c.elements as f64,
                    "table_loads_per_elem": c.table_loads as f64 / c.elements as f64,
                    "registers_sm90": r.registers,
                    "occupancy_sm90": r.registers.map(|n| model::occupancy(n, gguf_dequant::kernels::THREADS)),
                    "predicted": r.predictions.iter().map(|p| json!({
                        "gpu": p.gpu,
                        "gelem_per_s": p.elements_per_s / 1e9,
                        "ratio_to_copy": p.ratio_to_copy,
                        "bound_by": p.bound,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = json!({
            "ptx": format!("compute_{arch} ({})", module.target),
            "gpus": model::GPUS.iter().map(|g| json!({
                "name": g.name, "sms": g.sms, "clock_ghz": g.clock_ghz,
                "copy_bytes_per_s": g.copy_bytes_per_s,
            })).collect::<Vec<_>>(),
            "method": "PTX warp-instructions per element by class and distinct 32-byte sectors, \
                       from one launch of 64 thread blocks over random valid blocks; tables taken as \
                       cache-resident; roofline at 4 warp-instructions a clock an SM (f32 4, integer 2 \
                       with 64-bit ops counted twice, float conversions 0.5, loads and stores 1, L1 \
                       sectors 4) and DRAM at the copy's bandwidth. PTX counts are not SASS; latency, \
                       grid tails and table misses are left out.",
            "rows": rows,
        });
        outln!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON of plain values")
        );
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "performance model of the kernels' compute_{arch} PTX ({}): predicted ratio to the copy",
        module.target
    );
    outln!(
        "warp-instructions an element: issued (renames not counted), integer ALU slots \
         (64-bit operations twice), FMA pipes (f32 and IMAD), float conversions"
    );
    outln!(
        "{:<8} {:<5} {:>9} {:>9} {:>7} {:>6} {:>6} {:>6}  {:>6} {:>6}  bound (H200)",
        "type",
        "out",
        "bytes/el",
        "DRAM/ide",
        "inst/el",
        "alu",
        "fma",
        "cvt",
        "H100",
        "H200"
    );
    for r in &rows {
        let c = &r.counts;
        let per = |cl| c.per_element(cl);
        outln!(
            "{:<8} {:<5} {:>9.3} {:>9.3} {:>7.3} {:>6.3} {:>6.3} {:>6.3}  {:>6.2} {:>6.2}  {}",
            r.ty.name(),
            r.out.name(),
            c.ideal_bytes as f64 / c.elements as f64,
            c.dram_bytes as f64 / c.ideal_bytes as f64,
            c.issued_warp_insts() as f64 / c.elements as f64,
            per(model::Class::Int) + 2.0 * per(model::Class::Int64),
            per(model::Class::F32) + per(model::Class::IntMul),
            per(model::Class::Convert),
            r.predictions[0].ratio_to_copy,
            r.predictions[1].ratio_to_copy,
            r.predictions[1].bound
        );
    }
    Ok(ExitCode::SUCCESS)
}
