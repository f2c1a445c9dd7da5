//! The module image `cuModuleLoadData` is handed: a fatbin (nvcc's
//! container of SASS and PTX), or PTX text. The interpreter cannot run SASS:
//! from a fatbin it takes the kernel names of the sm_90 cubin (the code an
//! H200 would run) and runs the build's own compute_90 PTX of the same
//! kernels (same source and flags), after checking that the two name the
//! same kernels.

use crate::host;

const FATBIN_MAGIC: u32 = 0xba55_ed50;

/// What a fatbin holds: (kind, arch, payload) for each entry; kind 1 is
/// PTX, 2 a cubin.
pub struct Fatbin {
    pub entries: Vec<(u16, u32, Vec<u8>)>,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

pub enum Image {
    Fatbin(Fatbin),
    Ptx(String),
}

/// Reads the image at `ptr` (its length comes from its own header, or the
/// PTX text's terminating NUL).
pub fn read(ptr: usize) -> Result<Image, String> {
    let head = host::read(ptr, 16)?;
    if u32_at(&head, 0) == Some(FATBIN_MAGIC) {
        let header = u16_at(&head, 6).unwrap_or(0) as usize;
        let size = u64_at(&head, 8).unwrap_or(0) as usize;
        if header < 16 || size > (1 << 32) {
            return Err(format!(
                "a fatbin header of {header} bytes for {size} bytes"
            ));
        }
        let all = host::read(ptr, header + size)?;
        let mut entries = Vec::new();
        let mut o = header;
        while o < all.len() {
            let bad = || format!("a truncated fatbin entry at byte {o}");
            let kind = u16_at(&all, o).ok_or_else(bad)?;
            let eh = u32_at(&all, o + 4).ok_or_else(bad)? as usize;
            let len = u64_at(&all, o + 8).ok_or_else(bad)? as usize;
            let arch = u32_at(&all, o + 28).ok_or_else(bad)?;
            let payload = all.get(o + eh..o + eh + len).ok_or_else(bad)?.to_vec();
            entries.push((kind, arch, payload));
            o += eh + len;
        }
        return Ok(Image::Fatbin(Fatbin { entries }));
    }
    if head.starts_with(b"\x7fELF") {
        return Err(
            "a bare cubin: the software driver runs PTX (hand it a fatbin or PTX text)".into(),
        );
    }
    // PTX text, NUL-terminated: read it a page at a time.
    let mut text = Vec::new();
    loop {
        let chunk =
            host::read(ptr + text.len(), 4096).or_else(|_| host::read(ptr + text.len(), 1))?;
        if let Some(end) = chunk.iter().position(|&b| b == 0) {
            text.extend_from_slice(&chunk[..end]);
            break;
        }
        text.extend_from_slice(&chunk);
        if text.len() > 1 << 30 {
            return Err("no NUL within 1 GiB: not PTX text".into());
        }
    }
    let text = String::from_utf8(text).map_err(|_| "PTX text that is not UTF-8".to_string())?;
    if !text.contains(".entry") && !text.contains(".version") {
        return Err("neither a fatbin nor PTX text".into());
    }
    Ok(Image::Ptx(text))
}

/// The global function symbols of a 64-bit little-endian ELF (a cubin's kernels).
pub fn elf_functions(elf: &[u8]) -> Result<Vec<String>, String> {
    let bad = |what: &str| format!("a malformed cubin ({what})");
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return Err(bad("not 64-bit little-endian ELF"));
    }
    let shoff = u64_at(elf, 0x28).ok_or_else(|| bad("header"))? as usize;
    let shentsize = u16_at(elf, 0x3a).ok_or_else(|| bad("header"))? as usize;
    let shnum = u16_at(elf, 0x3c).ok_or_else(|| bad("header"))? as usize;
    let section = |i: usize| -> Result<(u32, usize, usize, u32), String> {
        let o = shoff + i * shentsize;
        Ok((
            u32_at(elf, o + 4).ok_or_else(|| bad("section header"))?,
            u64_at(elf, o + 24).ok_or_else(|| bad("section header"))? as usize,
            u64_at(elf, o + 32).ok_or_else(|| bad("section header"))? as usize,
            u32_at(elf, o + 40).ok_or_else(|| bad("section header"))?,
        ))
    };
    let mut names = Vec::new();
    for i in 0..shnum {
        let (ty, off, size, link) = section(i)?;
        if ty != 2 {
            continue; // SHT_SYMTAB
        }
        let (_, stroff, strsize, _) = section(link as usize)?;
        let strtab = elf
            .get(stroff..stroff + strsize)
            .ok_or_else(|| bad("string table"))?;
        let syms = elf
            .get(off..off + size)
            .ok_or_else(|| bad("symbol table"))?;
        for s in syms.chunks_exact(24) {
            let (name, info) = (u32_at(s, 0).unwrap_or(0) as usize, s[4]);
            if info & 0xf == 2 && info >> 4 == 1 {
                let n = strtab.get(name..).ok_or_else(|| bad("symbol name"))?;
                let end = n.iter().position(|&b| b == 0).unwrap_or(n.len());
                names.push(String::from_utf8_lossy(&n[..end]).into_owned());
            }
        }
    }
    Ok(names)
}
