#!/usr/bin/env python3
"""Checks the performance model's PTX counts against the SASS ptxas made.

    scripts/sass-check.py MODEL.json FATBIN [-o OUT.json]

MODEL.json is `gguf-dequant model --json`; FATBIN the build's kernels.fatbin
(target/*/build/gguf-dequant-*/out/). The disassembler is not part of the
pinned toolchain; install it beside it (any 13.x reads sm_90 cubins):

    python3 -m pip install --target .toolchain-sass \
        nvidia-cuda-cuobjdump==13.2.51 nvidia-cuda-nvdisasm==13.2.51

For every kernel it counts the sm_90 SASS instructions by the pipe that runs
them (NVIDIA's account of the Hopper SM: an integer ALU pipe, two FMA pipes of
which only one runs IMAD, conversions, the load/store unit; the uniform
datapath and control apart) and divides by the elements a thread writes. The
sample launches of the model run each thread's loop once, so a kernel with no
branch but its loop's has static counts equal to its dynamic ones; kernels
with other branches are flagged. It then applies the model's roofline to the
SASS counts, so each kernel has two predictions: from PTX (the model) and from
SASS. Instructions whose pipe NVIDIA does not document (VIADD, I2FP, ...)
are charged to the integer ALU, the pessimistic choice.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys

ALU = {"IADD3", "LOP3", "SHF", "PRMT", "ISETP", "SEL", "LEA", "MOV", "IABS", "IMNMX",
       "FSEL", "FSETP", "FMNMX", "PLOP3", "P2R", "R2P", "SGXT", "BMSK", "POPC", "FLO",
       "BREV", "VIMNMX"}
FMA = {"FADD", "FMUL", "FFMA", "HADD2", "HMUL2", "HFMA2"}
IMAD = {"IMAD"}
CONVERT = {"F2F", "I2F", "F2I", "F2FP", "FRND", "MUFU"}
LSU = {"LDG", "STG", "LD", "ST"}
CONTROL = {"BRA", "EXIT", "BSSY", "BSYNC", "NOP", "RET", "WARPSYNC"}
# constant and special-register reads, and the uniform datapath
OTHER = {"LDC", "S2R", "CS2R", "S2UR"}

# the model's roofline (src/ptx/model.rs), warp-instructions a clock an SM
ISSUE, FMA_RATE, IMAD_RATE, ALU_RATE, CONVERT_RATE, LSU_RATE = 4.0, 4.0, 2.0, 2.0, 0.5, 1.0


def cuobjdump():
    found = os.environ.get("CUOBJDUMP") or next(
        iter(glob.glob(".toolchain-sass/nvidia/*/bin/cuobjdump")), None)
    if not found:
        sys.exit("no cuobjdump: see this script's header for how to install it")
    # cuobjdump runs nvdisasm, which the same install puts beside it
    os.environ["PATH"] = os.path.dirname(found) + os.pathsep + os.environ.get("PATH", "")
    return found


def kernels(sass):
    """{kernel: [opcode, ...]} of one sm_90 disassembly, predicated or not."""
    out, name = {}, None
    for line in sass.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            name = m.group(1)
            out[name] = []
            continue
        m = re.match(r"\s+/\*[0-9a-f]{4}\*/\s+(@!?U?P\w+\s+)?([A-Z0-9_.]+)", line)
        if name and m:
            out[name].append(m.group(2).split(".")[0])
    return out


def classify(ops):
    c = dict(alu=0, fma=0, imad=0, convert=0, lsu=0, uniform=0, other=0, branches=0)
    for op in ops:
        if op in CONTROL:
            c["branches"] += op == "BRA"
        elif op in FMA:
            c["fma"] += 1
        elif op in IMAD:
            c["imad"] += 1
        elif op in CONVERT:
            c["convert"] += 1
        elif op in LSU:
            c["lsu"] += 1
        elif op.startswith("U"):
            c["uniform"] += 1
        elif op in OTHER:
            c["other"] += 1
        else:  # ALU, or an opcode of undocumented pipe: charged to the ALU
            c["alu"] += 1
    return c


def predicted_ratio(c, per_thread, row, gpu):
    """The model's roofline over SASS counts per element (c) for one GPU."""
    sms, clock, copy = gpu["sms"], gpu["clock_ghz"] * 1e9, gpu["copy_bytes_per_s"]
    per_s = sms * clock * 32  # thread-instructions a second at one warp-instruction a clock
    e = lambda k: c[k] / per_thread  # per element, per thread
    times = [
        row["dram_bytes_per_elem"] / copy,
        sum(e(k) for k in ("alu", "fma", "imad", "convert", "lsu", "other")) / (ISSUE * per_s),
        max((e("fma") + e("imad")) / FMA_RATE, e("imad") / IMAD_RATE) / per_s,
        e("alu") / (ALU_RATE * per_s),
        e("convert") / (CONVERT_RATE * per_s),
        e("lsu") / (LSU_RATE * per_s),
    ]
    return row["ideal_bytes_per_elem"] / copy / max(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("fatbin")
    ap.add_argument("-o", "--out")
    a = ap.parse_args()
    model = json.load(open(a.model))
    sass = subprocess.run([cuobjdump(), "-sass", "-arch", "sm_90", a.fatbin],
                          check=True, capture_output=True, text=True).stdout
    ks = kernels(sass)
    rows, below = [], {"ptx": 0, "sass": 0}
    for r in model["rows"]:
        c = classify(ks[r["kernel"]])
        n = r["elements_per_thread"]
        w = r["warp_insts_per_elem"]
        h200 = next(g for g in model["gpus"] if g["name"] == "H200")
        ptx_ratio = next(p["ratio_to_copy"] for p in r["predicted"] if p["gpu"] == "H200")
        sass_ratio = predicted_ratio(c, n, r, h200)
        below["ptx"] += ptx_ratio < 0.9
        below["sass"] += sass_ratio < 0.9
        rows.append({
            "kernel": r["kernel"],
            "sass_per_elem": {k: round(v / n, 3) for k, v in c.items() if k != "branches"},
            "branches": c["branches"],
            # the model's PTX counts, per element and thread, in the same terms
            "ptx_per_elem": {
                "alu": round(32 * (w["int"] + 2 * w["int64"]), 3),
                "fma": round(32 * w["f32"], 3),
                "imad": round(32 * w["int_mul"], 3),
                "convert": round(32 * w["convert"], 3),
                "lsu": round(32 * (w["load"] + w["store"]), 3),
            },
            "h200_ratio": {"ptx": round(ptx_ratio, 3), "sass": round(min(sass_ratio, 1.0), 3)},
        })
    fmt = "{:<20} {:>6} {:>6} {:>6} {:>6} {:>5}  {:>5} {:>5}  {}"
    print(fmt.format("kernel", "ALU", "ptx", "FMA+", "ptx", "cvt", "H200", "sass", "branches"))
    for r in rows:
        s, p = r["sass_per_elem"], r["ptx_per_elem"]
        print(fmt.format(r["kernel"], s["alu"], p["alu"], round(s["fma"] + s["imad"], 2),
                         round(p["fma"] + p["imad"], 2), s["convert"], r["h200_ratio"]["ptx"],
                         r["h200_ratio"]["sass"], r["branches"]))
    print(f"below 0.90 of the copy on the H200: {below['ptx']} by the PTX model, "
          f"{below['sass']} by the same roofline over SASS")
    if a.out:
        doc = {"method": __doc__.strip().split("\n\n", 2)[2], "model": a.model,
               "below_090_h200": below, "rows": rows}
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
